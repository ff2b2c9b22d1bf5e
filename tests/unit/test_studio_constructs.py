"""The Studio and MLflow constructs in bare stacks: the domain, the trusted-identity-propagation
switch (its call checked against botocore's SageMaker model with a Stubber), the execution
role's trust and scope, profiles, assignments, spaces, MLflow and its grants, every nag pack."""

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from botocore.stub import Stubber
from harness.cdk_context import cdk_json_context
from harness.construct_builders import flow_logs, platform_vpc, purpose_key

from platform_constructs.buckets import AccessLogBucket, SecureBucket
from platform_constructs.gates import PACKS, acknowledge
from platform_constructs.mlflow import APP_ACTIONS, TRACKING_SERVER_ACTIONS, ManagedMlflow
from platform_constructs.studio_domain import IdeSettings, StudioDomain
from platform_constructs.studio_people import (
    ApplicationAssignment,
    SpaceSpec,
    StudioSpace,
    StudioUserProfile,
)
from platform_constructs.studio_role import StudioExecutionRole

USER_ID = "9067a1b2c3-4f1e2d3c-5b6a-4798-8a9b-0c1d2e3f4a5b"
GROUP_ID = "9067a1b2c3-1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
ENV = cdk.Environment(account="123456789012", region="us-east-1")
SAGEMAKER = "sagemaker.amazonaws.com"


@dataclass
class Built:
    studio: cdk.Stack
    mlflow: dict[str, cdk.Stack]
    tip_off: cdk.Stack

    def template(self, stack: cdk.Stack) -> Template:
        return Template.from_stack(stack)


def _bucket(stack: cdk.Stack, name: str) -> s3.IBucket:
    """A platform bucket (KMS, logged, TLS only), as the security stack makes them."""
    key = purpose_key(stack, f"{name}Key", f"alias/t/{name}").key
    logs = AccessLogBucket(stack, "Logs", bucket_name="t-logs", removal_policy=_DESTROY).bucket
    return SecureBucket(
        stack,
        name,
        bucket_name=f"t-{name.lower()}",
        encryption_key=key,
        access_logs=logs,
        removal_policy=_DESTROY,
    ).bucket


_DESTROY = cdk.RemovalPolicy.DESTROY
# Alice's private Code Editor space (remote access on) and a shared JupyterLab one, by construct ID.
SPACES = {
    "AliceCode": SpaceSpec(
        "alice-code-editor", "CodeEditor", "ml.m5.xlarge", 30, "alice", False, True
    ),
    "Team": SpaceSpec("team", "JupyterLab", "ml.t3.medium", 20, "alice", True, False),
}


@pytest.fixture(scope="session")
def built() -> Built:
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Studio", env=ENV)
    studio_key = purpose_key(stack, "StudioKey", "alias/t/studio")
    for group in ("/t/studio", "/t/flow-logs"):  # as the owning stacks do
        studio_key.admit_log_group(group)
    key = studio_key.key
    vpc = platform_vpc(
        stack, "t-vpc", cidr="10.1.0.0/16", availability_zones=["us-east-1a", "us-east-1b"]
    ).vpc
    flow_logs(stack, vpc, log_group_name="/t/flow-logs", encryption_key=key)
    execution = StudioExecutionRole(stack, "Execution", role_name="t-studio-execution")
    ide = IdeSettings("ml.m5.large", 20, 60, 60, 480)
    domain = StudioDomain(
        stack,
        "Domain",
        domain_name="t-studio",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        vpc_cidr="10.1.0.0/16",
        encryption_key=key,
        execution_role=execution.role,
        jupyterlab=ide,
        code_editor=IdeSettings("ml.m5.xlarge", 30, 120, 60, 720),
        max_ebs_size_gb=100,
        trusted_identity_propagation=True,
        log_group_name="/t/studio",
        log_retention=cdk.aws_logs.RetentionDays.ONE_YEAR,
        removal_policy=_DESTROY,
    )
    execution.allow_domain(domain.domain)
    execution.allow_bu_workloads(hyperpod_tag=("business-unit", "t"), endpoint_prefix="t-")
    execution.acknowledge_wildcards()
    app_arn = domain.domain.attr_single_sign_on_application_arn
    alice = StudioUserProfile(
        stack,
        "Alice",
        domain_id=domain.domain_id,
        application_arn=app_arn,
        profile_name="alice",
        user_name="alice@example.com",
        user_id=USER_ID,
        removal_policy=_DESTROY,
    )
    for space_id, spec in SPACES.items():
        StudioSpace(
            stack,
            space_id,
            domain_id=domain.domain_id,
            spec=spec,
            owner=alice.profile,
            removal_policy=_DESTROY,
        )
    ApplicationAssignment(
        stack, "Group", application_arn=app_arn, principal_id=GROUP_ID, principal_type="GROUP"
    )
    mlflow_stacks = {}
    for kind in ("app", "tracking_server"):
        ml = cdk.Stack(app, f"Mlflow{kind.title().replace('_', '')}", env=ENV)
        bucket = _bucket(ml, "Artifacts")
        mlflow = ManagedMlflow(
            ml,
            "Mlflow",
            name="t-mlflow",
            kind=kind,  # type: ignore[arg-type]
            artifact_bucket=bucket,
            role_name=f"t-mlflow-{kind}",
            automatic_model_registration=kind == "tracking_server",
            registered_model_prefix="t--",
            size="Medium",
            mlflow_version="3.0" if kind == "tracking_server" else None,
            removal_policy=_DESTROY,
        )
        workload = iam.Role(ml, "Workload", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
        mlflow.grant_access(workload)
        for pack in ("HIPAA.Security", "NIST.800.53.R5"):  # the grantee's owner decides this
            acknowledge(
                workload.node.find_child("DefaultPolicy"),
                f"{pack}-IAMNoInlinePolicy",
                "test workload role: its only inline policy is the MLflow grant under test",
            )
        mlflow_stacks[kind] = ml
    # The same domain with trusted identity propagation turned off in config.
    off = cdk.Stack(app, "TipOff", env=ENV)
    StudioDomain(
        off,
        "Domain",
        domain_name="t-studio",
        vpc=ec2.Vpc.from_vpc_attributes(
            off,
            "Vpc",
            vpc_id="vpc-12345678",
            availability_zones=["us-east-1a"],
            isolated_subnet_ids=["subnet-12345678"],
        ),
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        vpc_cidr="10.1.0.0/16",
        encryption_key=purpose_key(off, "Key", "alias/t/studio").key,
        execution_role=iam.Role(off, "Role", assumed_by=iam.ServicePrincipal(SAGEMAKER)),
        jupyterlab=ide,
        code_editor=ide,
        max_ebs_size_gb=100,
        trusted_identity_propagation=False,
        log_group_name="/t/studio",
        log_retention=cdk.aws_logs.RetentionDays.ONE_YEAR,
        removal_policy=_DESTROY,
    )
    return Built(stack, mlflow_stacks, off)


@pytest.fixture(scope="session")
def studio(built: Built) -> Template:
    """The Studio stack's template, read once for the tests of its resources."""
    return built.template(built.studio)


def test_domain_signs_in_with_identity_center_inside_the_vpc(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::SageMaker::Domain",
        {
            "AuthMode": "SSO",
            "AppNetworkAccessType": "VpcOnly",
            "DomainName": "t-studio",
            "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("StudioKey"), "Arn"]},
            "SubnetIds": Match.array_with([{"Ref": Match.string_like_regexp("privateSubnet1")}]),
            "VpcId": {"Ref": Match.string_like_regexp("Vpc")},
            "TagPropagation": "ENABLED",
            "DomainSettings": {"ExecutionRoleIdentityConfig": "USER_PROFILE_NAME"},
            "DefaultUserSettings": Match.object_like(
                {
                    "SecurityGroups": [
                        {"Fn::GetAtt": [Match.string_like_regexp("AppSecurityGroup"), "GroupId"]}
                    ],
                    "JupyterLabAppSettings": {
                        "DefaultResourceSpec": {"InstanceType": "ml.m5.large"},
                        "AppLifecycleManagement": {
                            "IdleSettings": {
                                "LifecycleManagement": "ENABLED",
                                "IdleTimeoutInMinutes": 60,
                                "MinIdleTimeoutInMinutes": 60,
                                "MaxIdleTimeoutInMinutes": 480,
                            }
                        },
                    },
                    "CodeEditorAppSettings": Match.object_like(
                        {
                            "AppLifecycleManagement": {
                                "IdleSettings": Match.object_like({"IdleTimeoutInMinutes": 120})
                            }
                        }
                    ),
                    "SpaceStorageSettings": {
                        "DefaultEbsStorageSettings": {
                            "DefaultEbsVolumeSizeInGb": 20,
                            "MaximumEbsVolumeSizeInGb": 100,
                        }
                    },
                }
            ),
        },
    )


def test_app_security_group_admits_only_itself(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("^Studio apps"),
            "SecurityGroupEgress": Match.array_with(
                [
                    Match.object_like({"CidrIp": "10.1.0.0/16", "FromPort": 2049, "ToPort": 2049}),
                    Match.object_like({"CidrIp": "0.0.0.0/0", "FromPort": 443, "ToPort": 443}),
                ]
            ),
        },
    )
    ingress = studio.find_resources("AWS::EC2::SecurityGroupIngress")
    assert ingress
    for rule in ingress.values():
        props = rule["Properties"]
        assert props["SourceSecurityGroupId"] == props["GroupId"]  # self only
        assert (props["FromPort"], props["ToPort"]) == (8192, 65535)


def _custom_resource(built: Built, stack: cdk.Stack | None = None) -> dict[str, Any]:
    template = built.template(stack or built.studio)
    (resource,) = template.find_resources("Custom::AWS").values()
    return resource


def _sdk_call(
    built: Built, event: str, domain_id: str, stack: cdk.Stack | None = None
) -> dict[str, Any]:
    """The JSON the provider receives, with the domain ID substituted as CloudFormation would."""
    parts = _custom_resource(built, stack)["Properties"][event]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else domain_id for p in parts)
    call: dict[str, Any] = json.loads(text)
    return call


def test_tip_switch_calls_update_domain_on_create_and_update_only(built: Built) -> None:
    resource = _custom_resource(built)
    props = resource["Properties"]
    assert props["InstallLatestAwsSdk"] is False  # no npm download in a closed network
    assert "Delete" not in props  # deleting the stack leaves the setting with the domain
    domain_refs = [
        p for p in props["Create"]["Fn::Join"][1] if isinstance(p, dict)
    ]  # every token is the domain ID
    assert domain_refs
    assert all(p["Fn::GetAtt"][1] == "DomainId" for p in domain_refs)
    for event in ("Create", "Update"):
        call = _sdk_call(built, event, "d-abcdef123456")
        assert (call["service"], call["action"]) == ("SageMaker", "updateDomain")
        assert call["parameters"] == {
            "DomainId": "d-abcdef123456",
            "DomainSettingsForUpdate": {
                "TrustedIdentityPropagationSettings": {"Status": "ENABLED"}
            },
        }
        assert call["physicalResourceId"] == {"id": "d-abcdef123456"}  # same resource on update


def test_tip_switch_turns_it_off_when_config_does(built: Built) -> None:
    for event in ("Create", "Update"):
        call = _sdk_call(built, event, "d-abcdef123456", built.tip_off)
        settings = call["parameters"]["DomainSettingsForUpdate"]
        assert settings == {"TrustedIdentityPropagationSettings": {"Status": "DISABLED"}}


def test_tip_parameters_are_a_valid_update_domain_request(built: Built) -> None:
    """botocore's Stubber validates the parameters against the SageMaker API model (no AWS)."""
    params = _sdk_call(built, "Create", "d-abcdef123456")["parameters"]
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "update_domain",
            {"DomainArn": "arn:aws:sagemaker:us-east-1:123456789012:domain/d-abcdef123456"},
            expected_params=params,
        )
        client.update_domain(**params)
        stub.assert_no_pending_responses()


def test_tip_function_is_scoped_to_this_domain_and_the_vpc(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "sagemaker:UpdateDomain",
                        "Effect": "Allow",
                        "Resource": {
                            "Fn::GetAtt": [Match.string_like_regexp("^Domain"), "DomainArn"]
                        },
                    }
                ],
                "Version": "2012-10-17",
            }
        },
    )
    studio.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "VpcConfig": {
                "SubnetIds": Match.array_with([{"Ref": Match.string_like_regexp("privateSubnet")}]),
                "SecurityGroupIds": Match.any_value(),
            },
            "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp("CustomResourceLogs")}},
        },
    )
    studio.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Lambda Function"),
            "SecurityGroupEgress": [Match.object_like({"FromPort": 443, "ToPort": 443})],
        },
    )
    studio.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/t/studio", "KmsKeyId": Match.any_value()}
    )


def test_execution_role_trusts_sagemaker_with_set_context(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": "t-studio-execution",
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": ["sts:AssumeRole", "sts:SetContext", "sts:SetSourceIdentity"],
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                    }
                ],
                "Version": "2012-10-17",
            },
        },
    )


def _statements(template: Template, resource_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for resource in template.find_resources(resource_type).values():
        out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_remote_sessions_only_into_own_spaces(studio: Template) -> None:
    statements = _statements(studio, "AWS::IAM::ManagedPolicy")
    (start,) = [s for s in statements if s["Action"] == "sagemaker:StartSession"]
    parts = start["Resource"]["Fn::Join"][1]
    resource = "".join(p if isinstance(p, str) else "<id>" for p in parts)
    assert resource == "arn:aws:sagemaker:us-east-1:123456789012:space/<id>/*"
    (condition,) = start["Condition"]["ArnLike"].values()
    owner = "".join(p if isinstance(p, str) else "<id>" for p in condition["Fn::Join"][1])
    assert owner.endswith(":user-profile/<id>/${sagemaker:UserProfileName}")
    assert list(start["Condition"]["ArnLike"]) == [
        "sagemaker:ResourceTag/sagemaker:user-profile-arn"
    ]


def test_execution_role_reaches_this_bus_cluster_and_endpoints_only(studio: Template) -> None:
    statements = {s.get("Sid"): s for s in _statements(studio, "AWS::IAM::ManagedPolicy")}
    cluster = statements["ThisBuHyperPodCluster"]
    assert cluster["Condition"] == {"StringEquals": {"aws:ResourceTag/business-unit": "t"}}
    assert statements["ThisBuEndpoints"]["Resource"].endswith(":endpoint/t-*")
    wildcard = [s for s in statements.values() if s["Resource"] == "*"]
    # Only the List APIs without resource types; ListTags takes resource ARNs.
    assert {a for s in wildcard for a in _actions(s)} == {
        "sagemaker:ListApps",
        "sagemaker:ListSpaces",
        "sagemaker:ListClusters",
    }


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_user_profile_and_assignments_from_identity_center(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::SageMaker::UserProfile",
        {
            "UserProfileName": "alice",
            "SingleSignOnUserIdentifier": "UserName",
            "SingleSignOnUserValue": "alice@example.com",
            "DomainId": {"Fn::GetAtt": [Match.any_value(), "DomainId"]},
        },
    )
    for principal, kind in ((USER_ID, "USER"), (GROUP_ID, "GROUP")):
        studio.has_resource_properties(
            "AWS::SSO::ApplicationAssignment",
            {
                "ApplicationArn": {"Fn::GetAtt": [Match.any_value(), "SingleSignOnApplicationArn"]},
                "PrincipalId": principal,
                "PrincipalType": kind,
            },
        )


def test_spaces_are_owned_and_remote_capable(studio: Template) -> None:
    studio.has_resource_properties(
        "AWS::SageMaker::Space",
        {
            "SpaceName": "alice-code-editor",
            "OwnershipSettings": {"OwnerUserProfileName": "alice"},
            "SpaceSharingSettings": {"SharingType": "Private"},
            "SpaceSettings": {
                "AppType": "CodeEditor",
                "CodeEditorAppSettings": {"DefaultResourceSpec": {"InstanceType": "ml.m5.xlarge"}},
                "SpaceStorageSettings": {"EbsStorageSettings": {"EbsVolumeSizeInGb": 30}},
                "RemoteAccess": "ENABLED",
            },
        },
    )
    studio.has_resource_properties(
        "AWS::SageMaker::Space",
        {
            "SpaceName": "team",
            "SpaceSharingSettings": {"SharingType": "Shared"},
            "SpaceSettings": Match.object_like(
                {"AppType": "JupyterLab", "RemoteAccess": "DISABLED"}
            ),
        },
    )
    for space in studio.find_resources("AWS::SageMaker::Space").values():
        assert any("AliceProfile" in d for d in space["DependsOn"])


@pytest.mark.parametrize(
    ("kind", "resource_type", "arn_attribute"),
    [
        ("app", "AWS::SageMaker::MlflowApp", "Arn"),
        ("tracking_server", "AWS::SageMaker::MlflowTrackingServer", "TrackingServerArn"),
    ],
)
def test_mlflow_resource_and_scoped_grants(
    built: Built, kind: str, resource_type: str, arn_attribute: str
) -> None:
    template = built.template(built.mlflow[kind])
    expected: dict[str, Any] = {
        "ArtifactStoreUri": {"Fn::Join": ["", ["s3://", {"Ref": Match.any_value()}, "/artifacts"]]},
        "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("ServiceRole"), "Arn"]},
    }
    if kind == "app":
        expected |= {"Name": "t-mlflow", "ModelRegistrationMode": "AutoModelRegistrationDisabled"}
    else:
        expected |= {
            "TrackingServerName": "t-mlflow",
            "TrackingServerSize": "Medium",
            "MlflowVersion": "3.0",
            "AutomaticModelRegistration": True,
        }
    template.has_resource_properties(resource_type, expected)
    (resource_id,) = template.find_resources(resource_type)
    data_plane = APP_ACTIONS if kind == "app" else TRACKING_SERVER_ACTIONS
    grants = [
        s for s in _statements(template, "AWS::IAM::Policy") if set(data_plane) & set(_actions(s))
    ]
    assert len(grants) == 1  # the workload's grant
    assert grants[0]["Resource"] == {"Fn::GetAtt": [resource_id, arn_attribute]}
    assert not any(a.endswith(("AccessUI", "Url")) for a in _actions(grants[0]))  # no UI


def test_mlflow_service_role_reaches_only_its_bucket(built: Built) -> None:
    for stack in built.mlflow.values():
        template = built.template(stack)
        (role_id,) = template.find_resources(
            "AWS::IAM::Role", {"Properties": {"RoleName": Match.string_like_regexp("t-mlflow")}}
        )
        policies = [
            p
            for p in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
        ]
        s3_resources = [
            r
            for p in policies
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if any(a.startswith("s3:") for a in _actions(s))
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        ]
        assert s3_resources
        assert "*" not in s3_resources
        assert all("Artifacts" in json.dumps(r) for r in s3_resources)


@pytest.mark.parametrize("pack", PACKS, ids=[p.__name__ for p in PACKS])
def test_studio_and_mlflow_constructs_pass_every_pack(built: Built, pack: Any) -> None:
    for stack in (built.studio, *built.mlflow.values()):
        report = pack().validate_scope(stack)
        findings = [
            f"{v.rule_name} in {stack.stack_name}: {v.description[:80]}" for v in report.violations
        ]
        assert findings == []
