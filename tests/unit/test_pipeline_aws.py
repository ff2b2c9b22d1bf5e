# ruff: noqa: E501 - the stubbed SageMaker responses read best one object per line
"""The pipeline's cloud deploy step, against botocore's Stubber: the exact requests SageMaker gets
(a copy of the served model with only its data changed, blue/green canary with auto-rollback on
the endpoint's own alarms) and what a rollback does to the task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from config.loader import CONFIG_DIR, load_file
from pipelines.aws import AwsBackend
from pipelines.lifecycle import Run, StepFailedError

ENDPOINT = "fraud-qwen3-tools"
OLD = "s3://fraud-models-111111111111-us-east-1/qwen3-4b-tools/v1/"
NEW = "s3://fraud-models-111111111111-us-east-1/pipeline/pl-x/model/"
ROLE = "arn:aws:iam::111111111111:role/fraud-endpoint-execution-us-east-1"
ALARM = "fraud-endpoints-Qwen3Tools5xx-ABC123"


def _client(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.fixture
def stubs() -> Iterator[tuple[AwsBackend, Stubber, Stubber, Stubber, Run]]:
    bu, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert bu is not None
    assert bu.pipeline is not None
    sm, cw, ssm = _client("sagemaker"), _client("cloudwatch"), _client("ssm")
    backend = AwsBackend(
        bu, sagemaker=sm, cloudwatch=cw, ssm=ssm, s3=_client("s3"), sleep=lambda s: None
    )
    with Stubber(sm) as s_sm, Stubber(cw) as s_cw, Stubber(ssm) as s_ssm:
        yield backend, s_sm, s_cw, s_ssm, Run(bu=bu, airflow_run_id="manual__x")
        s_sm.assert_no_pending_responses()


def _served(s_sm: Stubber) -> None:
    s_sm.add_response(
        "describe_endpoint",
        {"EndpointName": ENDPOINT, "EndpointArn": "arn:aws:sagemaker:us-east-1:111111111111:endpoint/x",
         "EndpointConfigName": "fraud-qwen3-tools-cfg", "EndpointStatus": "InService",
         "CreationTime": "2026-01-01", "LastModifiedTime": "2026-01-01"},
        {"EndpointName": ENDPOINT},
    )  # fmt: skip
    s_sm.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": "fraud-qwen3-tools-cfg", "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:111111111111:endpoint-config/x",
         "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "fraud-qwen3-tools-model",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.g5.2xlarge"}],
         "KmsKeyId": "arn:aws:kms:us-east-1:111111111111:key/k", "CreationTime": "2026-01-01"},
        {"EndpointConfigName": "fraud-qwen3-tools-cfg"},
    )  # fmt: skip
    s_sm.add_response(
        "describe_model",
        {"ModelName": "fraud-qwen3-tools-model", "ExecutionRoleArn": ROLE,
         "ModelArn": "arn:aws:sagemaker:us-east-1:111111111111:model/x", "CreationTime": "2026-01-01",
         "PrimaryContainer": {"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:lmi",
                              "ModelDataSource": {"S3DataSource": {"S3Uri": OLD, "S3DataType": "S3Prefix", "CompressionType": "None"}},
                              "Environment": {"OPTION_ASYNC_MODE": "true"}},
         "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}},
        {"ModelName": "fraud-qwen3-tools-model"},
    )  # fmt: skip


def _alarms(s_cw: Stubber) -> None:
    s_cw.add_response(
        "describe_alarms",
        {"MetricAlarms": [
            {"AlarmName": ALARM, "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]},
            {"AlarmName": "fraud-endpoints-Other", "Dimensions": [{"Name": "EndpointName", "Value": "fraud-qwen3-tools-hp"}]},
        ]},
        {"AlarmNamePrefix": "fraud-endpoints", "AlarmTypes": ["MetricAlarm"]},
    )  # fmt: skip


def _update(s_sm: Stubber, final_config: str) -> str:
    new_name = f"{ENDPOINT}-pl-manual-x-"
    s_sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:111111111111:model/n"}, {
        "ModelName": ANY, "ExecutionRoleArn": ROLE, "Tags": ANY,
        "PrimaryContainer": {"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:lmi",
                             "ModelDataSource": {"S3DataSource": {"S3Uri": NEW, "S3DataType": "S3Prefix", "CompressionType": "None"}},
                             "Environment": {"OPTION_ASYNC_MODE": "true"}},
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]},
    })  # fmt: skip
    s_sm.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:111111111111:endpoint-config/n"}, {
        "EndpointConfigName": ANY, "Tags": ANY, "KmsKeyId": "arn:aws:kms:us-east-1:111111111111:key/k",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": ANY, "InitialInstanceCount": 1, "InstanceType": "ml.g5.2xlarge"}],
    })  # fmt: skip
    s_sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:111111111111:endpoint/x"}, {
        "EndpointName": ENDPOINT, "EndpointConfigName": ANY, "RetainAllVariantProperties": True,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 600},
                "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 7200},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ALARM}]},
        },
    })  # fmt: skip
    for status, config in (("Updating", "fraud-qwen3-tools-cfg"), ("InService", final_config)):
        s_sm.add_response("describe_endpoint", {
            "EndpointName": ENDPOINT, "EndpointArn": "arn:aws:sagemaker:us-east-1:111111111111:endpoint/x",
            "EndpointConfigName": config, "EndpointStatus": status,
            "CreationTime": "2026-01-01", "LastModifiedTime": "2026-01-01"}, {"EndpointName": ENDPOINT})  # fmt: skip
    return new_name


def test_deploy_updates_the_endpoint_blue_green_with_its_alarms_and_records_the_model(
    stubs: Any,
) -> None:
    backend, s_sm, s_cw, s_ssm, run = stubs
    name = f"{ENDPOINT}-{run.name}"[:63]
    _served(s_sm)
    _alarms(s_cw)
    _update(s_sm, name)
    s_ssm.add_response("put_parameter", {"Version": 2}, {
        "Name": "/fraud/pipeline/qwen3-tools/model", "Value": NEW, "Type": "String", "Overwrite": True})  # fmt: skip
    deployed = backend.deploy(run, {"model": NEW, "run": run.name})
    assert deployed == {"endpoint": ENDPOINT, "model": NEW, "replaced": OLD}


def test_a_rollback_by_the_alarms_fails_the_task_and_names_what_still_serves(stubs: Any) -> None:
    backend, s_sm, s_cw, _, run = stubs
    _served(s_sm)
    _alarms(s_cw)
    _update(s_sm, "fraud-qwen3-tools-cfg")  # InService again, on the old config
    with pytest.raises(
        StepFailedError, match=f"rolled back to fraud-qwen3-tools-cfg.*still serves {OLD}"
    ):
        backend.deploy(run, {"model": NEW, "run": run.name})


def test_no_alarm_no_deploy(stubs: Any) -> None:
    backend, s_sm, s_cw, _, run = stubs
    _served(s_sm)
    s_cw.add_response(
        "describe_alarms",
        {"MetricAlarms": []},
        {"AlarmNamePrefix": "fraud-endpoints", "AlarmTypes": ["MetricAlarm"]},
    )
    with pytest.raises(StepFailedError, match="no CloudWatch alarm"):
        backend.deploy(run, {"model": NEW, "run": run.name})


def test_the_champion_is_what_the_endpoint_serves(stubs: Any) -> None:
    backend, s_sm, _, _, run = stubs
    _served(s_sm)
    assert backend.champion(run) == OLD
