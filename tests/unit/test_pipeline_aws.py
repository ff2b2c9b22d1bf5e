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


# -- the jobs before the deploy -------------------------------------------------------------------
KEY = "arn:aws:kms:us-east-1:111111111111:key/"
PUBLISHED = {
    "training/image-uri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/fraud/training",
    "training/job-role-arn": "arn:aws:iam::111111111111:role/fraud-training-job-us-east-1",
    "training/subnet-ids": "subnet-a,subnet-b",
    "training/security-group-id": "sg-jobs",
    "training/volume-key-arn": KEY + "volume",
    "storage/data-bucket": "fraud-data-111111111111-us-east-1",
    "storage/models-bucket": "fraud-models-111111111111-us-east-1",
    "storage/checkpoints-bucket": "fraud-checkpoints-111111111111-us-east-1",
    "storage/models-key-arn": KEY + "models",
    "mlflow/tracking-arn": "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/fraud",
    "storage/data-key-arn": KEY + "data",
}
DATA = "s3://fraud-data-111111111111-us-east-1"


def _published(s_ssm: Stubber) -> None:
    from pipelines.aws import PLATFORM_NAMES

    assert set(PLATFORM_NAMES) == set(PUBLISHED), "the test's table follows the builders' lists"
    for batch in (PLATFORM_NAMES[:10], PLATFORM_NAMES[10:]):
        s_ssm.add_response(
            "get_parameters",
            {
                "Parameters": [
                    {"Name": f"/fraud/{n}", "Type": "String", "Value": PUBLISHED[n]} for n in batch
                ]
            },
            {"Names": [f"/fraud/{n}" for n in batch]},
        )


def _processing(s_sm: Stubber, name: str, final: str, reason: str = "") -> None:
    """A job this run has not started yet: created, then polled to `final`."""
    s_sm.add_client_error("describe_processing_job", "ValidationException", "Could not find job")
    s_sm.add_response(
        "create_processing_job",
        {"ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:111111111111:processing-job/{name}"},
        None,
    )
    for status in ("InProgress", final):
        s_sm.add_response("describe_processing_job", {
            "ProcessingJobName": name, "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:111111111111:processing-job/x",
            "ProcessingJobStatus": status, "CreationTime": "2026-01-01", "FailureReason": reason or "none",
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.4xlarge", "VolumeSizeInGB": 100}},
            "AppSpecification": {"ImageUri": "x"}, "StoppingCondition": {"MaxRuntimeInSeconds": 1},
            "RoleArn": "arn:aws:iam::111111111111:role/x"}, {"ProcessingJobName": name})  # fmt: skip


def _json_object(s_s3: Stubber, key: str, body: bytes) -> None:
    import io

    from botocore.response import StreamingBody

    s_s3.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body))},
        {"Bucket": "fraud-data-111111111111-us-east-1", "Key": key},
    )


DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def jobs() -> Iterator[tuple[AwsBackend, Stubber, Stubber, Stubber, Run]]:
    bu, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert bu is not None
    sm, ssm, s3, ecr = _client("sagemaker"), _client("ssm"), _client("s3"), _client("ecr")
    backend = AwsBackend(
        bu, sagemaker=sm, ssm=ssm, s3=s3, ecr=ecr, cloudwatch=_client("cloudwatch"),
        sleep=lambda s: None,
    )  # fmt: skip
    with Stubber(sm) as s_sm, Stubber(ssm) as s_ssm, Stubber(s3) as s_s3, Stubber(ecr) as s_ecr:
        _published(s_ssm)
        # The run's first step pins the training image's tag to its digest.
        s_ecr.add_response(
            "describe_images",
            {"imageDetails": [{"imageDigest": DIGEST}]},
            {"repositoryName": "fraud/training", "imageIds": [{"imageTag": "latest"}]},
        )
        yield backend, s_sm, s_ssm, s_s3, Run(bu=bu, airflow_run_id="manual__x")
        s_sm.assert_no_pending_responses()


def test_prepare_runs_the_images_prepare_on_the_bus_dataset_and_reports_its_quarantine(
    jobs: Any,
) -> None:
    backend, s_sm, _, s_s3, run = jobs
    name = f"fraud-{run.name}-prepare"
    _processing(s_sm, name, "Completed")
    out = f"pipeline/{run.name}/data/"
    _json_object(s_s3, out + "stats.json", b'{"records_read": 1000, "quarantined": 3}')
    s_s3.add_response("list_objects_v2", {"Contents": [
        {"Key": out + "manifest.json", "ETag": '"a"', "Size": 10},
        {"Key": out + "stats.json", "ETag": '"b"', "Size": 5}]},
        {"Bucket": "fraud-data-111111111111-us-east-1", "Prefix": out})  # fmt: skip
    prepared = backend.prepare(run)
    assert prepared["dataset"] == f"{DATA}/{out}"
    assert (prepared["records_read"], prepared["quarantined"]) == (1000, 3)
    assert len(prepared["dataset_digest"]) == 16
    assert prepared["image_digest"] == DIGEST


def test_prepare_packs_to_the_training_configs_length(jobs: Any) -> None:
    """The request itself: the image's prepare, fed the BU's dataset and base tokenizer, packing
    to qwen3-4b-lora.yaml's data.pack_length (4096) so the trainer accepts the packs."""
    backend, s_sm, _, _, run = jobs
    name = f"fraud-{run.name}-prepare"
    s_sm.add_client_error("describe_processing_job", "ValidationException", "Could not find job")
    s_sm.add_response("create_processing_job", {"ProcessingJobArn": "arn:x"}, {
        "ProcessingJobName": name, "RoleArn": PUBLISHED["training/job-role-arn"],
        "AppSpecification": {
            # Every job of the run runs the digest the tag named when the run began.
            "ImageUri": PUBLISHED["training/image-uri"] + "@" + DIGEST,
            "ContainerEntrypoint": ["python", "-m", "training.entrypoint"],
            "ContainerArguments": [
                "prepare", "--input", "/opt/ml/processing/input/records/conversations.jsonl",
                "--output", "/opt/ml/processing/output/dataset",
                "--tokenizer", "/opt/ml/processing/input/tokenizer",
                "--max-length", "4096", "--eval-fraction", "0.1", "--quiet"]},
        "ProcessingInputs": ANY, "ProcessingOutputConfig": {"Outputs": [{"OutputName": "dataset", "S3Output": {
            "S3Uri": f"{DATA}/pipeline/{run.name}/data/", "LocalPath": "/opt/ml/processing/output/dataset",
            "S3UploadMode": "EndOfJob"}}], "KmsKeyId": KEY + "data"},
        "ProcessingResources": ANY, "StoppingCondition": ANY, "NetworkConfig": ANY, "Environment": ANY, "Tags": ANY,
    })  # fmt: skip
    s_sm.add_response("describe_processing_job", {
        "ProcessingJobName": name, "ProcessingJobArn": "arn:x", "ProcessingJobStatus": "Failed",
        "CreationTime": "2026-01-01", "FailureReason": "AlgorithmError: 12 of 20 records rejected",
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.4xlarge", "VolumeSizeInGB": 100}},
        "AppSpecification": {"ImageUri": "x"}, "StoppingCondition": {"MaxRuntimeInSeconds": 1},
        "RoleArn": "arn:aws:iam::111111111111:role/x"}, {"ProcessingJobName": name})  # fmt: skip
    with pytest.raises(
        StepFailedError, match=f"processing job {name} failed: AlgorithmError: 12 of 20"
    ):
        backend.prepare(run)


def test_training_is_submitted_once_per_run_and_a_retry_waits_for_the_running_job(
    jobs: Any,
) -> None:
    backend, s_sm, _, _, run = jobs
    prepared = {"dataset": f"{DATA}/pipeline/{run.name}/data/", "image_digest": DIGEST}
    s_sm.add_response("list_training_jobs", {"TrainingJobSummaries": []},
                      {"NameContains": run.name, "StatusEquals": "InProgress", "MaxResults": 1})  # fmt: skip
    s_sm.add_response(
        "list_training_jobs",
        {"TrainingJobSummaries": []},
        {"NameContains": run.name, "MaxResults": 1},
    )
    s_sm.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, {
        "TrainingJobName": ANY, "RoleArn": ANY, "HyperParameters": ANY,
        "AlgorithmSpecification": {"TrainingImage": PUBLISHED["training/image-uri"] + "@" + DIGEST,
                                   "TrainingInputMode": "File"},
        "InputDataConfig": ANY, "OutputDataConfig": ANY, "VpcConfig": ANY, "StoppingCondition": ANY,
        "EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": False, "Environment": ANY, "Tags": ANY,
        "ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 500,
                           "VolumeKmsKeyId": KEY + "volume"},
        # The run's checkpoint prefix: a second job of the same run resumes from it.
        "CheckpointConfig": {"S3Uri": f"s3://fraud-checkpoints-111111111111-us-east-1/training-jobs/{run.name}/",
                             "LocalPath": "/opt/ml/checkpoints"},
    })  # fmt: skip
    handle = backend.submit_training(run, prepared, ["optim.lr=1e-4"])
    assert handle["job"].startswith(f"fraud-{run.name}-")
    assert handle["resumed"] is False
    s_sm.add_response("list_training_jobs", {"TrainingJobSummaries": [{
        "TrainingJobName": handle["job"], "TrainingJobArn": "arn:x", "CreationTime": "2026-01-01",
        "TrainingJobStatus": "InProgress"}]},
        {"NameContains": run.name, "StatusEquals": "InProgress", "MaxResults": 1})  # fmt: skip
    again = backend.submit_training(run, prepared, [])
    assert again == {**handle, "resumed": True}


def _training_status(s_sm: Stubber, status: str, reason: str = "") -> None:
    s_sm.add_response("describe_training_job", {
        "TrainingJobName": "j", "TrainingJobArn": "arn:x", "TrainingJobStatus": status,
        "SecondaryStatus": "Training", "CreationTime": "2026-01-01", "FailureReason": reason or "none",
        "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ResourceConfig": {"VolumeSizeInGB": 1},
        "StoppingCondition": {}, "ModelArtifacts": {"S3ModelArtifacts": "s3://x/y"}}, {"TrainingJobName": "j"})  # fmt: skip


def test_the_training_sensor_waits_then_fails_with_the_jobs_reason(jobs: Any) -> None:
    backend, s_sm, _, _, _ = jobs
    _training_status(s_sm, "InProgress")
    _training_status(s_sm, "Completed")
    _training_status(s_sm, "Failed", "CapacityError: no ml.p4d.24xlarge capacity")
    assert backend.training_finished({"job": "j"}) is False
    assert backend.training_finished({"job": "j"}) is True
    with pytest.raises(StepFailedError, match="training job j failed: CapacityError"):
        backend.training_finished({"job": "j"})


def test_an_evaluation_report_that_does_not_parse_fails_the_step(jobs: Any) -> None:
    backend, s_sm, _, s_s3, run = jobs
    _processing(s_sm, f"fraud-{run.name}-evaluate", "Completed")
    _json_object(s_s3, f"pipeline/{run.name}/evaluation/evaluation.json", b'{"models": ')
    with pytest.raises(StepFailedError, match=r"evaluation\.json: not JSON"):
        backend.evaluate(
            run, {"model": "s3://m/c/"}, None, {"dataset": f"{DATA}/d/", "image_digest": DIGEST}
        )


def test_a_throttled_lookup_never_starts_a_second_job(jobs: Any) -> None:
    """Only SageMaker's "Could not find" means the run's job does not exist yet; any other
    error (throttling, a denied call) is raised for Airflow to retry, and no job is created."""
    from botocore.exceptions import ClientError

    backend, s_sm, _, _, run = jobs
    s_sm.add_client_error("describe_processing_job", "ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError, match="Rate exceeded"):
        backend.prepare(run)
