"""What each BU's stacks contain: intent checked with has_resource_properties and Match."""

import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from harness.synthesized_app import CLONED_BU, EXAMPLE_BUS

from core.naming import BUCKET_PURPOSES, KEY_PURPOSES
from platform_constructs.network import INTERFACE_ENDPOINTS
from stacks._common import stage_tags
from tools.doctor_checks import stack_names

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT_SERVICES = [
    "sagemaker.api",
    "sagemaker.runtime",
    "studio",
    "notebook",
    "experiments",
    "sts",
    "ecr.api",
    "ecr.dkr",
    "logs",
    "monitoring",
    "eks",
    "eks-auth",
    "ec2",
    "elasticloadbalancing",
    "kms",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "secretsmanager",
    "fsx",
    "lambda",
    "aps-workspaces",
]


def test_one_stage_per_bu_with_prefixed_stack_names(synthesized) -> None:
    assert set(synthesized.stages) == set(EXAMPLE_BUS)
    for name, stage in synthesized.stages.items():
        assert stage.node.id == name  # so `cdk deploy '<bu>/*'` selects exactly this BU
        assert stage.network.stack_name == f"{name}-network"
        assert stage.security.stack_name == f"{name}-security"
        assert stage.network.account == synthesized.configs[name].account


def test_make_doctor_checks_every_stack_the_stage_deploys(synthesized, bu: str) -> None:
    """`make doctor` lists the BU's stacks from its config without synthesizing; a stack the
    stage adds (the pipeline's and the governance stack were once missed) must be in it."""
    stage = synthesized.stages[bu]
    deployed = [c.stack_name for c in stage.node.children if isinstance(c, cdk.Stack)]
    assert stack_names(synthesized.configs[bu]) == deployed


def test_private_subnets_in_the_configured_azs(synthesized, bu: str) -> None:
    cfg = synthesized.configs[bu]
    template = synthesized.template(bu, "network")
    template.has_resource_properties(
        "AWS::EC2::VPC", {"CidrBlock": str(cfg.network.cidr), "EnableDnsSupport": True}
    )
    subnets = list(cfg.network.cidr.subnets(new_prefix=cfg.network.private_subnet_prefix))
    for az, cidr in zip(cfg.network.availability_zones, subnets, strict=False):
        template.has_resource_properties(
            "AWS::EC2::Subnet",
            {"AvailabilityZone": az, "CidrBlock": str(cidr), "MapPublicIpOnLaunch": False},
        )


@pytest.mark.parametrize("bu", ["fraud", "credit", CLONED_BU])
def test_closed_egress_has_no_internet_path(synthesized, bu: str) -> None:
    template = synthesized.template(bu, "network")
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    assert not template.find_resources(
        "AWS::EC2::Route", {"Properties": {"DestinationCidrBlock": "0.0.0.0/0"}}
    )


def test_nat_egress_single_gateway(synthesized) -> None:
    template = synthesized.template("marketing", "network")
    template.has_resource_properties("AWS::EC2::NatGateway", {"SubnetId": Match.any_value()})
    template.resource_count_is("AWS::EC2::NatGateway", 1)  # nat_gateways: single
    template.has_resource_properties(
        "AWS::EC2::Route",
        {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": Match.any_value()},
    )
    template.has_resource_properties(
        "AWS::EC2::Subnet", {"CidrBlock": "10.66.32.0/26", "MapPublicIpOnLaunch": False}
    )


def test_vpc_endpoints_for_a_closed_network(synthesized, bu: str) -> None:
    region = synthesized.configs[bu].region
    template = synthesized.template(bu, "network")
    assert len(ENDPOINT_SERVICES) == len(INTERFACE_ENDPOINTS)
    for service in ENDPOINT_SERVICES:
        template.has_resource_properties(
            "AWS::EC2::VPCEndpoint",
            {
                "ServiceName": Match.string_like_regexp(rf"\.{region}\.{re.escape(service)}$"),
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,
                "SecurityGroupIds": Match.any_value(),
            },
        )
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Gateway",
            "ServiceName": Match.object_like({"Fn::Join": Match.any_value()}),
        },
    )


def test_endpoint_security_group_admits_only_the_vpc(synthesized, bu: str) -> None:
    cidr = str(synthesized.configs[bu].network.cidr)
    template = synthesized.template(bu, "network")
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Interface VPC endpoints"),
            "SecurityGroupIngress": [
                {
                    "CidrIp": cidr,
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpProtocol": "tcp",
                    "Description": Match.any_value(),
                }
            ],
        },
    )
    for group in template.find_resources("AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") == cidr


def test_flow_logs_to_an_encrypted_log_group(synthesized, bu: str) -> None:
    template = synthesized.template(bu, "network")
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": f"/{bu}/vpc-flow-logs",
            "KmsKeyId": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            "RetentionInDays": synthesized.configs[bu].network.flow_log_retention_days,
        },
    )
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )


def test_keys_per_purpose_with_rotation(synthesized, bu: str) -> None:
    template = synthesized.template(bu, "security")
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    for key in template.find_resources("AWS::KMS::Key").values():
        assert key["Properties"]["EnableKeyRotation"] is True
    for purpose in BUCKET_PURPOSES:
        if purpose != "access-logs":
            template.has_resource_properties(
                "AWS::KMS::Alias", {"AliasName": f"alias/{bu}/{purpose}"}
            )


def test_buckets_are_encrypted_logged_versioned_and_tls_only(synthesized, bu: str) -> None:
    cfg = synthesized.configs[bu]
    template = synthesized.template(bu, "security")
    for purpose in BUCKET_PURPOSES:
        if purpose == "access-logs":
            continue
        name = cfg.naming.bucket(purpose)
        template.has_resource_properties(
            "AWS::S3::Bucket",
            {
                "BucketName": name,
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        Match.object_like(
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": Match.any_value(),
                                }
                            }
                        )
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "LoggingConfiguration": {
                    "DestinationBucketName": Match.any_value(),
                    "LogFilePrefix": f"{name}/",
                },
                "LifecycleConfiguration": {
                    "Rules": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                                    "NoncurrentVersionExpiration": Match.any_value(),
                                    "Status": "Enabled",
                                }
                            )
                        ]
                    )
                },
            },
        )
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": cfg.naming.bucket("access-logs"),
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )
    policies = template.find_resources("AWS::S3::BucketPolicy")
    # Every bucket, the access-log one included, and the inference TLS bucket of a BU that
    # serves on HyperPod.
    optional = cfg.endpoints is not None and bool(cfg.endpoints.on("hyperpod"))
    assert len(policies) == len(BUCKET_PURPOSES) + optional
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Action"] == "s3:*"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ), statements


@pytest.mark.parametrize(("bu", "policy"), [("fraud", "Retain"), ("marketing", "Delete")])
def test_removal_policy_from_config(synthesized, bu: str, policy: str) -> None:
    template = synthesized.template(bu, "security")
    for resource_type in ("AWS::S3::Bucket", "AWS::KMS::Key"):
        resources = template.find_resources(resource_type)
        assert resources
        assert {r["DeletionPolicy"] for r in resources.values()} == {policy}
        assert {r["UpdateReplacePolicy"] for r in resources.values()} == {policy}
    synthesized.template(bu, "network").has_resource(
        "AWS::Logs::LogGroup", {"DeletionPolicy": policy}
    )


def test_cost_allocation_tags_on_every_taggable_resource(synthesized, bu: str) -> None:
    # Taggable = the type's CloudFormation registry schema (as cfn-lint ships it) has `Tags`.
    config = synthesized.configs[bu]
    expected = [{"Key": k, "Value": v} for k, v in stage_tags(config).items()]
    untagged = []
    for (owner, _), template in synthesized.templates.items():
        if owner != bu:
            continue
        for logical_id, resource in template.to_json()["Resources"].items():
            if logical_id.startswith("EksClusterKubectlReadyBarrier"):
                continue  # aws_eks_v2's internal ordering parameter: cdk.Tags does not reach it
            schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(config.region, resource["Type"])
            if "Tags" not in schema.schema.get("properties", {}):
                continue
            tags = resource.get("Properties", {}).get("Tags", [])
            if isinstance(tags, dict):  # map-style Tags (SSM parameters, EKS, ...)
                tags = [{"Key": k, "Value": v} for k, v in tags.items()]
            if any(tag not in tags for tag in expected):
                untagged.append((resource["Type"], logical_id))
    assert untagged == [], untagged


def test_no_physical_name_collides_across_bus(synthesized) -> None:
    name_props = ("BucketName", "AliasName", "LogGroupName", "RoleName")
    names: list[str] = []
    for template in synthesized.templates.values():
        for resource in template.to_json()["Resources"].values():
            props = resource.get("Properties", {})
            names += [props[p] for p in name_props if isinstance(props.get(p), str)]
    names += [
        stack.stack_name
        for stage in synthesized.stages.values()
        for stack in stage.node.children
        if isinstance(stack, cdk.Stack)
    ]
    assert sorted(n for n in names if names.count(n) > 1) == []
    # Every name the naming helper promises is there (later stacks add more names).
    promised = {
        name
        for config in synthesized.configs.values()
        for name in (
            *(config.naming.bucket(p) for p in BUCKET_PURPOSES),
            *(config.naming.key_alias(p) for p in KEY_PURPOSES),
            config.naming.log_group("vpc-flow-logs"),
            config.naming.stack("network"),
            config.naming.stack("security"),
        )
    }
    assert promised - set(names) == set()


def test_no_account_arn_or_az_hard_coded_outside_config() -> None:
    sources = [ROOT / "app.py", *(ROOT / "stacks").rglob("*.py")]
    sources += [*(ROOT / "platform_constructs").rglob("*.py"), ROOT / "cdk.json"]
    pattern = re.compile(r"\b\d{12}\b|arn:aws|\b[a-z]{2}-[a-z]+-\d[a-z]\b")
    hits = [f"{p}: {m.group()}" for p in sources for m in pattern.finditer(p.read_text())]
    assert hits == []
