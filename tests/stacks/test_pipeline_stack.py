"""The pipeline stack a BU with a ``pipeline`` section gets: an MWAA environment in two private
subnets, its source bucket, key, security group and least-privilege execution role, the VPC
endpoints a closed network needs for it, and the SSM parameters it publishes.

Each AWS fact a test relies on names its source (a page title of the MWAA user guide, the MWAA
API reference or the CloudFormation resource reference) in the test's docstring or comment.
"""

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from harness.cdk_context import cdk_json_context
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of

from config.loader import CONFIG_DIR, load_file
from config.pipeline import OUTPUT_PREFIX
from config.schema import BusinessUnitConfig
from core import parameters as p
from core.naming import MAX_BUCKET_NAME
from platform_constructs.gates import PACKS, register_gates
from platform_constructs.network import MWAA_ENDPOINTS
from platform_constructs.template_lint import lint_template
from stacks.governance_stack import brake_role_names
from stacks.stage import BusinessUnitStage

WITH_PIPELINE = ["fraud", CLONED_BU]  # the cloned BU copies fraud's sections
WITHOUT_PIPELINE = ["credit", "marketing"]
LOG_TYPES = ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
PLUGINS_VERSION = "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
REQUIREMENTS_VERSION = "Tx7.yz_Q"


def _gated_stage(config: BusinessUnitConfig) -> tuple[BusinessUnitStage, list[str]]:
    """The BU's stage in an App of its own with every gate, and the nag packs' findings."""
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    register_gates(app)
    stage = BusinessUnitStage(app, config=config)
    findings = [
        f"{v.rule_name} at {c.construct_path}"
        for pack in PACKS
        for v in pack().validate_scope(app).violations
        for c in v.violating_constructs
    ]
    return stage, findings


def _config(synthesized: Any, bu: str) -> BusinessUnitConfig:
    return synthesized.configs[bu]


def _env_name(config: BusinessUnitConfig) -> str:
    return config.naming.resource("airflow")


def _arn(config: BusinessUnitConfig, service: str, resource: str, region: bool = True) -> str:
    where = config.region if region else ""
    return f"arn:aws:{service}:{where}:{config.account}:{resource}"


def _statements(template: Template) -> list[dict[str, Any]]:
    """Every statement of every managed and inline policy of the pipeline stack."""
    graph = TemplateGraph(template.to_json())
    documents = [
        r["Properties"]["PolicyDocument"]
        for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy")
        for r in graph.of_type(kind).values()
    ]
    return [s for d in documents for s in policy_statements(d)]


def _by_sid(template: Template, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in _statements(template) if s.get("Sid") == sid]
    return statement


@pytest.fixture(scope="module")
def hyperpod_variant() -> tuple[BusinessUnitConfig, Template, list[str]]:
    """fraud with the HyperPod backend (team ``research``) and pinned plugins/requirements
    versions, built in an App of its own with every gate (the example BUs train with Training
    Jobs, so the config is changed after validation)."""
    loaded, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert loaded is not None
    assert loaded.pipeline is not None
    train = loaded.pipeline.train.model_copy(update={"backend": "hyperpod", "team": "research"})
    pipeline = loaded.pipeline.model_copy(
        update={
            "train": train,
            "plugins_version": PLUGINS_VERSION,
            "requirements_version": REQUIREMENTS_VERSION,
        }
    )
    config = loaded.model_copy(update={"pipeline": pipeline})
    stage, findings = _gated_stage(config)
    assert stage.pipeline is not None
    return config, Template.from_stack(stage.pipeline), findings


# --- the environment ------------------------------------------------------------------------


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_environment_follows_the_config(synthesized, bu: str) -> None:
    """AWS::MWAA::Environment (CloudFormation resource reference): AirflowVersion, the
    environment class and worker counts from the config; Schedulers 2 for classes above
    mw1.micro (MWAA API reference, CreateEnvironment: "Defaults to 2 for all environment sizes
    except mw1.micro"); WebserverAccessMode PRIVATE_ONLY; the DAGs folder ``dags``; every log
    type on at the config's level; a weekly maintenance window (DAY:HH:MM, 30-minute steps)."""
    config = _config(synthesized, bu)
    pipeline = config.pipeline
    assert pipeline is not None
    template = synthesized.template(bu, "pipeline")
    template.has_resource_properties(
        "AWS::MWAA::Environment",
        {
            "Name": _env_name(config),
            "AirflowVersion": pipeline.airflow_version,
            "EnvironmentClass": pipeline.environment_class,
            "MinWorkers": pipeline.min_workers,
            "MaxWorkers": pipeline.max_workers,
            "Schedulers": 2,
            "WebserverAccessMode": "PRIVATE_ONLY",
            "DagS3Path": "dags",
            "WeeklyMaintenanceWindowStart": Match.string_like_regexp(
                r"^(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):(00|30)$"
            ),
            "LoggingConfiguration": {
                kind: {"Enabled": True, "LogLevel": pipeline.log_level} for kind in LOG_TYPES
            },
            "KmsKey": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            "ExecutionRoleArn": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            "SourceBucketArn": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            # Map-style tags: the Stage's cost-allocation and BU tags reach the L1 resource.
            "Tags": Match.object_like({"business-unit": bu, "owner": config.tags.owner}),
        },
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_no_plugins_or_requirements_path_before_their_versions_exist(synthesized, bu) -> None:
    """ "PluginsS3Path ... If specified, then the plugins.zip version is required" (and the same
    for requirements.txt: MWAA API reference, CreateEnvironment). The example configs pin no
    version yet (first deploy), so neither path is set."""
    template = synthesized.template(bu, "pipeline")
    template.has_resource_properties(
        "AWS::MWAA::Environment",
        {
            "PluginsS3Path": Match.absent(),
            "PluginsS3ObjectVersion": Match.absent(),
            "RequirementsS3Path": Match.absent(),
            "RequirementsS3ObjectVersion": Match.absent(),
        },
    )


def test_pinned_versions_set_the_plugins_and_requirements(hyperpod_variant) -> None:
    """Once the config pins the uploaded objects' versions, both paths come with them."""
    _, template, _ = hyperpod_variant
    template.has_resource_properties(
        "AWS::MWAA::Environment",
        {
            "PluginsS3Path": "plugins.zip",
            "PluginsS3ObjectVersion": PLUGINS_VERSION,
            "RequirementsS3Path": "requirements.txt",
            "RequirementsS3ObjectVersion": REQUIREMENTS_VERSION,
        },
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_two_private_subnets_in_different_azs(synthesized, bu: str) -> None:
    """MWAA needs exactly two private subnets in two different AZs (AWS::MWAA::Environment
    NetworkConfiguration: "These must be private subnets, in the same VPC, in two different
    availability zones"; the registry schema: minItems and maxItems 2)."""
    config = _config(synthesized, bu)
    environment = synthesized.template(bu, "pipeline").find_resources("AWS::MWAA::Environment")
    (props,) = [r["Properties"] for r in environment.values()]
    imports = [s["Fn::ImportValue"] for s in props["NetworkConfiguration"]["SubnetIds"]]
    network = synthesized.template(bu, "network").to_json()
    exported = {o["Export"]["Name"]: o["Value"] for o in network["Outputs"].values()}
    subnets = [network["Resources"][exported[name]["Ref"]] for name in imports]
    assert [s["Type"] for s in subnets] == ["AWS::EC2::Subnet"] * 2
    azs = [s["Properties"]["AvailabilityZone"] for s in subnets]
    assert azs == list(config.network.availability_zones[:2])
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    assert len(props["NetworkConfiguration"]["SecurityGroupIds"]) == 1


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_security_group_admits_only_itself_and_sends_only_https_out(synthesized, bu) -> None:
    """ "Security in your VPC on Amazon MWAA" (MWAA user guide): an inbound rule for all traffic
    from the group itself; MWAA creates its database (5432) and web server (443) VPC endpoints
    with the environment's groups. Outbound: the group itself and HTTPS (the VPC endpoints and
    the S3 gateway endpoint); the guide's example allows all outbound traffic."""
    template = synthesized.template(bu, "pipeline")
    graph = TemplateGraph(template.to_json())
    group_id, _ = graph.find_one_with_id(
        "AWS::EC2::SecurityGroup", lambda q: q["GroupDescription"].startswith("MWAA ")
    )
    own = {"Fn::GetAtt": [group_id, "GroupId"]}
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"GroupId": own, "SourceSecurityGroupId": own, "IpProtocol": "-1"},
    )
    for ingress in graph.of_type("AWS::EC2::SecurityGroupIngress").values():
        if ingress["Properties"]["GroupId"] == own:
            assert ingress["Properties"]["SourceSecurityGroupId"] == own
    egress = [
        e["Properties"]
        for e in graph.of_type("AWS::EC2::SecurityGroupEgress").values()
        if e["Properties"]["GroupId"] == own
    ]
    egress += graph.resource(group_id)["Properties"]["SecurityGroupEgress"]
    for rule in egress:
        if rule.get("DestinationSecurityGroupId") == own:
            continue
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443), rule


# --- source bucket and key ------------------------------------------------------------------


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_source_bucket_is_versioned_private_encrypted_logged_and_tls_only(synthesized, bu):
    """The source bucket "must have Public Access Blocked" and "Versioning Enabled" ("Working
    with DAGs on Amazon MWAA"); with server-side encryption "you must use the same key for your
    Amazon S3 bucket and Amazon MWAA environment" ("Create an Amazon S3 bucket for Amazon
    MWAA"). Its name starts with ``airflow-`` and fits S3's 63 characters (S3 user guide,
    "General purpose bucket naming rules")."""
    config = _config(synthesized, bu)
    name = config.naming.airflow_bucket()
    assert name.startswith("airflow-")
    assert len(name) <= MAX_BUCKET_NAME
    template = synthesized.template(bu, "pipeline")
    graph = TemplateGraph(template.to_json())
    environment = graph.find_one("AWS::MWAA::Environment", lambda q: True)
    (key_id,) = {environment["Properties"]["KmsKey"]["Fn::GetAtt"][0]}
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": name,
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                            }
                        }
                    )
                ]
            },
            "LoggingConfiguration": {
                "DestinationBucketName": Match.any_value(),
                "LogFilePrefix": f"{name}/",
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_key_admits_cloudwatch_logs_for_this_environments_log_groups_only(synthesized, bu):
    """A customer managed key for MWAA must let CloudWatch Logs use it for the environment's
    log groups: the ``logs.<region>.amazonaws.com`` principal with a
    ``kms:EncryptionContext:aws:logs:arn`` condition ("Using customer managed keys for
    encryption", MWAA user guide; the guide's example admits every log group of the region, this
    key only ``airflow-<environment>-*``, the groups MWAA names per log type)."""
    config = _config(synthesized, bu)
    template = synthesized.template(bu, "pipeline")
    template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": config.naming.key_alias("pipeline")}
    )
    groups = _arn(config, "logs", f"log-group:airflow-{_env_name(config)}-*")
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": f"logs.{config.region}.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": groups}
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


# --- the execution role ---------------------------------------------------------------------


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_role_trusts_mwaa_for_this_account_and_environment_only(synthesized, bu) -> None:
    """Trusted by ``airflow.amazonaws.com`` and ``airflow-env.amazonaws.com`` ("Amazon MWAA
    execution role"), with ``aws:SourceAccount`` and ``aws:SourceArn`` = the environment's ARN
    ("Cross-service confused deputy prevention", MWAA user guide)."""
    config = _config(synthesized, bu)
    synthesized.template(bu, "pipeline").has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": config.naming.role("pipeline-execution"),
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {
                            "Service": Match.array_equals(
                                ["airflow-env.amazonaws.com", "airflow.amazonaws.com"]
                            )
                        },
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": config.account},
                            "ArnLike": {
                                "aws:SourceArn": _arn(
                                    config, "airflow", f"environment/{_env_name(config)}"
                                )
                            },
                        },
                    }
                ],
            },
        },
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_mwaa_baseline_is_scoped_to_this_environment(synthesized, bu: str) -> None:
    """The user guide's execution role policy for a customer managed key ("Amazon MWAA
    execution role", Sample policy for a customer managed key): airflow:PublishMetrics on the
    environment, its log groups ``airflow-<environment>-*``, cloudwatch:PutMetricData, the
    Celery queues ``airflow-celery-*`` (in MWAA's account), and the key only through SQS and
    S3 (kms:ViaService)."""
    config = _config(synthesized, bu)
    template = synthesized.template(bu, "pipeline")
    env = _env_name(config)
    metrics = _by_sid(template, "PublishEnvironmentMetrics")
    assert resources_of(metrics) == [_arn(config, "airflow", f"environment/{env}")]
    logs = _by_sid(template, "EnvironmentLogs")
    assert resources_of(logs) == [_arn(config, "logs", f"log-group:airflow-{env}-*")]
    queues = _by_sid(template, "CeleryQueues")
    assert resources_of(queues) == [f"arn:aws:sqs:{config.region}:*:airflow-celery-*"]
    key = _by_sid(template, "EnvironmentKey")
    assert key["Condition"] == {
        "StringLike": {
            "kms:ViaService": [
                f"sqs.{config.region}.amazonaws.com",
                f"s3.{config.region}.amazonaws.com",
            ]
        }
    }
    assert "GetAtt" in resources_of(key)[0]  # this stack's key, not a wildcard
    graph = TemplateGraph(template.to_json())
    bucket_id, _ = graph.find_one_with_id(
        "AWS::S3::Bucket", lambda q: q.get("BucketName") == config.naming.airflow_bucket()
    )
    source = _by_sid(template, "ReadSourceBucket")
    arn = f"<GetAtt {bucket_id}.Arn>"
    assert sorted(resources_of(source)) == [arn, f"{arn}/*"]  # this environment's bucket only


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_pass_role_names_exactly_two_roles_for_sagemaker(synthesized, bu: str) -> None:
    """iam:PassRole on the training-job role and the endpoint execution role only, and only to
    SageMaker (IAM user guide, "Grant a user permissions to pass a role to an AWS service":
    ``iam:PassedToService``)."""
    config = _config(synthesized, bu)
    template = synthesized.template(bu, "pipeline")
    passing = [s for s in _statements(template) if "iam:PassRole" in actions_of(s)]
    assert len(passing) == 1
    (statement,) = passing
    assert sorted(resources_of(statement)) == sorted(
        _arn(config, "iam", f"role/{config.naming.role(r)}", region=False)
        for r in ("training-job", "endpoint-execution")
    )
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_sagemaker_access_is_this_bus_jobs_and_one_endpoint(synthesized, bu: str) -> None:
    """Jobs, models and endpoint configs named ``<bu>-*``; describe and update exactly the
    endpoint of ``pipeline.deploy.endpoint``; tags on what it creates (SageMaker developer
    guide, "Provide permissions for tagging SageMaker AI resources": a create with tags needs
    sagemaker:AddTags)."""
    config = _config(synthesized, bu)
    assert config.pipeline is not None
    template = synthesized.template(bu, "pipeline")
    prefix = config.naming.resource("")
    jobs = _by_sid(template, "RunJobs")
    assert sorted(resources_of(jobs)) == [
        _arn(config, "sagemaker", f"processing-job/{prefix}*"),
        _arn(config, "sagemaker", f"training-job/{prefix}*"),
    ]
    deploy = _by_sid(template, "DeployToOneEndpoint")
    endpoint = config.naming.resource(config.pipeline.deploy.endpoint)
    assert sorted(resources_of(deploy)) == [
        _arn(config, "sagemaker", f"endpoint-config/{prefix}*"),
        _arn(config, "sagemaker", f"endpoint/{endpoint}"),
    ]
    assert set(actions_of(_by_sid(template, "TagWhatItCreates"))) == {"sagemaker:AddTags"}
    served = _by_sid(template, "DescribeWhatTheEndpointServes")
    assert set(actions_of(served)) == {
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
    }
    assert served["Condition"] == {"StringEquals": {"aws:ResourceTag/business-unit": bu}}
    # The update's auto-rollback alarms are the endpoints stack's (CloudFormation names an alarm
    # without AlarmName "<stack name>-<logical id>-<suffix>"): describe those only.
    alarms = _by_sid(template, "ReadRollbackAlarms")
    assert resources_of(alarms) == [
        _arn(config, "cloudwatch", f"alarm:{config.naming.stack('endpoints')}*")
    ]
    # The run pins the training image's tag to a digest: DescribeImages on its repository only
    # (the training stack names it <bu>-training).
    image = _by_sid(template, "ResolveTrainingImage")
    assert actions_of(image) == ["ecr:DescribeImages"]
    assert resources_of(image) == [
        _arn(config, "ecr", f"repository/{config.naming.resource('training')}")
    ]
    keys = _by_sid(template, "EndpointConfigKeys")
    assert keys["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    for statement in _statements(template):
        for action in actions_of(statement):
            if action.startswith("sagemaker:") and action != "sagemaker:ListTrainingJobs":
                assert "*" not in resources_of(statement), statement


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_parameters_read_this_bu_write_its_pipeline_path_but_not_the_published(synthesized, bu):
    config = _config(synthesized, bu)
    template = synthesized.template(bu, "pipeline")
    read = _by_sid(template, "ReadBusinessUnitParameters")
    assert resources_of(read) == [_arn(config, "ssm", f"parameter/{bu}/*")]
    write = _by_sid(template, "WritePipelineParameters")
    assert resources_of(write) == [_arn(config, "ssm", f"parameter/{bu}/pipeline/*")]
    keep = _by_sid(template, "KeepPublishedParameters")
    assert keep["Effect"] == "Deny"
    published = [
        p.PIPELINE_ENVIRONMENT_NAME,
        p.PIPELINE_EXECUTION_ROLE_ARN,
        p.PIPELINE_SOURCE_BUCKET,
    ]
    assert sorted(resources_of(keep)) == sorted(
        _arn(config, "ssm", f"parameter/{bu}/{name}") for name in published
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_s3_access_is_the_data_prefix_and_the_pipeline_prefixes(synthesized, bu: str) -> None:
    """Reads ``pipeline.data_prefix`` of the data bucket, reads and writes OUTPUT_PREFIX of the
    data and models buckets; the endpoint role may read the models written there."""
    config = _config(synthesized, bu)
    assert config.pipeline is not None
    assert OUTPUT_PREFIX == "pipeline/"
    template = synthesized.template(bu, "pipeline")
    data, models = config.naming.bucket("data"), config.naming.bucket("models")
    assert resources_of(_by_sid(template, "ReadData")) == [
        f"arn:aws:s3:::{data}/{config.pipeline.data_prefix}*"
    ]
    assert resources_of(_by_sid(template, "ReadWriteData")) == [
        f"arn:aws:s3:::{data}/{OUTPUT_PREFIX}*"
    ]
    assert resources_of(_by_sid(template, "ReadWriteModels")) == [
        f"arn:aws:s3:::{models}/{OUTPUT_PREFIX}*"
    ]
    # No statement reaches a whole bucket's objects, or a bucket of another BU.
    for statement in _statements(template):
        for resource in resources_of(statement):
            if resource.startswith("arn:aws:s3:::"):
                bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
                assert key != "*", resource
                assert bucket.startswith(f"{bu}-"), resource
                assert bucket.endswith(f"-{config.account}-{config.region}"), resource
    graph = TemplateGraph(template.to_json())
    reader = graph.find_one(
        "AWS::IAM::ManagedPolicy",
        lambda q: q.get("Roles") == [config.naming.role("endpoint-execution")],
    )
    (objects,) = [
        s
        for s in policy_statements(reader["Properties"]["PolicyDocument"])
        if s.get("Sid") == "ReadPipelineModels"
    ]
    assert resources_of(objects) == [f"arn:aws:s3:::{models}/{OUTPUT_PREFIX}*"]


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_parameters_published_under_the_contract_names(synthesized, bu: str) -> None:
    config = _config(synthesized, bu)
    names = config.naming
    template = synthesized.template(bu, "pipeline")
    for name, value in (
        (p.PIPELINE_ENVIRONMENT_NAME, _env_name(config)),
        (p.PIPELINE_SOURCE_BUCKET, names.airflow_bucket()),
        (p.PIPELINE_EXECUTION_ROLE_ARN, Match.object_like({"Fn::GetAtt": Match.any_value()})),
    ):
        template.has_resource_properties(
            "AWS::SSM::Parameter", {"Name": names.parameter(name), "Value": value, "Type": "String"}
        )
    assert p.publishing_unit(p.PIPELINE_ENVIRONMENT_NAME) == "pipeline"


# --- network --------------------------------------------------------------------------------


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_closed_network_gets_the_mwaa_endpoints(synthesized, bu: str) -> None:
    """Without internet access MWAA needs s3, monitoring, ecr.dkr, ecr.api, logs, sqs, kms,
    airflow.api, airflow.env and airflow.ops endpoints (MWAA user guide, "Creating the required
    VPC service endpoints in an Amazon VPC with private routing"); every BU has the first seven,
    a BU with a pipeline adds the other four, private DNS on."""
    config = _config(synthesized, bu)
    assert config.network.egress == "closed"
    template = synthesized.template(bu, "network")
    assert {s.short_name for s in MWAA_ENDPOINTS.values()} == {
        "sqs",
        "airflow.api",
        "airflow.env",
        "airflow.ops",
    }
    for service in ("sqs", "airflow.api", "airflow.env", "airflow.ops", "monitoring", "logs"):
        template.has_resource_properties(
            "AWS::EC2::VPCEndpoint",
            {
                "ServiceName": f"com.amazonaws.{config.region}.{service}",
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,
            },
        )
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": f"com.amazonaws.{config.region}.sqs",
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": "sqs:*",
                            "Principal": "*",
                            "Resource": f"arn:aws:sqs:{config.region}:*:airflow-celery-*",
                        }
                    )
                ]
            },
        },
    )


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_s3_gateway_endpoint_admits_the_source_bucket(synthesized, bu: str) -> None:
    """MWAA's containers read the DAGs through the S3 gateway endpoint: its policy must admit
    "the bucket where your DAGs and supporting files are stored" ("Security in your VPC on
    Amazon MWAA", Example Amazon S3 gateway endpoint policy)."""
    config = _config(synthesized, bu)
    graph = TemplateGraph(synthesized.template(bu, "network").to_json())
    s3 = graph.find_one(
        "AWS::EC2::VPCEndpoint", lambda q: TemplateGraph.render(q["ServiceName"]).endswith(".s3")
    )
    (own,) = [
        s
        for s in policy_statements(s3["Properties"]["PolicyDocument"])
        if s.get("Sid") == "BusinessUnitBuckets"
    ]
    bucket = f"arn:aws:s3:::{config.naming.airflow_bucket()}"
    assert {bucket, f"{bucket}/*"} <= set(resources_of(own))


@pytest.mark.parametrize("bu", WITHOUT_PIPELINE)
def test_a_bu_without_a_pipeline_gets_no_stack_and_no_mwaa_endpoint(synthesized, bu) -> None:
    assert synthesized.stages[bu].pipeline is None
    assert (bu, "pipeline") not in synthesized.templates
    network = synthesized.template(bu, "network").to_json()
    services = [
        TemplateGraph.render(r["Properties"]["ServiceName"])
        for r in network["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    ]
    assert not [s for s in services if ".airflow." in s or s.endswith(".sqs")]
    assert synthesized.configs[bu].naming.airflow_bucket() not in str(network)


# --- order and governance -------------------------------------------------------------------


@pytest.mark.parametrize("bu", WITH_PIPELINE)
def test_deploys_after_the_stacks_whose_resources_it_names(synthesized, bu: str) -> None:
    stage = synthesized.stages[bu]
    assert stage.pipeline is not None
    needed = {s.node.id for s in stage.pipeline.dependencies}
    assert {"training", "endpoints", "security", "network", "mlflow"} <= needed
    assert stage.pipeline.stack_name == f"{bu}-pipeline"


def test_the_budget_action_also_stops_the_pipeline_role(synthesized) -> None:
    config = synthesized.configs["fraud"]
    governed = config.model_copy(update={"governance": synthesized.configs["credit"].governance})
    assert config.naming.role("pipeline-execution") in brake_role_names(governed)
    assert "pipeline-execution" not in str(brake_role_names(synthesized.configs["credit"]))


# --- HyperPod backend -----------------------------------------------------------------------


# The rules the pipeline's Kubernetes calls need (platform_constructs/pipeline_rbac.py; the
# contract with the code: tests/deploy_contract/test_pipeline_rbac_contract.py).
TRAINING_RULE = {
    "apiGroups": ["sagemaker.amazonaws.com"],
    "resources": ["hyperpodpytorchjobs"],
    "verbs": ["create", "get"],
}
DEPLOY_RULE = {
    "apiGroups": ["inference.sagemaker.aws.amazon.com"],
    "resources": ["inferenceendpointconfigs"],
    "verbs": ["get", "update"],
    "resourceNames": ["fraud-qwen3-tools-hp"],
}
RBAC = "rbac.authorization.k8s.io"


def _access_entry(template: Template) -> dict[str, Any]:
    """The one access entry: the pipeline's role, mapped to its Kubernetes group
    ``<bu>-pipeline`` and associated with no access policy (EKS user guide, "Review access
    policy permissions": AmazonEKSEditPolicy's rules name no custom resource; "If the
    permissions in the access policies don't meet your needs, create Kubernetes RBAC objects.
    Then specify Kubernetes group names for your access entries")."""
    template.resource_count_is("AWS::EKS::AccessEntry", 1)
    graph = TemplateGraph(template.to_json())
    entry = graph.find_one("AWS::EKS::AccessEntry", lambda q: True)
    props = entry["Properties"]
    assert props["ClusterName"] == "fraud-eks"
    assert props["PrincipalArn"] == {"Fn::GetAtt": [_role_id(graph), "Arn"]}
    assert props["KubernetesGroups"] == ["fraud-pipeline"]
    assert "AccessPolicies" not in props
    # Unset as before (EKS makes it STANDARD); a Type would replace a deployed entry.
    assert "Type" not in props
    # The path (so the logical ID) of the earlier L2 entry: a deployed entry is updated in
    # place; a new one beside it would be refused (one entry per principal and cluster).
    assert entry["Metadata"]["aws:cdk:path"] == "fraud/pipeline/Permissions/TeamAccess/Resource"
    return entry


def _role_id(graph: TemplateGraph) -> str:
    role_id, _ = graph.find_one_with_id(
        "AWS::IAM::Role", lambda q: q.get("RoleName") == "fraud-pipeline-execution-us-east-1"
    )
    return role_id


def _roles(template: Template) -> dict[str, list[dict[str, Any]]]:
    """namespace -> the rules of the Role the pipeline stack applies there, each Role bound by
    a RoleBinding of the same name to the group ``fraud-pipeline`` only."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for resource in template.find_resources("Custom::AWSCDK-EKS-KubernetesResource").values():
        role, binding = json.loads(resource["Properties"]["Manifest"])
        namespace = role["metadata"]["namespace"]
        assert (role["kind"], binding["kind"]) == ("Role", "RoleBinding")
        assert role["metadata"]["name"] == binding["metadata"]["name"] == "fraud-pipeline"
        assert binding["metadata"]["namespace"] == namespace
        assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": "fraud-pipeline"}
        assert binding["subjects"] == [
            {"apiGroup": RBAC, "kind": "Group", "name": "fraud-pipeline"}
        ]
        assert namespace not in roles
        roles[namespace] = role["rules"]
    return roles


def test_hyperpod_backend_gets_a_role_in_the_team_namespace_only(hyperpod_variant) -> None:
    """The MWAA execution role needs an EKS access entry (../shared/DESIGN.md, Amazon MWAA),
    here one that maps it to a Kubernetes group; the team's namespace ``hyperpod-ns-<team>``
    (HyperPod task governance's convention) gets a Role with exactly the training backend's
    calls (create and get of HyperPodPyTorchJobs), bound to that group; eks:DescribeCluster on
    the BU's cluster only (a kubeconfig/token needs the endpoint and CA)."""
    config, template, _ = hyperpod_variant
    _access_entry(template)
    assert _roles(template) == {"hyperpod-ns-research": [TRAINING_RULE]}
    describe = _by_sid(template, "DescribeTheCluster")
    assert resources_of(describe) == [
        _arn(config, "eks", f"cluster/{config.naming.resource('eks')}")
    ]


def test_the_roles_are_applied_by_the_hyperpod_stacks_kubectl_provider(
    hyperpod_deploy_variant,
) -> None:
    """The Roles go through the HyperPod stack's kubectl provider (its handler runs in the
    private subnets and holds the cluster-admin access entry), imported by its service token,
    on the cluster named ``<bu>-eks``; the stack deploys after the HyperPod stack, which makes
    the team namespaces. The access entry waits for the Roles, so a deployed entry that still
    holds an access policy loses it only once the Roles exist."""
    _, stage, _ = hyperpod_deploy_variant
    template = _pipeline_template(stage)
    assert stage.hyperpod is not None
    exports = {
        o["Export"]["Name"]: o["Value"]
        for o in Template.from_stack(stage.hyperpod).to_json()["Outputs"].values()
        if "Export" in o
    }
    manifests = template.find_resources("Custom::AWSCDK-EKS-KubernetesResource")
    assert manifests
    for manifest in manifests.values():
        props = manifest["Properties"]
        assert props["ClusterName"] == "fraud-eks"
        (function_id, attribute) = exports[props["ServiceToken"]["Fn::ImportValue"]]["Fn::GetAtt"]
        assert function_id.startswith("EksClusterKubectlProviderframeworkonEvent")
        assert attribute == "Arn"
    assert "hyperpod" in {s.node.id for s in stage.pipeline.dependencies}
    entry = _access_entry(template)
    assert sorted(entry["DependsOn"]) == sorted(manifests)


def test_hyperpod_backend_reaches_the_private_kubernetes_api(hyperpod_variant) -> None:
    """The cluster's endpoint is private (HyperPod stack): its control-plane security group
    admits the environment's group on 443."""
    _, template, _ = hyperpod_variant
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": Match.object_like({"Fn::ImportValue": Match.any_value()}),
            "SourceSecurityGroupId": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
        },
    )


def test_hyperpod_variant_passes_the_nag_packs(hyperpod_variant) -> None:
    _, _, findings = hyperpod_variant
    assert findings == []


def test_training_job_backend_gets_no_cluster_access(synthesized) -> None:
    template = synthesized.template("fraud", "pipeline")
    assert synthesized.configs["fraud"].pipeline.train.backend == "training_job"  # type: ignore[union-attr]
    assert not template.find_resources("AWS::EKS::AccessEntry")
    assert not [s for s in _statements(template) if "eks:DescribeCluster" in actions_of(s)]


# --- deploy to an endpoint served on HyperPod ------------------------------------------------


def _deploying_to_hyperpod(
    namespace: str, train: dict[str, Any] | None = None
) -> BusinessUnitConfig:
    """fraud's pipeline deploying to its HyperPod endpoint ``qwen3-tools-hp`` in ``namespace``
    (the example BUs deploy to SageMaker endpoints, so the config is changed after
    validation), its training changed by ``train``."""
    loaded, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert loaded is not None
    assert loaded.pipeline is not None
    deploy = loaded.pipeline.deploy.model_copy(
        update={"endpoint": "qwen3-tools-hp", "namespace": namespace}
    )
    pipeline = loaded.pipeline.model_copy(
        update={"deploy": deploy, "train": loaded.pipeline.train.model_copy(update=train or {})}
    )
    return loaded.model_copy(update={"pipeline": pipeline})


@pytest.fixture(scope="module")
def hyperpod_deploy_variant() -> tuple[BusinessUnitConfig, BusinessUnitStage, list[str]]:
    """fraud (training with Training Jobs) deploying to qwen3-tools-hp in the research team's
    namespace, in an App of its own with every gate."""
    config = _deploying_to_hyperpod("hyperpod-ns-research")
    stage, findings = _gated_stage(config)
    return config, stage, findings


def _pipeline_template(stage: BusinessUnitStage) -> Template:
    assert stage.pipeline is not None
    return Template.from_stack(stage.pipeline)


def test_hyperpod_deploy_gets_a_role_in_the_endpoints_namespace_only(hyperpod_deploy_variant):
    """The deploy reads and replaces the endpoint's InferenceEndpointConfig in
    ``pipeline.deploy.namespace``: a Role there with get and update of that one object
    (``<bu>-<endpoint>``, as ``python -m inference.hyperpod apply`` names it) and nothing of
    the training backend; the same kind of access entry as the HyperPod training backend,
    eks:DescribeCluster on the BU's cluster and 443 to its private endpoint; the pipeline stack
    deploys after the HyperPod stack."""
    config, stage, _ = hyperpod_deploy_variant
    template = _pipeline_template(stage)
    _access_entry(template)
    assert _roles(template) == {"hyperpod-ns-research": [DEPLOY_RULE]}
    assert resources_of(_by_sid(template, "DescribeTheCluster")) == [
        _arn(config, "eks", f"cluster/{config.naming.resource('eks')}")
    ]
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": Match.object_like({"Fn::ImportValue": Match.any_value()}),
            "SourceSecurityGroupId": Match.object_like({"Fn::GetAtt": Match.any_value()}),
            "FromPort": 443,
            "ToPort": 443,
        },
    )
    assert stage.pipeline is not None
    assert "hyperpod" in {s.node.id for s in stage.pipeline.dependencies}


def test_hyperpod_deploy_gets_no_sagemaker_endpoint_rights(hyperpod_deploy_variant) -> None:
    """Nothing of the blue/green path: no model or endpoint config to create, no endpoint to
    update (the operator registers and owns the SageMaker endpoint of a HyperPod model), no
    alarms, no KMS grants for an endpoint config, and only the training-job role to pass."""
    config, stage, _ = hyperpod_deploy_variant
    template = _pipeline_template(stage)
    actions = {a for s in _statements(template) for a in actions_of(s)}
    for action in (
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpoint",
        "sagemaker:UpdateEndpoint",
        "cloudwatch:DescribeAlarms",
        "kms:CreateGrant",
    ):
        assert action not in actions, action
    passing = _by_sid(template, "PassJobRoles")
    assert resources_of(passing) == [
        _arn(config, "iam", f"role/{config.naming.role('training-job')}", region=False)
    ]


def test_the_operator_role_may_read_the_pipeline_prefix_of_the_models_bucket(
    hyperpod_deploy_variant,
) -> None:
    """The candidate is the run's export under ``pipeline/`` of the models bucket. The
    operator's S3 mounts use the Mountpoint CSI driver's role, which reads every object of the
    models bucket already (platform_constructs/hyperpod_inference.py, unchanged here); the
    operator's own role (``<bu>-hyperpod-inference-<region>``) gets read on that prefix and
    nothing else of the bucket, from a policy of the pipeline stack attached by role name; the
    endpoint role gets none (this pipeline deploys no SageMaker endpoint)."""
    config, stage, _ = hyperpod_deploy_variant
    models = config.naming.bucket("models")
    graph = TemplateGraph(_pipeline_template(stage).to_json())
    readers = [
        p
        for p in graph.of_type("AWS::IAM::ManagedPolicy").values()
        if p["Properties"].get("Roles")
        and all(isinstance(r, str) for r in p["Properties"]["Roles"])
    ]
    (reader,) = readers
    assert reader["Properties"]["Roles"] == [config.naming.role("hyperpod-inference")]
    statements = {s["Sid"]: s for s in policy_statements(reader["Properties"]["PolicyDocument"])}
    assert resources_of(statements["ReadPipelineModels"]) == [
        f"arn:aws:s3:::{models}/{OUTPUT_PREFIX}*"
    ]
    assert statements["ListPipelineModels"]["Condition"] == {
        "StringLike": {"s3:prefix": [f"{OUTPUT_PREFIX}*"]}
    }
    assert actions_of(statements["DecryptPipelineModels"]) == ["kms:Decrypt"]
    assert stage.hyperpod is not None
    csi = [
        s
        for p in TemplateGraph(Template.from_stack(stage.hyperpod).to_json())
        .of_type("AWS::IAM::Policy")
        .values()
        if any("S3CsiRole" in json.dumps(r) for r in p["Properties"].get("Roles", []))
        for s in policy_statements(p["Properties"]["PolicyDocument"])
    ]
    assert any(
        "s3:GetObject" in actions_of(s) and f"arn:aws:s3:::{models}/*" in resources_of(s)
        for s in csi
    )


def test_hyperpod_deploy_variant_passes_the_nag_packs(hyperpod_deploy_variant) -> None:
    _, _, findings = hyperpod_deploy_variant
    assert findings == []


def _both_paths(namespace: str) -> Template:
    config = _deploying_to_hyperpod(
        namespace,
        {"backend": "hyperpod", "team": "research", "base_model": "research/base/Qwen3-4B/"},
    )
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    return _pipeline_template(BusinessUnitStage(app, config=config))


def test_training_and_deploy_namespaces_share_one_access_entry_with_a_role_each() -> None:
    """EKS keeps one access entry per principal and cluster (the API addresses an entry by
    cluster name and principal ARN: DescribeAccessEntry, UpdateAccessEntry): a pipeline that
    trains in one team's namespace and deploys to another's gets one entry, and each namespace
    a Role with only its own path's rules."""
    template = _both_paths("hyperpod-ns-scoring")
    _access_entry(template)
    assert _roles(template) == {
        "hyperpod-ns-research": [TRAINING_RULE],
        "hyperpod-ns-scoring": [DEPLOY_RULE],
    }


def test_a_namespace_of_both_paths_gets_one_role_with_both_rules() -> None:
    template = _both_paths("hyperpod-ns-research")
    _access_entry(template)
    assert _roles(template) == {"hyperpod-ns-research": [TRAINING_RULE, DEPLOY_RULE]}


def _lint(template: dict[str, Any], path: Path) -> list[str]:
    path.write_text(json.dumps(template), encoding="utf-8")
    return [
        f"{f.rule} at {f.location}: {f.message}"
        for f in lint_template(str(path), "us-east-1")
        if f.level in {"error", "warning"}
    ]


def test_hyperpod_variants_pass_cfn_lint(
    hyperpod_variant, hyperpod_deploy_variant, tmp_path: Path
) -> None:
    """The gate the example BUs pass (tests/stacks/test_gates.py), on the variants' pipeline
    stacks and on the HyperPod stack that now exports its kubectl provider's service token."""
    _, training, _ = hyperpod_variant
    _, stage, _ = hyperpod_deploy_variant
    assert stage.hyperpod is not None
    templates = {
        "training": training.to_json(),
        "deploy": _pipeline_template(stage).to_json(),
        "hyperpod": Template.from_stack(stage.hyperpod).to_json(),
    }
    findings = {name: _lint(t, tmp_path / f"{name}.json") for name, t in templates.items()}
    assert findings == {name: [] for name in templates}
