"""What a HyperPod deploy needs that cfn-lint and cdk-nag cannot see, held against AWS's reference
templates and guides: who may pull which image, who assigns pod IPs, what is created in which
order, and what the chart is given. Each test names its source; README "Deploying one business
unit" lists the same facts.

References: aws/sagemaker-hyperpod-cli (helm_chart/HyperPodHelmChart at a00b22d),
awslabs/awsome-distributed-ai (1.architectures/7.sagemaker-hyperpod-eks/terraform-modules/
hyperpod-eks-tf at 95b939c), aws/sagemaker-hyperpod-cluster-setup (eks/cloudformation at b920fcf).
"""

import fnmatch
import json
from typing import Any

import pytest
from harness.synthesized_app import EXAMPLE_BUS
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of

from config.aws_registries import node_image_accounts
from config.hyperpod import ADDON_NAMES
from config.regions import HYPERPOD_REGIONS
from inference.serving import image_uri
from platform_constructs.hyperpod_chart import (
    CHART_NAME,
    HELM_TIMEOUT_MINUTES,
    image_references,
    mirrored_images,
)
from stacks.hyperpod_stack import bu_chart_values


def _hyperpod(synthesized: Any, bu: str) -> tuple[TemplateGraph, Any]:
    config = synthesized.configs[bu]
    return TemplateGraph(synthesized.template(bu, "hyperpod").to_json()), config


def _execution_role_statements(graph: TemplateGraph, config: Any) -> list[dict[str, Any]]:
    role = graph.find_one(
        "AWS::IAM::Role", lambda p: p.get("RoleName") == config.naming.role("hyperpod-execution")
    )
    return [s for policy in graph.policies_of(role) for s in policy_statements(policy)]


def _allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    for statement in statements:
        if (
            statement["Effect"] == "Allow"
            and any(fnmatch.fnmatch(action, a) for a in actions_of(statement))
            and any(fnmatch.fnmatch(arn, r) for r in resources_of(statement))
        ):
            return True
    return False


def _repository_arn(image: str) -> str:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<name>[:tag]`` -> its repository ARN."""
    host, _, name = image.partition("/")
    account, _, _, region, *_ = host.split(".")
    return f"arn:aws:ecr:{region}:{account}:repository/{name.split(':')[0].split('@')[0]}"


def _pulled_images(config: Any) -> list[str]:
    """Every image a node pulls that this platform names: the chart's, the BU's training image,
    the LMI image of endpoints served on HyperPod, and a representative EKS add-on image."""
    mig = any(g.mig_label for g in config.hyperpod.gpu_groups)
    values = bu_chart_values(bu=config.name, account=config.account, region=config.region, mig=mig)
    images = image_references(values)
    images.append(f"{config.account}.dkr.ecr.{config.region}.amazonaws.com/{config.name}-training")
    images.append(f"602401143452.dkr.ecr.{config.region}.amazonaws.com/eks/coredns")
    if config.endpoints is not None and config.endpoints.on("hyperpod"):
        images.append(image_uri(config.region))
    return images


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_nodes_may_pull_every_image_they_run_and_no_other_repository(synthesized, bu) -> None:
    """The execution role pulls images: AmazonSageMakerClusterInstanceRolePolicy has no ECR
    action (AWS managed policy reference), and a cross-account pull needs the puller's identity
    policy to allow it (IAM user guide, "Cross-account policy evaluation logic"). The references
    grant pull on ``*`` (awsome-distributed-ai modules/sagemaker_iam_role/main.tf); here every
    image the cluster runs is covered, and another repository of this account is not."""
    graph, config = _hyperpod(synthesized, bu)
    statements = _execution_role_statements(graph, config)
    assert _allows(statements, "ecr:GetAuthorizationToken", "*")
    for image in _pulled_images(config):
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
            assert _allows(statements, action, _repository_arn(image)), (action, image)
    other_bu = f"arn:aws:ecr:{config.region}:{config.account}:repository/other-bu/trainer"
    assert not _allows(statements, "ecr:BatchGetImage", other_bu)
    assert not _allows(
        statements,
        "ecr:BatchGetImage",
        f"arn:aws:ecr:{config.region}:{config.account}:repository/x",
    )


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_the_vpc_cni_has_its_own_identity_and_the_node_role_no_cni_actions(synthesized, bu):
    """aws-node assigns pod IPs with AmazonEKS_CNI_Policy's EC2 actions; the vpc-cni add-on
    supports EKS Pod Identity from v1.15.5-eksbuild.1 (EKS user guide, add-ons IAM table), so
    the node role stays without them."""
    graph, config = _hyperpod(synthesized, bu)
    association = graph.find_one(
        "AWS::EKS::PodIdentityAssociation",
        lambda p: (p["Namespace"], p["ServiceAccount"]) == ("kube-system", "aws-node"),
    )
    role = graph.resource(graph.ref_target(association["Properties"]["RoleArn"]))
    assert "AmazonEKS_CNI_Policy" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    trust = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    assert "pods.eks.amazonaws.com" in trust
    statements = _execution_role_statements(graph, config)
    assert not _allows(statements, "ec2:AssignPrivateIpAddresses", "*")
    # The association needs the agent that serves it.
    agent = graph.find_one("AWS::EKS::Addon", lambda p: p["AddonName"] == "eks-pod-identity-agent")
    assert graph.depends_on(graph.id_of(association), graph.id_of(agent))


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_the_chart_goes_in_before_the_cluster_and_node_add_ons_after(synthesized, bu) -> None:
    """AWS installs the dependencies chart before CreateCluster (SageMaker guide, "Install
    packages on the Amazon EKS cluster using Helm": otherwise creation "might fail entirely";
    awsome-distributed-ai main.tf: module.hyperpod_cluster depends_on module.helm_chart) and the
    HyperPod add-ons once the cluster has nodes (each add-on module depends_on
    module.hyperpod_cluster; the observability add-on needs a node, its setup page says)."""
    graph, _ = _hyperpod(synthesized, bu)
    cluster = graph.id_of(graph.find_one("AWS::SageMaker::Cluster", lambda p: True))
    chart = graph.id_of(graph.find_one("Custom::AWSCDK-EKS-HelmChart", lambda p: True))
    assert graph.depends_on(cluster, chart)
    assert not graph.depends_on(chart, cluster)
    for name in (
        "cert-manager",
        "aws-fsx-csi-driver",
        ADDON_NAMES["hyperpod_training_operator"],
        ADDON_NAMES["hyperpod_task_governance"],
        ADDON_NAMES["hyperpod_observability"],
    ):
        addon = graph.find_one("AWS::EKS::Addon", lambda p, n=name: p["AddonName"] == n)
        assert graph.depends_on(graph.id_of(addon), cluster), name
    for name in ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"):
        addon = graph.find_one("AWS::EKS::Addon", lambda p, n=name: p["AddonName"] == n)
        assert graph.depends_on(cluster, graph.id_of(addon)), name


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_no_hand_made_access_entry_for_the_nodes(synthesized, bu) -> None:
    """HyperPod creates the execution role's access entry itself at CreateCluster (SageMaker API
    reference, ClusterMetadata.EksRoleAccessEntries: "created by HyperPod on your behalf");
    neither reference template creates one."""
    graph, config = _hyperpod(synthesized, bu)
    for entry in graph.of_type("AWS::EKS::AccessEntry").values():
        principal = json.dumps(entry["Properties"]["PrincipalArn"])
        assert entry["Properties"].get("Type") != "HYPERPOD_LINUX"
        assert config.naming.role("hyperpod-execution") not in principal


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_every_chart_image_is_the_bus_mirror_or_an_aws_registry_in_region(synthesized, bu):
    """A closed BU reaches ECR only through its VPC endpoints, which serve this region's private
    registries, not Docker Hub, nvcr.io, registry.k8s.io or ECR Public (ECR user guide, "Amazon
    ECR interface VPC endpoints": no cross-region requests, no ECR Public). The values the stack
    passes point every image the pinned chart renders at the BU's mirror or at an AWS registry
    of this region (the render itself is checked by `make stage-hyperpod-chart`)."""
    graph, config = _hyperpod(synthesized, bu)
    chart = graph.find_one("Custom::AWSCDK-EKS-HelmChart", lambda p: True)
    values = graph.json_values(chart["Properties"]["Values"])
    mig = any(g.mig_label for g in config.hyperpod.gpu_groups)
    own = f"{config.account}.dkr.ecr.{config.region}.amazonaws.com/{config.name}/hyperpod-mirror/"
    aws = {
        f"{account}.dkr.ecr.{config.region}.amazonaws.com"
        for account in node_image_accounts(config.region, mig=mig, hyperpod_inference=True)
    }
    images = image_references(values)
    assert images
    for image in images:  # the GPU operator's take the bare registry, then add their names
        assert image.startswith(own) or image.split("/", 1)[0] in aws, image
    mirrored = {own + image.name for image in mirrored_images(mig=mig)}
    assert mirrored <= set(images)
    assert values["neuron-device-plugin"]["devicePlugin"]["enabled"] is False  # public image
    assert values["health-monitoring-agent"]["region"] == config.region  # else us-east-1's


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_gpus_are_advertised_by_the_gpu_operator_nested_as_hyperpod_reads_it(synthesized, bu):
    """The pinned chart's `gpu-operator` is a wrapper around NVIDIA's chart of the same name, so
    NVIDIA's settings nest twice (a00b22d regional-values/values-<region>.yaml); with a MIG group
    the operator's device plugin serves whole GPUs too, and the standalone plugin is off
    (awsome-distributed-ai modules/helm_chart: nvidia-device-plugin off when the GPU operator
    is on)."""
    graph, config = _hyperpod(synthesized, bu)
    chart = graph.find_one("Custom::AWSCDK-EKS-HelmChart", lambda p: True)
    values = graph.json_values(chart["Properties"]["Values"])
    mig = any(g.mig_label for g in config.hyperpod.gpu_groups)
    assert values["gpu-operator"]["enabled"] is mig
    assert values["nvidia-device-plugin"]["devicePlugin"]["enabled"] is not mig
    if mig:
        nvidia = values["gpu-operator"]["gpu-operator"]
        assert nvidia["migManager"]["config"]["name"] == "platform-mig-config"
        assert nvidia["devicePlugin"]["repository"]  # HyperPod's regional mirror


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_the_chart_is_pinned_by_digest_and_cannot_hang_the_stack(synthesized, bu) -> None:
    """The CDK Helm handler pulls `--version` only; a BatchGetImage for tag + digest must succeed
    before the release (ECR API reference, BatchGetImage: failure ImageTagDoesNotMatchDigest, no
    image), and the release reads the verified digest from it. The handler Lambda stops at 15
    minutes; Helm's timeout stays inside it, with no --wait/--atomic before nodes exist."""
    graph, config = _hyperpod(synthesized, bu)
    chart_id, chart = graph.find_one_with_id("Custom::AWSCDK-EKS-HelmChart", lambda p: True)
    check_id = next(
        lid
        for lid, r in graph.of_type("Custom::AWS").items()
        if "batchGetImage" in json.dumps(r["Properties"])
    )
    call = json.loads(graph.resource(check_id)["Properties"]["Update"])
    assert call["parameters"]["imageIds"] == [
        {"imageTag": config.hyperpod.dependencies_chart.version,
         "imageDigest": config.hyperpod.dependencies_chart.digest}
    ]  # fmt: skip
    assert call["parameters"]["repositoryName"] == f"{config.name}/{CHART_NAME}"
    assert f'"Fn::GetAtt": ["{check_id}", "images.0.imageId.imageDigest"]' in json.dumps(
        chart["Properties"]["Values"]
    )
    assert graph.depends_on(chart_id, check_id)
    props = chart["Properties"]
    assert not props.get("Wait")
    assert not props.get("Atomic")
    assert int(props["Timeout"].removesuffix("s")) == HELM_TIMEOUT_MINUTES * 60
    assert graph.kubectl_handler_timeout() - 120 >= HELM_TIMEOUT_MINUTES * 60
    # The check runs in the VPC (a closed BU has no other way to ECR).
    function = graph.resource(
        graph.ref_target(graph.resource(check_id)["Properties"]["ServiceToken"])
    )
    assert function["Properties"]["VpcConfig"]["SubnetIds"]


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_the_observability_collector_may_write_the_clusters_logs(synthesized, bu) -> None:
    """With logging on, the collector writes to /aws/sagemaker/Clusters/<name>/<id> (SageMaker
    guide, "Set up the HyperPod observability add-on": CloudWatch Logs statement on that prefix;
    the same in awsome-distributed-ai modules/observability/iam_roles.tf)."""
    graph, config = _hyperpod(synthesized, bu)
    if not config.hyperpod.observability.logging:
        pytest.skip("logging off in this BU")
    association = graph.find_one(
        "AWS::EKS::PodIdentityAssociation",
        lambda p: p["ServiceAccount"] == "hyperpod-observability-operator-otel-collector",
    )
    role_id = graph.ref_target(association["Properties"]["RoleArn"])
    statements = [s for policy in graph.policies_of(role_id) for s in policy_statements(policy)]
    group = (
        f"arn:aws:logs:{config.region}:{config.account}:log-group:"
        f"/aws/sagemaker/Clusters/{config.naming.resource('hyperpod')}/abc123"
    )
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert _allows(statements, action, f"{group}:log-stream:node-1"), action
    assert _allows(statements, "logs:CreateLogGroup", group)
    assert not _allows(statements, "logs:PutLogEvents", "arn:aws:logs:*:*:log-group:other:*")


def test_every_region_a_hyperpod_bu_may_use_has_its_aws_registries() -> None:
    """A BU in a region missing from a registry table would synthesize a node role that cannot
    pull there; the tables are per region (config.aws_registries)."""
    for region in HYPERPOD_REGIONS:
        accounts = node_image_accounts(region, mig=True, hyperpod_inference=True)
        assert len(accounts) == 5, region


INFERENCE_BUS = ("fraud",)  # the example BU that serves an endpoint on HyperPod


@pytest.mark.parametrize("bu", INFERENCE_BUS)
def test_the_inference_operator_gets_what_its_setup_page_requires(synthesized, bu) -> None:
    """The add-on's configuration names the execution role, the TLS-certificate bucket and the
    HyperPod cluster; a bucket not named `hyperpod-tls-*` needs Get/Put/Delete/PutObjectTagging
    on the role; the operator "will fail to install" below metrics-server v0.7.2-eksbuild.4,
    S3 CSI v1.14.1, FSx CSI v1.6.0, cert-manager v1.18.2 (SageMaker guide, "Setting up your
    HyperPod clusters for model deployment")."""
    graph, config = _hyperpod(synthesized, bu)
    addon = graph.find_one(
        "AWS::EKS::Addon", lambda p: p["AddonName"] == "amazon-sagemaker-hyperpod-inference"
    )
    values = graph.json_values(addon["Properties"]["ConfigurationValues"])
    tls_bucket = config.naming.bucket("inference-tls")
    assert values["tlsCertificateS3Bucket"] == tls_bucket
    assert values["executionRoleArn"].startswith("<GetAtt ")
    assert values["hyperpodClusterArn"].startswith("<GetAtt ")
    role_id = graph.ref_target(addon["Properties"]["ConfigurationValues"]["Fn::Join"][1][1])
    statements = [s for p in graph.policies_of(role_id) for s in policy_statements(p)]
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"):
        assert _allows(statements, action, f"arn:aws:s3:::{tls_bucket}/cert.pem"), action
    assert not _allows(
        statements, "s3:PutObject", f"arn:aws:s3:::{config.naming.bucket('models')}/x"
    )
    floors = {
        "metrics-server": (0, 7, 2, 4),
        "aws-mountpoint-s3-csi-driver": (1, 14, 1, 1),
        "aws-fsx-csi-driver": (1, 6, 0, 1),
        "cert-manager": (1, 18, 2, 2),
    }
    for name, floor in floors.items():
        pinned = graph.find_one("AWS::EKS::Addon", lambda p, n=name: p["AddonName"] == n)
        version = pinned["Properties"]["AddonVersion"]  # v1.2.3-eksbuild.4
        numbers = tuple(int(x) for x in version[1:].replace("-eksbuild.", ".").split("."))
        assert numbers >= floor, (name, version)


@pytest.mark.parametrize("bu", EXAMPLE_BUS)
def test_control_plane_logs_go_to_an_encrypted_group_made_before_the_cluster(synthesized, bu):
    """EKS writes control-plane logs (audit included) to /aws/eks/<cluster>/cluster and creates
    that group itself, unencrypted and without retention, unless it exists first (EKS user
    guide, "Send control plane logs to CloudWatch Logs")."""
    graph, config = _hyperpod(synthesized, bu)
    name = f"/aws/eks/{config.naming.resource('eks')}/cluster"
    group_id, group = graph.find_one_with_id(
        "AWS::Logs::LogGroup", lambda p: p.get("LogGroupName") == name
    )
    assert "KmsKeyId" in group["Properties"]
    assert group["Properties"]["RetentionInDays"] > 0
    cluster = graph.id_of(graph.find_one("AWS::EKS::Cluster", lambda p: True))
    assert graph.depends_on(cluster, group_id)
    logging = json.dumps(graph.resource(cluster)["Properties"]["Logging"])
    assert '"audit"' in logging
