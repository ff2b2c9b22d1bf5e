"""HyperPod EKS job manifests for `training.train`, built with the `kubernetes` client's models.

A `HyperPodPyTorchJob` (the HyperPod training operator's CRD) runs the container under
`hyperpodrun`, HyperPod's torchrun-compatible elastic agent, so a job restarts in place after a
node fault and the trainer resumes from its latest checkpoint. Task-governance labels put the job
in its team's Kueue queue; the node selector keeps it off nodes that failed health checks.

    python -m training.job --name qwen3-lora --image IMAGE --team fraud --nodes 2 \\
        --config /fsx/configs/qwen3-4b-lora.yaml --output job.yaml   # or --submit (kubeconfig)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from training.cli_args import build_parser

GROUP = "sagemaker.amazonaws.com"
VERSION = "v1"
KIND = "HyperPodPyTorchJob"
PLURAL = "hyperpodpytorchjobs"
HEALTHY_NODE = {"sagemaker.amazonaws.com/node-health-status": "Schedulable"}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MIG_PROFILE = re.compile(r"^[1-7]g\.\d+gb$")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


class JobSpecError(ValueError):
    """A job setting the manifest cannot honour; the message names the setting."""


@dataclass(frozen=True)
class JobSpec:
    """What differs between training jobs; everything else is a fixed, safe default."""

    name: str = field(metadata=_help("DNS-1123 label: names the job and its pods"))
    image: str = field(metadata=_help("the training image (training/Dockerfile), tag or digest"))
    config: str = field(metadata=_help("training YAML path inside the container (e.g. on FSx)"))
    nodes: int = field(default=1, metadata=_help("nodes (replicas)"))
    gpus_per_node: int = field(default=8, metadata=_help("GPUs per node (8 on p5/p4d)"))
    instance_type: str | None = field(
        default="ml.p5.48xlarge", metadata=_help("node selector; empty for any instance type")
    )
    team: str | None = field(
        default=None, metadata=_help("task-governance team: namespace, queue hyperpod-ns-<team>")
    )
    namespace: str | None = field(
        default=None, metadata=_help("defaults to the team's namespace, else 'default'")
    )
    priority_class: str | None = field(
        default=None, metadata=_help("a Kueue WorkloadPriorityClass defined for the cluster")
    )
    mig_profile: str | None = field(
        default=None, metadata=_help("e.g. 1g.10gb: request MIG slices instead of whole GPUs")
    )
    efa_per_node: int = field(
        default=0, metadata=_help("EFA interfaces (32 on p5.48xlarge, 4 on p4d.24xlarge)")
    )
    fsx_claim: str | None = field(
        default="fsx-claim", metadata=_help("PVC of the FSx for Lustre volume, mounted at /fsx")
    )
    service_account: str | None = field(
        default=None, metadata=_help("with an IAM role (pod identity) for S3 and MLflow")
    )
    max_retries: int = field(
        default=3, metadata=_help("whole-job restarts after in-place recoveries are exhausted")
    )
    env: Mapping[str, str] = field(default_factory=dict, metadata={"cli": False})

    def __post_init__(self) -> None:
        if not (_DNS_LABEL.match(self.name) and len(self.name) <= 63):
            raise JobSpecError(f"name: {self.name!r} is not a DNS-1123 label of <= 63 characters")
        for attr in ("nodes", "gpus_per_node"):
            if getattr(self, attr) < 1:
                raise JobSpecError(f"{attr}: must be at least 1, got {getattr(self, attr)}")
        if self.team is not None and not _DNS_LABEL.match(self.team):
            raise JobSpecError(f"team: {self.team!r} is not a DNS-1123 label")
        if self.mig_profile is not None and not _MIG_PROFILE.match(self.mig_profile):
            raise JobSpecError(f"mig_profile: {self.mig_profile!r} is not like '1g.10gb'")
        if self.max_retries < 0 or self.efa_per_node < 0:
            raise JobSpecError("max_retries and efa_per_node must not be negative")

    @property
    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        return f"hyperpod-ns-{self.team}" if self.team else "default"

    def labels(self) -> dict[str, str]:
        labels = {"app.kubernetes.io/name": "qwen3-sft", "app.kubernetes.io/instance": self.name}
        if self.team:
            labels["kueue.x-k8s.io/queue-name"] = f"hyperpod-ns-{self.team}-localqueue"
        if self.priority_class:
            labels["kueue.x-k8s.io/priority-class"] = self.priority_class
        return labels


def _container(spec: JobSpec) -> k8s.V1Container:
    accelerator = f"nvidia.com/mig-{spec.mig_profile}" if spec.mig_profile else "nvidia.com/gpu"
    resources = {accelerator: str(spec.gpus_per_node)}
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
            "-m",
            "training.train",
        ],
        args=["--config", spec.config],
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in sorted(env.items())],
        resources=k8s.V1ResourceRequirements(requests=resources, limits=resources),
        volume_mounts=mounts,
        security_context=k8s.V1SecurityContext(allow_privilege_escalation=False),
    )


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
    selector = dict(HEALTHY_NODE)
    if spec.instance_type:
        selector["node.kubernetes.io/instance-type"] = spec.instance_type
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=spec.labels()),
        spec=k8s.V1PodSpec(
            containers=[_container(spec)],
            volumes=volumes,
            node_selector=selector,
            service_account_name=spec.service_account,
            restart_policy="Never",  # the operator, not the kubelet, restarts training processes
        ),
    )


def build_manifest(spec: JobSpec) -> dict[str, Any]:
    """The job as a plain dict ready for `CustomObjectsApi` or `yaml.safe_dump`."""
    api = k8s.ApiClient()
    metadata = k8s.V1ObjectMeta(
        name=spec.name, namespace=spec.resolved_namespace, labels=spec.labels()
    )
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


def submit(manifest: Mapping[str, Any], api: Any | None = None) -> dict[str, Any]:
    """Create the job on the cluster of the current kubeconfig (or through `api`)."""
    if api is None:
        from kubernetes import config as kube_config

        kube_config.load_kube_config()
        api = k8s.CustomObjectsApi()
    created: dict[str, Any] = api.create_namespaced_custom_object(
        group=GROUP,
        version=VERSION,
        namespace=manifest["metadata"]["namespace"],
        plural=PLURAL,
        body=dict(manifest),
    )
    return created


def main(argv: list[str] | None = None, api: Any | None = None) -> int:
    parser = build_parser(JobSpec, "Build or submit a HyperPod training job.")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", help="write the manifest here (YAML) instead of stdout")
    parser.add_argument("--submit", action="store_true", help="create the job on the cluster")
    options = vars(parser.parse_args(argv))
    output, submit_job = options.pop("output"), options.pop("submit")
    try:
        env = dict(item.split("=", 1) for item in options.pop("env"))
    except ValueError:
        parser.error("--env takes KEY=VALUE")
    try:
        spec = JobSpec(**options, env=env)
    except JobSpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    manifest = build_manifest(spec)
    if submit_job:
        created = submit(manifest, api)
        print(f"created {KIND} {created['metadata']['namespace']}/{created['metadata']['name']}")
        return 0
    import yaml

    text = yaml.safe_dump(manifest, sort_keys=False)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
