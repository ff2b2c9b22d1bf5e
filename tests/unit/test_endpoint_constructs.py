"""`LmiEndpoint` and `EndpointExecutionRole` in a bare stack: the paths the example BUs do not
take (a volume key for a type without instance storage, capture off) and the refusals."""

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template
from harness.cdk_context import cdk_json_context
from harness.construct_builders import purpose_key

from inference.serving import ServingConfig, image_uri
from platform_constructs.endpoints import (
    EndpointExecutionRole,
    LmiEndpoint,
    ModelSource,
    image_repository_arn,
)

ENV = cdk.Environment(account="123456789012", region="eu-west-1")


def build(*, env: cdk.Environment | None = ENV, with_volume_key: bool) -> Template:
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Endpoint", env=env)
    vpc = ec2.Vpc(
        stack, "Vpc", availability_zones=["eu-west-1a", "eu-west-1b"], nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )  # fmt: skip
    key = purpose_key(stack, "Key", "alias/t/models").key
    role = EndpointExecutionRole(
        stack,
        "Role",
        role_name="t-endpoint-execution",
        image_uri=image_uri("eu-west-1"),
        vpc_id="vpc-0123456789abcdef0",
    )
    LmiEndpoint(
        stack,
        "Qwen3",
        endpoint_name="t-qwen3",
        image_uri=image_uri("eu-west-1"),
        environment=ServingConfig().to_environment(),
        instance_type="ml.g5.2xlarge",
        model=ModelSource(bucket_name="t-models", prefix="qwen3/v1/", key=key),
        role=role,
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        capture=None,
        volume_key=key if with_volume_key else None,
        initial_instance_count=1,
    )
    return Template.from_stack(stack)


def test_volume_key_when_the_type_has_no_instance_storage() -> None:
    template = build(with_volume_key=True)
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "KmsKeyId": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
            "DataCaptureConfig": Match.absent(),
        },
    )


def test_without_capture_the_role_writes_nothing() -> None:
    template = build(with_volume_key=False)
    policies = template.find_resources("AWS::IAM::Policy")
    actions = {
        action
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    assert "s3:PutObject" not in actions
    assert "s3:GetObject" in actions
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupIngress": Match.absent(),
            "SecurityGroupEgress": [Match.object_like({"FromPort": 443, "ToPort": 443})],
        },
    )


def test_a_stack_without_account_and_region_is_refused() -> None:
    with pytest.raises(ValueError, match="explicit account/region"):
        build(env=None, with_volume_key=False)


def test_image_repository_arn_comes_from_the_image_uri() -> None:
    stack = cdk.Stack(cdk.App(), "S", env=ENV)
    arn = image_repository_arn(stack, image_uri("eu-west-1"))
    account = image_uri("eu-west-1").split(".", 1)[0]
    resolved = stack.resolve(arn)["Fn::Join"][1]
    assert resolved[1:] == [
        {"Ref": "AWS::Partition"},
        f":ecr:eu-west-1:{account}:repository/djl-inference",
    ]
