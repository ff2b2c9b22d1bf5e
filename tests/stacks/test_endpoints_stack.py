"""The endpoints stack of every example BU: what SageMaker will run, checked against the config.

The container environment is compared with `inference.serving`'s output for the same endpoint
config, so the stack and the serving builder can never drift apart.
"""

import json

import pytest
from aws_cdk.assertions import Match, Template
from harness.synthesized_app import EXAMPLE_BUS

from inference.serving import image_uri
from stacks.endpoints_stack import smoke_command

CONCURRENCY_METRIC = "SageMakerVariantConcurrentRequestsPerModelHighResolution"


def sagemaker_endpoints(synthesized, bu: str):
    cfg = synthesized.configs[bu]
    assert cfg.endpoints is not None
    return cfg, cfg.endpoints.on("sagemaker")


@pytest.fixture
def template(synthesized, bu: str) -> Template:
    """The BU's endpoints stack."""
    return synthesized.template(bu, "endpoints")


def test_every_example_bu_has_an_endpoints_stack_with_a_sagemaker_endpoint(synthesized) -> None:
    for bu in EXAMPLE_BUS:
        stage = synthesized.stages[bu]
        assert stage.endpoints.stack_name == f"{bu}-endpoints"
        assert sagemaker_endpoints(synthesized, bu)[1], bu


def test_model_runs_the_serving_builders_environment_and_image(
    synthesized, bu: str, template: Template
) -> None:
    cfg, items = sagemaker_endpoints(synthesized, bu)
    for item in items:
        template.has_resource_properties(
            "AWS::SageMaker::Model",
            {
                "EnableNetworkIsolation": True,
                "PrimaryContainer": {
                    "Image": image_uri(cfg.region),
                    # Exactly the builder's dict: nothing added, nothing missing.
                    "Environment": item.serving_config().to_environment(),
                    "ModelDataSource": {
                        "S3DataSource": {
                            "S3Uri": item.model_uri(cfg.naming),
                            "S3DataType": "S3Prefix",
                            "CompressionType": "None",
                        }
                    },
                },
                "VpcConfig": {
                    "SecurityGroupIds": [{"Fn::GetAtt": [Match.any_value(), "GroupId"]}],
                    "Subnets": [
                        {"Fn::ImportValue": Match.string_like_regexp(f"^{bu}-network:.*private")}
                    ]
                    * len(cfg.network.availability_zones),
                },
            },
        )


def test_endpoint_config_captures_data_with_kms_and_sized_timeouts(
    synthesized, bu: str, template: Template
) -> None:
    cfg, items = sagemaker_endpoints(synthesized, bu)
    for item in items:
        name = cfg.naming.resource(item.name)
        template.has_resource_properties(
            "AWS::SageMaker::EndpointConfig",
            {
                "ProductionVariants": [
                    Match.object_like(
                        {
                            "VariantName": "AllTraffic",
                            "InstanceType": item.instance_type,
                            "InitialInstanceCount": item.autoscaling.min_capacity,
                            "ModelDataDownloadTimeoutInSeconds": 1200,
                            "ContainerStartupHealthCheckTimeoutInSeconds": 1200,
                        }
                    )
                ],
                "DataCaptureConfig": {
                    "EnableCapture": True,
                    "InitialSamplingPercentage": item.data_capture.sampling_percent,
                    "DestinationS3Uri": f"s3://{cfg.naming.bucket('inference-capture')}/{name}",
                    "KmsKeyId": {
                        "Fn::ImportValue": Match.string_like_regexp(
                            f"^{bu}-security:.*InferenceCaptureKey"
                        )
                    },
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
                },
                # Every configured type has NVMe instance storage, encrypted in hardware;
                # SageMaker refuses a volume KmsKeyId for those (acknowledged, not forgotten).
                "KmsKeyId": Match.absent(),
            },
        )
        template.has_resource_properties(
            "AWS::SageMaker::Endpoint",
            {"EndpointName": name, "EndpointConfigName": {"Fn::GetAtt": Match.any_value()}},
        )


def test_target_tracking_autoscaling_from_config(synthesized, bu: str, template: Template) -> None:
    _, items = sagemaker_endpoints(synthesized, bu)
    for item in items:
        scaling = item.autoscaling
        template.has_resource_properties(
            "AWS::ApplicationAutoScaling::ScalableTarget",
            {
                "ServiceNamespace": "sagemaker",
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                "MinCapacity": scaling.min_capacity,
                "MaxCapacity": scaling.max_capacity,
                "ResourceId": {
                    "Fn::Join": [
                        "",
                        ["endpoint/", {"Fn::GetAtt": Match.any_value()}, Match.any_value()],
                    ]
                },
            },
        )
        template.has_resource_properties(
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            {
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "PredefinedMetricSpecification": {"PredefinedMetricType": CONCURRENCY_METRIC},
                    "TargetValue": item.target_concurrency,
                    "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
                    "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
                },
            },
        )


def test_alarms_notify_an_encrypted_topic(synthesized, bu: str, template: Template) -> None:
    cfg, items = sagemaker_endpoints(synthesized, bu)
    template.has_resource_properties(
        "AWS::SNS::Topic",
        {
            "TopicName": f"{bu}-endpoint-alarms",
            "KmsMasterKeyId": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": f"alias/{bu}/endpoint-alarms"}
    )
    topic = {"Ref": Match.string_like_regexp("^AlarmsTopic")}
    for item in items:
        name, alarms = cfg.naming.resource(item.name), item.alarms
        dimensions = [
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        for metric, threshold in (
            ("ModelLatency", alarms.model_latency_p90_ms * 1000),  # microseconds
            ("OverheadLatency", alarms.overhead_latency_p90_ms * 1000),
        ):
            template.has_resource_properties(
                "AWS::CloudWatch::Alarm",
                {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "ExtendedStatistic": "p90",
                    "Dimensions": dimensions,
                    "Threshold": threshold,
                    "AlarmActions": [topic],
                    "OKActions": [topic],
                    "TreatMissingData": "notBreaching",
                },
            )
        for metric, threshold in (
            ("Invocation4XXErrors", alarms.error_4xx_rate_percent),
            ("Invocation5XXErrors", alarms.error_5xx_rate_percent),
        ):
            template.has_resource_properties(
                "AWS::CloudWatch::Alarm",
                {
                    "Threshold": threshold,
                    "EvaluationPeriods": alarms.evaluation_periods,
                    "DatapointsToAlarm": alarms.datapoints_to_alarm,
                    "AlarmActions": [topic],
                    "Metrics": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Expression": Match.string_like_regexp(
                                        "100 \\* errors / invocations"
                                    )
                                }
                            ),
                            Match.object_like(
                                {
                                    "Id": "errors",
                                    "MetricStat": Match.object_like(
                                        {
                                            "Metric": {
                                                "Namespace": "AWS/SageMaker",
                                                "MetricName": metric,
                                                "Dimensions": dimensions,
                                            },
                                            "Stat": "Sum",
                                        }
                                    ),
                                }
                            ),
                        ]
                    ),
                },
            )


def test_outputs_name_the_endpoint_and_the_smoke_command(
    synthesized, bu: str, template: Template
) -> None:
    cfg, items = sagemaker_endpoints(synthesized, bu)
    outputs = template.to_json()["Outputs"]
    values = {o["Value"] for o in outputs.values() if isinstance(o["Value"], str)}
    for item in items:
        name = cfg.naming.resource(item.name)
        assert name in values
        assert f"python -m inference.smoke --endpoint {name} --region {cfg.region}" in values
        assert smoke_command(name, cfg.region) in values


def test_hyperpod_target_is_not_a_sagemaker_resource_but_an_apply_command(synthesized) -> None:
    cfg = synthesized.configs["fraud"]
    hyperpod = cfg.endpoints.on("hyperpod")  # type: ignore[union-attr]
    assert hyperpod
    template = synthesized.template("fraud", "endpoints")
    names = {
        r["Properties"]["EndpointName"]
        for r in template.find_resources("AWS::SageMaker::Endpoint").values()
    }
    assert cfg.naming.resource(hyperpod[0].name) not in names
    values = [o["Value"] for o in template.to_json()["Outputs"].values()]
    apply = "python -m inference.hyperpod apply --config config/fraud.yaml --endpoint"
    assert f"{apply} {hyperpod[0].name}" in values


def test_execution_role_reads_its_prefix_and_writes_its_capture_only(
    synthesized, bu: str, template: Template
) -> None:
    cfg, items = sagemaker_endpoints(synthesized, bu)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": cfg.naming.role("endpoint-execution"),
            "AssumeRolePolicyDocument": Match.object_like(
                {
                    "Statement": [
                        Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})
                    ]
                }
            ),
        },
    )
    policies = [
        p
        for p in template.find_resources("AWS::IAM::Policy").values()
        if "ExecutionRole" in json.dumps(p["Properties"]["Roles"])
    ]
    assert len(policies) == 1
    policy = policies[0]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_action: dict[str, list[object]] = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            by_action.setdefault(action, []).append(statement["Resource"])
    models, capture = cfg.naming.bucket("models"), cfg.naming.bucket("inference-capture")
    assert by_action["s3:GetObject"] == [
        f"arn:aws:s3:::{models}/{item.model_key(cfg.naming)}*" for item in items
    ]
    assert by_action["s3:PutObject"] == [
        f"arn:aws:s3:::{capture}/{cfg.naming.resource(item.name)}/*"
        for item in items
        if item.data_capture.enabled
    ]
    assert not [a for a in by_action if a.endswith("*") or a in ("s3:DeleteObject",)]
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert len(wildcard) == 2
    for statement in wildcard:
        assert all(a.startswith(("ec2:", "ecr:GetAuthorizationToken")) for a in statement["Action"])
    # ENI changes only in this BU's VPC; Describe* and the ECR token take no resource.
    (enis,) = [s for s in wildcard if "ec2:CreateNetworkInterface" in s["Action"]]
    assert "ec2:Vpc" in enis["Condition"]["ArnEquals"]


def test_each_endpoint_is_its_configs_served_translation(
    synthesized, bu: str, template: Template
) -> None:
    """The stack deploys `Endpoint.served`, the one translation `python -m inference.hyperpod`
    deploys from too: name, image, environment, model location, instance type and count."""
    cfg, items = sagemaker_endpoints(synthesized, bu)
    for item in items:
        served = item.served(cfg.naming)
        source = {"S3Uri": f"s3://{served.bucket}/{served.model_prefix}"}
        container = {
            "Image": served.image,
            "Environment": served.serving.to_environment(),
            "ModelDataSource": {"S3DataSource": Match.object_like(source)},
        }
        template.has_resource_properties(
            "AWS::SageMaker::Model", {"PrimaryContainer": Match.object_like(container)}
        )
        variant = {
            "InstanceType": served.serving.instance_type,
            "InitialInstanceCount": served.replicas,
        }
        template.has_resource_properties(
            "AWS::SageMaker::EndpointConfig", {"ProductionVariants": [Match.object_like(variant)]}
        )
        template.has_resource_properties(
            "AWS::SageMaker::Endpoint", {"EndpointName": served.endpoint_name}
        )
