"""HyperPod EKS job manifests for `training.train`, built with the `kubernetes` client's models.

A `HyperPodPyTorchJob` (the HyperPod training operator's CRD) runs the image's entry point under
`hyperpodrun`, HyperPod's torchrun-compatible elastic agent, so a job restarts in place after a
node fault and the trainer resumes from its latest checkpoint. The Kueue labels put the job in its
team's queue; the node selector keeps it off nodes that failed health checks. Namespace, queue,
service account and FSx claim are the team's published values (`training.job.platform`), never
derived here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from core.accelerators import MIG_PROFILE, mig_profiles
from core.workload_apis import HYPERPOD_PYTORCH_JOB

GROUP = HYPERPOD_PYTORCH_JOB.group
VERSION = HYPERPOD_PYTORCH_JOB.version
KIND = HYPERPOD_PYTORCH_JOB.kind
PLURAL = HYPERPOD_PYTORCH_JOB.plural
HEALTHY_NODE = {"sagemaker.amazonaws.com/node-health-status": "Schedulable"}
# The operator labels every pod of a job with it (the HyperPod SDK lists pods the same way).
POD_JOB_LABEL = "HPJob"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MIG_READY = {"nvidia.com/mig.config.state": "success"}
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# The image's one entry point (training/entrypoint.py); under hyperpodrun it runs the trainer.
ENTRYPOINT = ["-m", "training.entrypoint", "train"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# An OCI image reference with a tag or a digest (the grammar of distribution/reference): a job
# must name what it runs, never an implicit `latest` or a placeholder like '<training image>'.
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::[0-9]+)?/)?{_PATH}(?:/{_PATH})*"
    r"(?::[\w][\w.-]{0,127}(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?"
    r"|@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})$"
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


class JobSpecError(ValueError):
    """A job setting the manifest cannot honour; the message names the setting."""


@dataclass(frozen=True)
class JobSpec:
    """What differs between training jobs; everything else is a fixed, safe default."""

    name: str = field(metadata=_help("DNS-1123 label: names the job and its pods"))
    config: str = field(metadata=_help("training YAML path inside the container (e.g. on FSx)"))
    image: str = field(
        default="", metadata=_help("training image (training/Dockerfile); --bu: the BU's, at --tag")
    )
    nodes: int = field(default=1, metadata=_help("nodes (replicas)"))
    gpus_per_node: int = field(default=8, metadata=_help("GPUs per node (8 on p5/p4d)"))
    instance_type: str | None = field(
        default="ml.p5.48xlarge",
        metadata=_help(
            "node selector; default: the BU's GPU group offering the GPUs or --mig-profile "
            "(ml.p5.48xlarge for whole GPUs without --bu); empty for any instance type"
        ),
    )
    namespace: str = field(
        default="default", metadata=_help("Kubernetes namespace; --bu/--team: the team's")
    )
    queue: str | None = field(
        default=None, metadata=_help("Kueue LocalQueue (task governance); --bu/--team: the team's")
    )
    priority_class: str | None = field(
        default=None, metadata=_help("a Kueue WorkloadPriorityClass defined for the cluster")
    )
    mig_profile: str | None = field(
        default=None, metadata=_help("e.g. 1g.18gb: request MIG slices instead of whole GPUs")
    )
    efa_per_node: int = field(
        default=0, metadata=_help("EFA interfaces (32 on p5.48xlarge, 4 on p4d.24xlarge)")
    )
    fsx_claim: str | None = field(
        default=None, metadata=_help("PVC of the FSx for Lustre volume at /fsx; --team: the team's")
    )
    service_account: str | None = field(
        default=None, metadata=_help("with an IAM role (pod identity); --bu/--team: the team's")
    )
    max_retries: int = field(
        default=3, metadata=_help("whole-job restarts after in-place recoveries are exhausted")
    )
    env: Mapping[str, str] = field(default_factory=dict, metadata={"cli": False})
    overrides: tuple[str, ...] = field(default=(), metadata={"cli": False})  # train's --set

    def __post_init__(self) -> None:
        if not (_DNS_LABEL.match(self.name) and len(self.name) <= 63):
            raise JobSpecError(f"name: {self.name!r} is not a DNS-1123 label of <= 63 characters")
        if not self.image:
            raise JobSpecError("image: required (or --bu NAME to use the BU's training image)")
        if not _IMAGE.match(self.image):
            raise JobSpecError(
                f"image: {self.image!r} is not an image reference with a tag or digest, like "
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud/training:3f2c1ab "
                "(or give --bu NAME for the BU's training image)"
            )
        if not _DNS_LABEL.match(self.namespace):
            raise JobSpecError(f"namespace: {self.namespace!r} is not a DNS-1123 label")
        for attr in ("nodes", "gpus_per_node"):
            if getattr(self, attr) < 1:
                raise JobSpecError(f"{attr}: must be at least 1, got {getattr(self, attr)}")
        if self.mig_profile is not None and not MIG_PROFILE.fullmatch(self.mig_profile):
            raise JobSpecError(f"mig_profile: {self.mig_profile!r} is not like '1g.18gb'")
        if self.mig_profile and self.instance_type:
            offered = mig_profiles(self.instance_type)
            if self.mig_profile not in offered:
                raise JobSpecError(
                    f"instance_type: {self.instance_type} has no {self.mig_profile} MIG profile "
                    f"(it offers: {', '.join(offered) or 'no MIG'}), so no pod would schedule"
                )
        if self.max_retries < 0 or self.efa_per_node < 0:
            raise JobSpecError("max_retries and efa_per_node must not be negative")

    @property
    def accelerator(self) -> str:
        """The extended resource each node's share is requested as."""
        return f"nvidia.com/mig-{self.mig_profile}" if self.mig_profile else "nvidia.com/gpu"

    def labels(self) -> dict[str, str]:
        labels = {"app.kubernetes.io/name": "qwen3-sft", "app.kubernetes.io/instance": self.name}
        if self.queue:
            labels[QUEUE_LABEL] = self.queue
        if self.priority_class:
            labels["kueue.x-k8s.io/priority-class"] = self.priority_class
        return labels


def _container(spec: JobSpec) -> k8s.V1Container:
    resources = {spec.accelerator: str(spec.gpus_per_node)}
    if spec.efa_per_node:
        resources["vpc.amazonaws.com/efa"] = str(spec.efa_per_node)
    mounts = [k8s.V1VolumeMount(name="shm", mount_path="/dev/shm")]  # noqa: S108 (a memory volume)
    if spec.fsx_claim:
        mounts.append(k8s.V1VolumeMount(name="fsx", mount_path="/fsx"))
    env = {"PYTHONUNBUFFERED": "1", "NCCL_DEBUG": "WARN", **spec.env}
    return k8s.V1Container(
        name="trainer",
        image=spec.image,
        image_pull_policy="IfNotPresent",
        command=[
            "hyperpodrun",
            f"--nnodes={spec.nodes}",
            f"--nproc-per-node={spec.gpus_per_node}",
            *ENTRYPOINT,
        ],
        args=["--config", spec.config, *(a for o in spec.overrides for a in ("--set", o))],
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in sorted(env.items())],
        resources=k8s.V1ResourceRequirements(requests=resources, limits=resources),
        volume_mounts=mounts,
        security_context=k8s.V1SecurityContext(allow_privilege_escalation=False),
    )


def node_selector(spec: JobSpec) -> dict[str, str]:
    """Where the pods may run; the pre-submit capacity check counts the same nodes."""
    selector = dict(HEALTHY_NODE)
    if spec.mig_profile:
        selector.update(MIG_READY)  # only nodes whose MIG layout has been applied
    if spec.instance_type:
        selector[INSTANCE_TYPE_LABEL] = spec.instance_type
    return selector


def _pod_template(spec: JobSpec) -> k8s.V1PodTemplateSpec:
    volumes = [
        # NCCL and the data loader need more shared memory than the container default of 64 MB.
        k8s.V1Volume(name="shm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory")),
    ]
    if spec.fsx_claim:
        volumes.append(
            k8s.V1Volume(
                name="fsx",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=spec.fsx_claim
                ),
            )
        )
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=spec.labels()),
        spec=k8s.V1PodSpec(
            containers=[_container(spec)],
            volumes=volumes,
            node_selector=node_selector(spec),
            service_account_name=spec.service_account,
            restart_policy="Never",  # the operator, not the kubelet, restarts training processes
        ),
    )


def build_manifest(spec: JobSpec) -> dict[str, Any]:
    """The job as a plain dict ready for `CustomObjectsApi` or `yaml.safe_dump`."""
    api = k8s.ApiClient()
    metadata = k8s.V1ObjectMeta(name=spec.name, namespace=spec.namespace, labels=spec.labels())
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": api.sanitize_for_serialization(metadata),
        "spec": {
            "nprocPerNode": str(spec.gpus_per_node),  # the CRD types it as a string
            "replicaSpecs": [
                {
                    "name": "pod",
                    "replicas": spec.nodes,
                    "spares": 0,
                    "template": api.sanitize_for_serialization(_pod_template(spec)),
                }
            ],
            "runPolicy": {"cleanPodPolicy": "None", "jobMaxRetryCount": spec.max_retries},
        },
    }
