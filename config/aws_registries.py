"""The AWS-owned ECR registries a HyperPod cluster's nodes pull from, per region, with sources.

A node pulls an image only when its role's identity policy allows ``ecr:BatchGetImage`` (and the
layer calls) on that repository, even when the repository's own policy admits every account
(ECR user guide, "Private repository policies"); ``AmazonSageMakerClusterInstanceRolePolicy``
has no ECR action (IAM, AWS managed policy reference). AWS's reference templates grant pull on
``*``; this platform names the registries instead, so a node can never pull another BU's images.

Only the regions of ``config.regions.AVAILABILITY_ZONES`` are listed; a test checks every region
a HyperPod BU may use is in each table.
"""

from collections.abc import Mapping

# EKS add-on images: the same account in every listed region (EKS user guide, "View Amazon
# container image registries for Amazon EKS add-ons", add-ons-images.adoc). Seen there: vpc-cni,
# kube-proxy, coredns, eks-pod-identity-agent, cert-manager, metrics-server, the S3 CSI driver,
# the EFA plugin, and HyperPod's observability images (`602401143452.../hyperpod/otel_collector`,
# awsome-distributed-ai's observability scripts). The HyperPod training-operator and
# task-governance add-ons publish no image URI; they are AWS add-ons and assumed to come from
# here too (README: what was not verified; `make doctor` shows an add-on that cannot pull as
# DEGRADED).
EKS_REGISTRY_ACCOUNT = "602401143452"
# AWS Deep Learning Containers, the LMI (djl-inference) image among them: the same account in
# every listed region (sagemaker-python-sdk image_uri_config/djl-lmi.json; deep-learning-
# containers available_images.md).
DLC_ACCOUNT = "763104351884"
# HyperPod's health-monitoring agent (sagemaker-hyperpod-cli a00b22d, helm_chart/
# HyperPodHelmChart/charts/health-monitoring-agent/templates/_helpers.tpl).
HEALTH_AGENT_ACCOUNTS: Mapping[str, str] = {
    "us-east-1": "767398015722",
    "us-east-2": "851725546812",
    "us-west-2": "905418368575",
    "ca-central-1": "843976229209",
    "eu-west-1": "533267293120",
    "eu-west-2": "011528288831",
    "eu-central-1": "211125453373",
    "eu-north-1": "654654141839",
    "ap-northeast-1": "533267052152",
    "ap-southeast-1": "905418428165",
    "ap-southeast-2": "851725636348",
    "ap-south-1": "011528288864",
}
# HyperPod's mirror of the NVIDIA GPU operator's images (same commit, helm_chart/
# HyperPodHelmChart/regional-values/values-<region>.yaml).
GPU_OPERATOR_MIRROR_ACCOUNTS: Mapping[str, str] = {
    "us-east-1": "463470961310",
    "us-east-2": "940482419867",
    "us-west-2": "586794468202",
    "ca-central-1": "035462350821",
    "eu-west-1": "741448945724",
    "eu-west-2": "869935108213",
    "eu-central-1": "816069136154",
    "eu-north-1": "495599756225",
    "ap-northeast-1": "248189928082",
    "ap-southeast-1": "235494799058",
    "ap-southeast-2": "495599779797",
    "ap-south-1": "183295424886",
}
# HyperPod's inference operator (same commit, charts/inference-operator/values.yaml,
# image.repositoryDomainMap); ca-central-1 has none.
INFERENCE_OPERATOR_ACCOUNTS: Mapping[str, str] = {
    "us-east-1": "557690614651",
    "us-east-2": "061051259071",
    "us-west-2": "861276088053",
    "eu-west-1": "537124951544",
    "eu-west-2": "337909760000",
    "eu-central-1": "491085393763",
    "eu-north-1": "850995554027",
    "ap-northeast-1": "724772091842",
    "ap-southeast-1": "474668384327",
    "ap-southeast-2": "147997151819",
    "ap-south-1": "522814713546",
}


def registry_host(account: str, region: str) -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def node_image_accounts(region: str, *, mig: bool, hyperpod_inference: bool) -> dict[str, str]:
    """AWS registry account -> what the BU's HyperPod nodes pull from it in ``region``."""
    accounts = {
        EKS_REGISTRY_ACCOUNT: "EKS add-ons (vpc-cni, kube-proxy, coredns, Pod Identity agent, "
        "FSx CSI driver) and the EFA device plugin",
        HEALTH_AGENT_ACCOUNTS[region]: "HyperPod health-monitoring agent",
    }
    if mig:
        accounts[GPU_OPERATOR_MIRROR_ACCOUNTS[region]] = "HyperPod's mirror of the GPU operator"
    if hyperpod_inference:
        accounts[DLC_ACCOUNT] = "the LMI (DJL Serving + vLLM) serving image"
        accounts[INFERENCE_OPERATOR_ACCOUNTS[region]] = "HyperPod inference operator"
    return accounts
