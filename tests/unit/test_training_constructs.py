"""The training constructs in a bare Stack(): image repository, managed-job role and group.

MLflow is a small fake implementing ``MlflowAccess`` (the MLflow stack is another branch's);
it grants one statement, as the real one does, so the inline-policy acknowledgement is exercised.
"""

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from harness.cdk_context import cdk_json_context
from harness.construct_builders import purpose_key

from platform_constructs.gates import PACKS
from platform_constructs.training import ManagedJobAccess, TrainingImageRepository


class FakeMlflow:
    """Stands in for the MLflow stack: grants its data plane on one tracking server."""

    def grant_access(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker-mlflow:LogMetric"],
            resource_arns=["arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/t"],
        )


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Jobs")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    endpoints = ec2.SecurityGroup(stack, "Endpoints", vpc=vpc, allow_all_outbound=False)

    def key(name: str) -> Any:
        return purpose_key(stack, f"{name}Key", f"alias/t/{name}").key

    volume_key = key("training")
    image = TrainingImageRepository(
        stack,
        "Image",
        repository_name="t-training",
        encryption_key=volume_key,
        keep_images=30,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    buckets = [s3.Bucket.from_bucket_name(stack, f"B{n}", f"t-{n}") for n in ("data", "models")]
    jobs = ManagedJobAccess(
        stack,
        "ManagedJobs",
        role_name="t-training-job-us-east-1",
        job_name_prefix="t-",
        vpc=vpc,
        endpoint_security_group=endpoints,
        buckets=buckets,
        bucket_keys=[key("data"), key("models")],
        repository=image.repository,
        volume_key=volume_key,
        mlflow=FakeMlflow(),
    )
    return {"stack": stack, "template": Template.from_stack(stack), "jobs": jobs, "app": app}


def _statements(template: Template) -> dict[str, dict[str, Any]]:
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_repository_is_kms_encrypted_immutable_scanned_and_pruned(built) -> None:
    built["template"].has_resource(
        "AWS::ECR::Repository",
        {
            "Properties": {
                "RepositoryName": "t-training",
                "EncryptionConfiguration": {
                    "EncryptionType": "KMS",
                    "KmsKey": {"Fn::GetAtt": [Match.string_like_regexp("^trainingKey"), "Arn"]},
                },
                "ImageTagMutability": "IMMUTABLE",
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "LifecyclePolicy": {
                    "LifecyclePolicyText": Match.serialized_json(
                        {
                            "rules": [
                                Match.object_like(
                                    {
                                        "selection": {
                                            "tagStatus": "any",
                                            "countType": "imageCountMoreThan",
                                            "countNumber": 30,
                                        },
                                        "action": {"type": "expire"},
                                    }
                                )
                            ]
                        }
                    )
                },
            },
            "DeletionPolicy": "Retain",
        },
    )


def test_role_is_assumed_by_sagemaker_of_this_account_only(built) -> None:
    built["template"].has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "t-training-job-us-east-1",
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                        },
                    }
                ]
            },
        },
    )


def test_policy_reaches_only_the_given_buckets_keys_repository_and_job_logs(built) -> None:
    st = _statements(built["template"])
    objects = st["ReadWriteOwnObjects"]
    assert sorted(objects["Action"]) == [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:PutObject",
    ]
    rendered = str(objects["Resource"])
    assert ":s3:::t-data/*" in rendered
    assert ":s3:::t-models/*" in rendered
    assert len(objects["Resource"]) == 2
    assert len(st["UseOwnBucketKeys"]["Resource"]) == 3  # two bucket keys and the volume key
    assert st["EncryptJobVolumes"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert st["PullOwnImage"]["Resource"] == {"Fn::GetAtt": [_id(built, "Repository"), "Arn"]}
    assert st["JobEnisInThisVpc"]["Condition"]["ArnEquals"]["ec2:Vpc"]
    streams = str(st["WriteOwnJobLogs"]["Resource"])
    assert "/aws/sagemaker/TrainingJobs:log-stream:t-*" in streams
    assert "/aws/sagemaker/ProcessingJobs:log-stream:t-*" in streams
    wildcard = [s for s in st.values() if s["Resource"] == "*"]
    assert {s["Sid"] for s in wildcard} == {"EcrLoginAndVpcDescribe", "JobEnisInThisVpc"}
    assert not any(a.endswith("*") for s in st.values() for a in _actions(s))


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _id(built: dict[str, Any], suffix: str) -> str:
    (logical_id,) = [
        k
        for k in built["template"].find_resources("AWS::ECR::Repository")
        if k.startswith("Image") and suffix in k
    ]
    return logical_id


def test_security_group_admits_only_its_own_jobs(built) -> None:
    template = built["template"]
    group_id = built["stack"].resolve(built["jobs"].security_group.security_group_id)
    ingress = template.find_resources("AWS::EC2::SecurityGroupIngress")
    assert {r["Properties"]["IpProtocol"] for r in ingress.values()} == {"tcp", "udp", "50"}
    for rule in ingress.values():
        assert rule["Properties"]["SourceSecurityGroupId"] == group_id
        assert "CidrIp" not in rule["Properties"]
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "DestinationSecurityGroupId": {
                "Fn::GetAtt": [Match.string_like_regexp("^Endpoints"), "GroupId"]
            },
        },
    )


def test_mlflow_access_is_granted_to_the_role(built) -> None:
    built["template"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [Match.object_like({"Action": "sagemaker-mlflow:LogMetric"})]
            },
            "Roles": [{"Ref": Match.string_like_regexp("^ManagedJobsRole")}],
        },
    )


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.__name__)
def test_constructs_have_no_unacknowledged_findings(built, pack) -> None:
    report = pack().validate_scope(built["stack"])
    ours = [
        f"{v.rule_name} at {c.construct_path}"
        for v in report.violations
        for c in v.violating_resources
        if "/Image/" in c.construct_path or "/ManagedJobs/" in c.construct_path
    ]
    assert ours == []
