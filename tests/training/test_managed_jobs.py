"""The managed alternative: CreateTrainingJob and CreateProcessingJob requests, checked field by
field with botocore's Stubber (VPC, KMS, role, image, channels, checkpoints, environment), with
every platform value read from the BU's SSM parameters (also stubbed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from core import parameters as p
from training.config import load_config
from training.job import main, parse_args
from training.job.managed import ManagedJobError, TrainingJobSpec, job_name, training_job_request
from training.job.platform import PROCESSING_JOB_NAMES, TRAINING_JOB_NAMES, BuPlatform
from training.prepare import cli as prepare_cli

BU, REGION, ACCOUNT = "fraud", "us-east-1", "111111111111"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
PUBLISHED = {
    p.TRAINING_IMAGE_URI: f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fraud-training",
    p.TRAINING_JOB_ROLE_ARN: f"arn:aws:iam::{ACCOUNT}:role/fraud-training-job-{REGION}",
    p.TRAINING_SUBNET_IDS: "subnet-a,subnet-b,subnet-c",
    p.TRAINING_SECURITY_GROUP_ID: "sg-jobs",
    p.TRAINING_VOLUME_KEY_ARN: KEY + "volume",
    p.DATA_BUCKET: "fraud-data-111111111111-us-east-1",
    p.MODELS_BUCKET: "fraud-models-111111111111-us-east-1",
    p.CHECKPOINTS_BUCKET: "fraud-checkpoints-111111111111-us-east-1",
    p.DATA_KEY_ARN: KEY + "data",
    p.MODELS_KEY_ARN: KEY + "models",
    p.MLFLOW_TRACKING_ARN: f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/fraud",
}
DATA = f"s3://{PUBLISHED[p.DATA_BUCKET]}"
MODELS = f"s3://{PUBLISHED[p.MODELS_BUCKET]}"
CONFIG = Path(__file__).resolve().parents[2] / "training" / "configs" / "qwen3-4b-lora.yaml"


def _client(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(
        service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def _ssm(names: list[str]) -> Any:
    ssm, stubber = _client("ssm")
    found = [{"Name": f"/{BU}/{n}", "Type": "String", "Value": PUBLISHED[n]} for n in names]
    stubber.add_response(
        "get_parameters", {"Parameters": found}, {"Names": [f"/{BU}/{n}" for n in names]}
    )
    stubber.activate()
    return ssm


VPC = {"SecurityGroupIds": ["sg-jobs"], "Subnets": ["subnet-a", "subnet-b", "subnet-c"]}


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def _submit_argv(*extra: str) -> list[str]:
    return [
        "submit",
        "--backend",
        "training-job",
        "--bu",
        BU,
        "--name",
        "qwen3-lora",
        "--config",
        str(CONFIG),
        "--data",
        f"{DATA}/prepared/v1/",
        "--base-model",
        f"{MODELS}/base/qwen3-4b/",
        "--tag",
        "abc123",
        *extra,
    ]


def test_create_training_job_request(capsys) -> None:
    sagemaker, stubber = _client("sagemaker")
    config_yaml = ANY  # checked below: the validated config, as the container will load it
    stubber.add_response(
        "create_training_job",
        {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/x"},
        {
            "TrainingJobName": ANY,
            "RoleArn": PUBLISHED[p.TRAINING_JOB_ROLE_ARN],
            "AlgorithmSpecification": {
                "TrainingImage": f"{PUBLISHED[p.TRAINING_IMAGE_URI]}:abc123",
                "TrainingInputMode": "File",
            },
            "HyperParameters": {"config_yaml": config_yaml, "max_steps": "500"},
            "InputDataConfig": [
                _channel("train", f"{DATA}/prepared/v1/"),
                _channel("model", f"{MODELS}/base/qwen3-4b/"),
            ],
            "OutputDataConfig": {
                "S3OutputPath": f"{MODELS}/training-jobs/qwen3-lora/",
                "KmsKeyId": KEY + "models",
            },
            "ResourceConfig": {
                "InstanceType": "ml.p5.48xlarge",
                "InstanceCount": 2,
                "VolumeSizeInGB": 500,
                "VolumeKmsKeyId": KEY + "volume",
            },
            "VpcConfig": VPC,
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "EnableNetworkIsolation": False,  # MLflow is reached over the network
            "EnableInterContainerTrafficEncryption": True,
            "EnableManagedSpotTraining": False,
            "CheckpointConfig": {
                "S3Uri": f"s3://{PUBLISHED[p.CHECKPOINTS_BUCKET]}/training-jobs/qwen3-lora/",
                "LocalPath": "/opt/ml/checkpoints",
            },
            "Environment": {"MLFLOW_TRACKING_URI": PUBLISHED[p.MLFLOW_TRACKING_ARN]},
            "Tags": [{"Key": "bu", "Value": BU}, {"Key": "run", "Value": "qwen3-lora"}],
        },
    )
    stubber.activate()
    argv = _submit_argv("--nodes", "2", "--set", "max_steps=500")
    assert main(parse_args(argv), ssm=_ssm(TRAINING_JOB_NAMES), sagemaker=sagemaker) == 0
    stubber.assert_no_pending_responses()
    assert "created training job fraud-qwen3-lora-" in capsys.readouterr().out


def test_the_hyperparameter_carries_the_validated_config(tmp_path: Path) -> None:
    out = tmp_path / "request.json"
    argv = _submit_argv("--set", "optim.lr=0.0002")
    argv[0] = "render"
    assert main(parse_args([*argv, "--output", str(out)]), ssm=_ssm(TRAINING_JOB_NAMES)) == 0
    request = yaml.safe_load(out.read_text())
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text(request["HyperParameters"]["config_yaml"])
    assert load_config(shipped) == load_config(CONFIG, ["optim.lr=0.0002"])
    assert request["HyperParameters"]["optim.lr"] == "0.0002"  # also applied in the container


def test_spot_training_waits_and_needs_checkpoints() -> None:
    found = BuPlatform(bu=BU, region=REGION, team=None, values=PUBLISHED)
    spec = TrainingJobSpec(
        run="r",
        config_yaml="x: 1",
        train_data=f"{DATA}/d/",
        base_model=f"{MODELS}/m/",
        image_tag="t",
        spot=True,
        max_run_hours=10,
        max_wait_hours=20,
    )
    request = training_job_request(spec, found, name="fraud-r-1")
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 36000,
        "MaxWaitTimeInSeconds": 72000,
    }
    assert request["CheckpointConfig"]["S3Uri"].endswith("/training-jobs/r/")
    without_mlflow = BuPlatform(
        bu=BU,
        region=REGION,
        team=None,
        values={k: v for k, v in PUBLISHED.items() if k != p.MLFLOW_TRACKING_ARN},
    )
    isolated = training_job_request(spec, without_mlflow, name="fraud-r-1")
    assert isolated["EnableNetworkIsolation"] is True
    assert "MLFLOW_TRACKING_URI" not in isolated["Environment"]


def test_job_names_carry_the_bu_prefix_the_role_may_log_under() -> None:
    found = BuPlatform(bu=BU, region=REGION, team=None, values=PUBLISHED)
    when = datetime(2026, 12, 1, 20, 15, 3, tzinfo=UTC)
    assert job_name(found, "qwen3-lora", when) == "fraud-qwen3-lora-20261201-201503"
    with pytest.raises(ManagedJobError, match="--name"):
        job_name(found, "x" * 60, when)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--data", "s3://someone-elses-bucket/x/"), "--data: 's3://someone-elses-bucket/x/' is"),
        (("--base-model", "/local/path"), "--base-model: '/local/path' is not an s3://"),
    ],
)
def test_uris_outside_the_bus_buckets_are_refused(capsys, extra, message) -> None:
    assert main(parse_args([*_submit_argv(), *extra]), ssm=_ssm(TRAINING_JOB_NAMES)) == 2
    assert message in capsys.readouterr().err


def test_an_invalid_training_config_fails_before_any_job_exists(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 1\n")
    argv = _submit_argv()
    argv[argv.index("--config") + 1] = str(bad)
    # No sagemaker stub: nothing is sent.
    assert main(parse_args(argv), ssm=_ssm(TRAINING_JOB_NAMES)) == 2
    assert "--config:" in capsys.readouterr().err


def test_create_processing_job_request_for_prepare(capsys, monkeypatch) -> None:
    sagemaker, stubber = _client("sagemaker")
    local_input = "/opt/ml/processing/input"
    stubber.add_response(
        "create_processing_job",
        {"ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/x"},
        {
            "ProcessingJobName": ANY,
            "RoleArn": PUBLISHED[p.TRAINING_JOB_ROLE_ARN],
            "AppSpecification": {
                "ImageUri": f"{PUBLISHED[p.TRAINING_IMAGE_URI]}:abc123",
                "ContainerEntrypoint": ["python", "-m", "training.entrypoint"],
                "ContainerArguments": [
                    "prepare",
                    "--input",
                    f"{local_input}/records/tools.jsonl",
                    "--output",
                    "/opt/ml/processing/output/dataset",
                    "--tokenizer",
                    f"{local_input}/tokenizer",
                    "--max-length",
                    "4096",
                    "--workers",
                    "16",
                ],
            },
            "ProcessingInputs": [
                {
                    "InputName": "records",
                    "S3Input": {
                        "S3Uri": f"{DATA}/raw/tools.jsonl",
                        "LocalPath": f"{local_input}/records",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                },
                {
                    "InputName": "tokenizer",
                    "S3Input": {
                        "S3Uri": f"{MODELS}/base/qwen3-4b/",
                        "LocalPath": f"{local_input}/tokenizer",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                },
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "dataset",
                        "S3Output": {
                            "S3Uri": f"{DATA}/prepared/v1/",
                            "LocalPath": "/opt/ml/processing/output/dataset",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
                "KmsKeyId": KEY + "data",
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.4xlarge",
                    "VolumeSizeInGB": 100,
                    "VolumeKmsKeyId": KEY + "volume",
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 43200},
            "NetworkConfig": {
                "EnableInterContainerTrafficEncryption": True,
                "EnableNetworkIsolation": True,
                "VpcConfig": VPC,
            },
            "Environment": {"PYTHONUNBUFFERED": "1"},
            "Tags": [{"Key": "bu", "Value": BU}, {"Key": "run", "Value": "prepare"}],
        },
    )
    stubber.activate()
    argv = ["--backend", "processing", "--bu", BU, "--tag", "abc123"]
    argv += ["--input", f"{DATA}/raw/tools.jsonl", "--output", f"{DATA}/prepared/v1/"]
    argv += ["--tokenizer", f"{MODELS}/base/qwen3-4b/", "--max-length", "4096", "--workers", "16"]
    # Through `python -m training.prepare`'s own entry point, as a user types it: the stubbed
    # clients stand in for the ones it would create from the default AWS session.
    from training.job import cli

    stubbed = cli.Clients(ssm=_ssm(PROCESSING_JOB_NAMES), sagemaker=sagemaker)
    monkeypatch.setattr(cli, "Clients", lambda **_: stubbed)
    assert prepare_cli(argv) == 0
    stubber.assert_no_pending_responses()
    assert "created processing job fraud-prepare-" in capsys.readouterr().out


def test_processing_refuses_data_outside_the_data_bucket(capsys) -> None:
    from training.job.cli import prepare_main

    argv = ["--backend", "processing", "--bu", BU, "--tag", "t", "--tokenizer", "/app/tok"]
    argv += ["--input", f"{MODELS}/x.jsonl", "--output", f"{DATA}/out/"]
    assert prepare_main(argv, ssm=_ssm(PROCESSING_JOB_NAMES)) == 2
    assert "--input:" in capsys.readouterr().err


def test_prepare_keeps_local_and_hands_only_processing_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--backend local` runs the preparation here (the same failure as with no --backend);
    a backend that does not exist is one line. That training.prepare imports training.job only
    inside the processing branch is held by the import contracts (`make lint`)."""
    from training import prepare

    assert prepare.cli(["--backend", "bogus", "--input", "x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --backend: 'bogus' is not one of local, processing"
    )
    missing = tmp_path / "missing.jsonl"
    args = ["--input", str(missing), "--output", str(tmp_path / "out"), "--tokenizer", "t"]
    assert prepare.cli(["--backend=local", *args]) == prepare.cli(args) == 2
    assert "prepare failed" in capsys.readouterr().err
