"""Each construct in a bare Stack(): intent via has_resource_properties and Match."""

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from platform_constructs.gates import PACKS, acknowledge, register_gates
from platform_constructs.network import INTERFACE_ENDPOINTS


@pytest.fixture(scope="session")
def templates(construct_stacks: dict[str, Any]) -> dict[str, Template]:
    return {
        name: Template.from_stack(construct_stacks[name])
        for name in ("Storage", "ClosedVpc", "NatVpc", "ForeignKey")
    }


def test_key_rotates_with_a_long_pending_window(templates: dict[str, Template]) -> None:
    templates["Storage"].has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "PendingWindowInDays": 30},
            "DeletionPolicy": "Retain",
        },
    )
    templates["Storage"].has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/t/data"})


def test_secure_bucket(templates: dict[str, Template]) -> None:
    templates["Storage"].has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    "BucketName": "t-data",
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "BucketKeyEnabled": True,
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": Match.any_value(),
                                },
                            }
                        ]
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LoggingConfiguration": {
                        "DestinationBucketName": {"Ref": Match.string_like_regexp("^Logs")},
                        "LogFilePrefix": "t-data/",
                    },
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "housekeeping",
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                                "Status": "Enabled",
                            }
                        ]
                    },
                }
            ),
            "DeletionPolicy": "Delete",
        },
    )


def test_no_auto_delete_custom_resource(templates: dict[str, Template]) -> None:
    # A `destroy` bucket must not bring the auto-delete Lambda (it fails HIPAA/NIST rules).
    templates["Storage"].resource_count_is("AWS::Lambda::Function", 0)
    templates["Storage"].resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_access_log_bucket_accepts_only_the_logging_service(
    templates: dict[str, Template],
) -> None:
    templates["Storage"].has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:PutObject",
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Condition": Match.object_like(
                                    {"ArnLike": {"aws:SourceArn": Match.any_value()}}
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )
    templates["Storage"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": "t-access-logs",
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [{"Id": "expire-logs", "ExpirationInDays": 400, "Status": "Enabled"}]
                )
            },
        },
    )


def test_closed_vpc_has_isolated_subnets_only(templates: dict[str, Template]) -> None:
    closed = templates["ClosedVpc"]
    for az, cidr in zip(
        ("a", "b", "c"), ("10.1.0.0/19", "10.1.32.0/19", "10.1.64.0/19"), strict=True
    ):
        closed.has_resource_properties(
            "AWS::EC2::Subnet",
            {"AvailabilityZone": f"us-east-1{az}", "CidrBlock": cidr, "MapPublicIpOnLaunch": False},
        )
    closed.resource_count_is("AWS::EC2::InternetGateway", 0)
    closed.resource_count_is("AWS::EC2::NatGateway", 0)
    assert len(closed.find_resources("AWS::EC2::VPCEndpoint")) == len(INTERFACE_ENDPOINTS) + 1


def _only(template: Template, resource_type: str) -> str:
    (logical_id,) = template.find_resources(resource_type)
    return logical_id


def test_nat_vpc_one_gateway_per_az(templates: dict[str, Template]) -> None:
    nat = templates["NatVpc"]
    # The internet gateway is attached to this VPC, and the public subnets route through it.
    igw, vpc = _only(nat, "AWS::EC2::InternetGateway"), _only(nat, "AWS::EC2::VPC")
    nat.has_resource_properties(
        "AWS::EC2::VPCGatewayAttachment", {"InternetGatewayId": {"Ref": igw}, "VpcId": {"Ref": vpc}}
    )
    public_routes = nat.find_resources(
        "AWS::EC2::Route", {"Properties": {"GatewayId": {"Ref": igw}}}
    )
    assert len(public_routes) == 3
    assert all(
        r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0" for r in public_routes.values()
    )
    gateways = nat.find_resources("AWS::EC2::NatGateway")
    assert len(gateways) == 3
    # Each private subnet's default route goes to a NAT gateway, never to the IGW.
    private_routes = nat.find_resources(
        "AWS::EC2::Route", {"Properties": {"NatGatewayId": Match.any_value()}}
    )
    assert {r["Properties"]["NatGatewayId"]["Ref"] for r in private_routes.values()} == set(
        gateways
    )
    public_subnets = nat.find_resources(
        "AWS::EC2::Subnet", {"Properties": {"CidrBlock": Match.string_like_regexp("/26$")}}
    )
    assert len(public_subnets) == 3
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in public_subnets.values())


def test_flow_log_key_admits_the_logs_service(templates: dict[str, Template]) -> None:
    templates["ClosedVpc"].has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {
                                    "Service": {
                                        "Fn::Join": [
                                            "",
                                            ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"],
                                        ]
                                    }
                                },
                                "Action": Match.array_with(["kms:Decrypt*", "kms:Encrypt*"]),
                                "Condition": {
                                    "ArnEquals": {
                                        "kms:EncryptionContext:aws:logs:arn": {
                                            "Fn::Join": [
                                                "",
                                                Match.array_with([":log-group:/t/ClosedVpc"]),
                                            ]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_flow_logs_leave_a_key_they_do_not_own_alone(templates: dict[str, Template]) -> None:
    foreign = templates["ForeignKey"]
    foreign.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/t/foreign", "KmsKeyId": Match.any_value()}
    )
    (key,) = foreign.find_resources("AWS::KMS::Key").values()
    principals = [s.get("Principal", {}) for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert all("Service" not in principal for principal in principals), principals


@pytest.mark.parametrize("name", ["Storage", "ClosedVpc", "NatVpc"])  # ForeignKey: see above
@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.__name__)
def test_constructs_pass_every_pack(construct_stacks: dict[str, Any], name: str, pack: Any) -> None:
    report = pack().validate_scope(construct_stacks[name])
    assert [v.rule_name for v in report.violations] == []


def _insecure_stack() -> tuple[cdk.App, cdk.Stack, s3.Bucket]:
    app = cdk.App(builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Insecure")
    bucket = s3.Bucket(
        stack, "Open", block_public_access=s3.BlockPublicAccess(block_public_policy=False)
    )
    return app, stack, bucket


@pytest.mark.parametrize(
    ("pack", "rule"),
    [
        (PACKS[0], "AwsSolutions-S10"),
        (PACKS[1], "HIPAA.Security-S3BucketSSLRequestsOnly"),
        (PACKS[2], "NIST.800.53.R5-S3BucketLoggingEnabled"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_gate_reports_an_insecure_bucket(pack: Any, rule: str) -> None:
    _, stack, _ = _insecure_stack()
    report = pack().validate_scope(stack)
    assert not report.success
    assert rule in {v.rule_name for v in report.violations}


def test_an_acknowledgement_silences_exactly_one_finding() -> None:
    _, stack, bucket = _insecure_stack()
    before = {v.rule_name for v in PACKS[0]().validate_scope(stack).violations}
    acknowledge(
        bucket, "AwsSolutions-S1", "Test-only bucket: proves one acknowledgement hides one rule"
    )
    after = {v.rule_name for v in PACKS[0]().validate_scope(stack).violations}
    assert before - after == {"AwsSolutions-S1"}
    assert "AwsSolutions-S10" in after


@pytest.mark.parametrize(
    ("finding", "reason"),
    [
        ("AwsSolutions-*", "a long enough reason that would otherwise be accepted here"),
        ("AwsSolutions-S1,AwsSolutions-S10", "a long enough reason that would otherwise pass"),
        ("AwsSolutions-S1", "because"),
    ],
)
def test_acknowledge_refuses_blanket_or_vague(finding: str, reason: str) -> None:
    _, _, bucket = _insecure_stack()
    with pytest.raises(ValueError, match=r"acknowledge one|specific reason"):
        acknowledge(bucket, finding, reason)


def test_registered_gates_fail_the_app_synth(tmp_path: Any) -> None:
    from platform_constructs.gate_report import validation_lines

    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    register_gates(app)
    stack = cdk.Stack(app, "Insecure")
    s3.Bucket(stack, "Open")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()  # `cdk synth` exits 1 the same way
    lines = validation_lines(tmp_path)
    for pack in ("AwsSolutions", "HIPAA.Security", "NIST.800.53.R5"):
        assert any(line.startswith(f"{pack}: ") for line in lines), lines
