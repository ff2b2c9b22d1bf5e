"""HyperPod's dependencies Helm chart (aws/sagemaker-hyperpod-cli ``helm_chart/HyperPodHelmChart``)
as this platform installs it: from the BU's private ECR, by a digest checked at deploy time, with
every image it renders pulled from the BU's own mirrors or from AWS registries the VPC reaches.

Facts this module relies on, read at the pinned commit ``a00b22d`` of sagemaker-hyperpod-cli
(2026-06-19; the first commit with the ``gpu-operator`` subchart is ``c00832c``, #310):
- ``gpu-operator`` is a local wrapper chart whose own dependency is NVIDIA's chart, also named
  ``gpu-operator``: NVIDIA's settings nest twice (``gpu-operator.gpu-operator.migManager``), as
  the chart's ``regional-values/values-<region>.yaml`` files do.
- The GPU operator's images come from HyperPod's regional ``mirror-*`` repositories (those
  regional values files); node-feature-discovery's from ``registry.k8s.io`` (not covered).
- The health-monitoring agent's image is ``<account>.dkr.ecr.<region>.amazonaws.com/
  hyperpod-health-monitoring-agent`` with a per-region account (``charts/health-monitoring-agent/
  templates/_helpers.tpl``); without an explicit region the chart looks the nodes up and falls
  back to us-east-1.
- The EFA plugin's default image is in us-west-2's EKS registry; the in-region one is the
  region's EKS registry (``ChartRegistries.eks``; EKS user guide, "View Amazon container image
  registries for Amazon EKS add-ons").
- The neuron device plugin's image is hard-coded to public ECR (no override key): it is off here.
- training-operator and mpi-operator come from Docker Hub, the standalone NVIDIA device plugin
  from nvcr.io (awsome-distributed-ai's closed-network ``tools/ecr-images.conf`` mirrors these).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aws_cdk as cdk
import yaml
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct
from kubernetes import client as k8s

from platform_constructs.hyperpod_workloads import to_manifest
from platform_constructs.sdk_calls import sdk_call

CHART_NAME = "hyperpod-helm-chart"  # the `name` in HyperPod's Chart.yaml; helm push appends it
CHART_NAMESPACE = "kube-system"
CHART_RELEASE = "dependencies"
MIG_CONFIG_MAP = "platform-mig-config"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"  # what `helm push` writes
VERIFIED_DIGEST = "images.0.imageId.imageDigest"
# The chart goes in before the HyperPod cluster has nodes (as AWS installs it), so nothing may
# wait for pods: no `--wait`, and no `--atomic` (in Helm 4 rollback-on-failure, which waits,
# then rolls back a release whose pods cannot run yet). Hooks still run and are waited for;
# their timeout stays well inside the kubectl handler Lambda's 15 minutes, so a stuck hook fails
# the custom resource cleanly instead of leaving CloudFormation waiting an hour for an answer.
HELM_TIMEOUT_MINUTES = 10

EFA_PLUGIN = ("eks/aws-efa-k8s-device-plugin", "v0.5.13")  # chart 0.5.20's appVersion
# The GPU operator's components and the path under HyperPod's regional mirror account.
GPU_OPERATOR_COMPONENTS: Mapping[str, str] = {
    "operator": "",
    "devicePlugin": "",
    "gfd": "",
    "toolkit": "/mirror-k8s",
    "migManager": "/mirror-cloud-native",
    "validator": "/mirror-cloud-native",
}

Needed = Literal["always", "whole_gpu_plugin", "mig"]


@dataclass(frozen=True)
class MirroredImage:
    """An image of the chart that no AWS registry serves: ``make stage-hyperpod-chart`` copies
    it into ``<bu>/hyperpod-mirror/<name>`` and the values point the chart there."""

    name: str
    source: str  # repository at its public registry
    tag: str
    values_path: tuple[str, ...]  # the mapping that holds `repository` and `tag`
    needed: Needed

    def mirror_repository(self, bu: str) -> str:
        return f"{bu}/hyperpod-mirror/{self.name}"


MIRRORED_IMAGES: tuple[MirroredImage, ...] = (
    MirroredImage(
        "training-operator",
        "docker.io/kubeflow/training-operator",
        "v1-855e096",
        ("training-operators", "image"),
        "always",
    ),
    MirroredImage(
        "mpi-operator",
        "docker.io/mpioperator/mpi-operator",
        "0.5",
        ("mpi-operator", "mpiOperator", "image"),
        "always",
    ),
    MirroredImage(
        "k8s-device-plugin",
        "nvcr.io/nvidia/k8s-device-plugin",
        "v0.16.1",
        ("nvidia-device-plugin", "image"),
        "whole_gpu_plugin",
    ),
    MirroredImage(
        "node-feature-discovery",
        "registry.k8s.io/nfd/node-feature-discovery",
        "v0.18.3",
        ("gpu-operator", "gpu-operator", "node-feature-discovery", "image"),
        "mig",
    ),
)


def mirrored_images(*, mig: bool) -> list[MirroredImage]:
    """The images a BU's values point at its own mirrors (what staging must copy)."""
    wanted = {"always", "mig" if mig else "whole_gpu_plugin"}
    return [image for image in MIRRORED_IMAGES if image.needed in wanted]


@dataclass(frozen=True)
class ChartRegistries:
    """The ECR registry hosts (``<account>.dkr.ecr.<region>.amazonaws.com``) the values name."""

    own: str  # the BU's own account: the mirrored images
    eks: str  # the region's EKS add-on registry: the EFA device plugin
    gpu_operator_mirror: str | None  # HyperPod's regional mirror of the GPU operator (MIG only)


def chart_values(*, bu: str, region: str, mig: bool, registries: ChartRegistries) -> dict[str, Any]:
    """Values for HyperPod's dependencies chart.

    What EKS add-ons already provide is off (cert-manager, the inference operator); so is the
    in-cluster MLflow (SageMaker MLflow serves the BU) and the neuron plugin (GPU instances
    only; its public image cannot be overridden). With a MIG group the GPU operator (its MIG
    manager reading this platform's layouts, its device plugin serving whole GPUs on the other
    groups) replaces the standalone device plugin, as HyperPod's own templates switch them.
    """
    values: dict[str, Any] = {
        "global": {"region": region},
        "cert-manager": {"enabled": False},
        "mlflow": {"enabled": False},
        "inferenceOperators": {"enabled": False},
        "trainingOperators": {"enabled": True},
        "health-monitoring-agent": {"enabled": True, "region": region},
        "deep-health-check": {"enabled": True},
        "job-auto-restart": {"enabled": True},
        "neuron-device-plugin": {"devicePlugin": {"enabled": False}},
        "aws-efa-k8s-device-plugin": {
            "devicePlugin": {"enabled": True},
            "image": {
                "repository": f"{registries.eks}/{EFA_PLUGIN[0]}",
                "tag": EFA_PLUGIN[1],
            },
        },
        "nvidia-device-plugin": {"devicePlugin": {"enabled": not mig}},
        "gpu-operator": {"enabled": mig},
    }
    if mig:
        mirror = registries.gpu_operator_mirror
        if mirror is None:
            raise ValueError(f"{bu}: MIG needs the GPU operator's mirror registry in {region}")
        operator: dict[str, Any] = {
            component: {"repository": mirror + path}
            for component, path in GPU_OPERATOR_COMPONENTS.items()
        }
        operator["mig"] = {"strategy": "mixed"}
        operator["driver"] = {"enabled": False}  # HyperPod AMIs ship the driver
        operator["migManager"]["enabled"] = True
        operator["migManager"]["config"] = {
            "create": False,
            "name": MIG_CONFIG_MAP,
            "default": "all-disabled",
        }
        values["gpu-operator"]["gpu-operator"] = operator
    for image in mirrored_images(mig=mig):
        node = values
        for key in image.values_path:
            node = node.setdefault(key, {})
        node.update(
            {"repository": f"{registries.own}/{image.mirror_repository(bu)}", "tag": image.tag}
        )
    return values


def image_references(values: Mapping[str, Any]) -> list[str]:
    """Every image repository these values set (``repository`` keys; HyperPod's GPU operator
    components take ``repository`` + their default image name)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "repository" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)

    walk(values)
    return found


def mig_config_map(layouts: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The MIG manager's layouts: every layout a group's ``nvidia.com/mig.config`` label names
    (``layouts``: label -> MIG profile -> instances per GPU)."""
    configs: dict[str, Any] = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    for label, slices in layouts.items():
        configs[label] = [{"devices": "all", "mig-enabled": True, "mig-devices": dict(slices)}]
    data = yaml.safe_dump({"version": "v1", "mig-configs": configs}, sort_keys=True)
    return to_manifest(
        k8s.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=k8s.V1ObjectMeta(name=MIG_CONFIG_MAP, namespace=CHART_NAMESPACE),
            data={"config.yaml": data},
        )
    )


class DependenciesChart(Construct):
    """HyperPod's dependencies chart from this BU's private ECR (an OCI artifact staged once by
    ``make stage-hyperpod-chart``), never from git or a public repository at deploy time.

    The CDK's Helm handler pulls by version only (``helm pull <repo> --version``), so a
    deploy-time ``ecr:BatchGetImage`` asks for the staged chart by tag *and* the pinned digest
    first. ECR answers a mismatch with the failure ``ImageTagDoesNotMatchDigest`` and no image,
    so the response field the release's values carry does not exist, and CloudFormation fails
    the release before anything is installed (ECR API reference, BatchGetImage, ImageFailure).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        eks_cluster: eks.Cluster,
        repository_name: str,
        version: str,
        digest: str,
        values: Mapping[str, Any],
        mig_layouts: Mapping[str, Mapping[str, int]],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.digest_check = sdk_call(
            self,
            "DigestCheck",
            call=cr.AwsSdkCall(
                service="ECR",
                action="batchGetImage",
                parameters={
                    "repositoryName": repository_name,
                    "imageIds": [{"imageTag": version, "imageDigest": digest}],
                    "acceptedMediaTypes": [OCI_MANIFEST],
                },
                physical_resource_id=cr.PhysicalResourceId.of(f"{repository_name}@{digest}"),
                output_paths=[VERIFIED_DIGEST],
            ),
            on_create=True,
            statements=[
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage"],
                    resources=[
                        stack.format_arn(
                            service="ecr", resource="repository", resource_name=repository_name
                        )
                    ],
                )
            ],
            permits="ecr:BatchGetImage on the BU's chart repository",
            vpc=vpc,
            subnets=subnets,
        )
        self.mig_config = eks.KubernetesManifest(
            self,
            "MigConfig",
            cluster=eks_cluster,  # type: ignore[arg-type]  # jsii protocol gap
            manifest=[mig_config_map(mig_layouts)],
        )
        registry = f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}"
        self.chart = eks.HelmChart(
            self,
            "Chart",
            cluster=eks_cluster,  # type: ignore[arg-type]  # jsii protocol gap
            repository=f"oci://{registry}/{repository_name}",
            chart=CHART_NAME,
            version=version,
            release=CHART_RELEASE,
            namespace=CHART_NAMESPACE,
            values={
                **values,
                "platform": {"chartDigest": self.digest_check.get_response_field(VERIFIED_DIGEST)},
            },
            wait=False,
            atomic=False,
            timeout=cdk.Duration.minutes(HELM_TIMEOUT_MINUTES),
        )
        self.chart.node.add_dependency(self.mig_config)
