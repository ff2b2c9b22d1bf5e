"""`HyperPodInferenceOperator` in a bare stack against an `aws_eks_v2.Cluster` the test creates:
the IRSA role's trust, the pinned add-ons and their order, the S3 CSI driver's read-only role."""

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks
from harness.cdk_context import cdk_json_context
from harness.construct_builders import purpose_key
from harness.template_graph import TemplateGraph

from config.endpoints import HyperPodInferenceAddons
from platform_constructs.hyperpod_inference import AddonVersions, HyperPodInferenceOperator

PINNED = HyperPodInferenceAddons()


@pytest.fixture(scope="module")
def built() -> tuple[cdk.Stack, HyperPodInferenceOperator]:
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    env = cdk.Environment(account="123456789012", region="us-east-1")
    stack = cdk.Stack(app, "Operator", env=env)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"])
    cluster = eks.Cluster(stack, "Cluster", version=eks.KubernetesVersion.V1_33, vpc=vpc)
    key = purpose_key(stack, "Models", "alias/t/models").key
    operator = HyperPodInferenceOperator(
        stack,
        "Inference",
        cluster=cluster,
        role_name="t-hyperpod-inference-us-east-1",
        versions=AddonVersions(**PINNED.model_dump()),
        models_bucket_name="t-models-123456789012-us-east-1",
        models_key=key,
        tls_bucket_name="t-inference-tls-123456789012-us-east-1",
        tls_key=key,
        hyperpod_cluster_arn="arn:aws:sagemaker:us-east-1:123456789012:cluster/abc",
    )
    return stack, operator


@pytest.fixture(scope="module")
def template(built: tuple[cdk.Stack, HyperPodInferenceOperator]) -> Template:
    return Template.from_stack(built[0])


def test_execution_role_trusts_sagemaker_and_the_operators_service_account(
    template: Template,
) -> None:
    (role,) = [
        r
        for r in template.find_resources("AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == "t-hyperpod-inference-us-east-1"
    ]
    assert "AmazonSageMakerHyperPodInferenceAccess" in json.dumps(
        role["Properties"]["ManagedPolicyArns"]
    )
    # The trust is a JSON string with the issuer joined in (no CfnJson function).
    trust = json.loads(TemplateGraph.render(role["Properties"]["AssumeRolePolicyDocument"]))
    web, service = trust["Statement"]
    assert web["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "Federated" in web["Principal"]
    assert (
        "system:serviceaccount:hyperpod-inference-system:hyperpod-inference-controller-manager"
        in web["Condition"]["StringEquals"].values()
    )
    assert service == {
        "Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    }
    rendered = json.dumps(
        [
            TemplateGraph.render(r["Properties"]["AssumeRolePolicyDocument"])
            for r in template.find_resources("AWS::IAM::Role").values()
        ]
    )
    assert "system:serviceaccount:kube-system:s3-csi-driver-sa" in rendered
    assert template.find_resources("Custom::AWSCDKCfnJson") == {}


def test_the_cluster_has_an_oidc_provider(template: Template) -> None:
    template.has_resource_properties("AWS::IAM::OIDCProvider", {"Url": Match.any_value()})


def test_addons_are_pinned_and_the_operator_waits_for_its_dependencies(
    template: Template,
) -> None:
    addons = template.find_resources("AWS::EKS::Addon")
    by_name = {a["Properties"]["AddonName"]: (lid, a) for lid, a in addons.items()}
    assert by_name["amazon-sagemaker-hyperpod-inference"][1]["Properties"]["AddonVersion"] == (
        PINNED.inference_operator
    )
    assert by_name["aws-mountpoint-s3-csi-driver"][1]["Properties"]["AddonVersion"] == (
        PINNED.s3_csi_driver
    )
    assert by_name["metrics-server"][1]["Properties"]["AddonVersion"] == PINNED.metrics_server
    operator = by_name["amazon-sagemaker-hyperpod-inference"][1]
    assert {by_name["metrics-server"][0], by_name["aws-mountpoint-s3-csi-driver"][0]} <= set(
        operator["DependsOn"]
    )
    config = operator["Properties"]["ConfigurationValues"]
    assert "executionRoleArn" in json.dumps(config)
    template.has_resource_properties(
        "AWS::EKS::Addon",
        {
            "AddonName": "aws-mountpoint-s3-csi-driver",
            "ServiceAccountRoleArn": {"Fn::GetAtt": [Match.string_like_regexp("S3CsiRole"), "Arn"]},
        },
    )


def test_make_doctor_checks_the_addons_this_construct_installs(template: Template) -> None:
    """``make doctor`` (which imports no CDK) names each add-on the construct installs, under
    the config field that pins it."""
    from tools.doctor_checks import INFERENCE_ADDON_NAMES

    installed = {
        a["Properties"]["AddonName"]: a["Properties"]["AddonVersion"]
        for a in template.find_resources("AWS::EKS::Addon").values()
    }
    assert installed == {
        name: getattr(PINNED, field) for field, name in INFERENCE_ADDON_NAMES.items()
    }


def test_s3_csi_role_only_reads_the_models_bucket(template: Template) -> None:
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [{"Ref": Match.string_like_regexp("S3CsiRole")}],
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "s3:ListBucket",
                        "Effect": "Allow",
                        "Resource": "arn:aws:s3:::t-models-123456789012-us-east-1",
                    },
                    {
                        "Action": "s3:GetObject",
                        "Effect": "Allow",
                        "Resource": "arn:aws:s3:::t-models-123456789012-us-east-1/*",
                    },
                    {"Action": "kms:Decrypt", "Effect": "Allow", "Resource": Match.any_value()},
                ]
            },
        },
    )


def test_the_constructs_own_findings_are_acknowledged(
    built: tuple[cdk.Stack, HyperPodInferenceOperator],
) -> None:
    # The cluster the test builds has findings of its own; only this construct's count here.
    report = AwsSolutionsChecks().validate_scope(built[1])
    assert [v.rule_name for v in report.violations] == []
