"""The managed alternative to HyperPod: the same image and training config as a SageMaker
Training Job, and `training.prepare` as a SageMaker Processing job, in the BU's private subnets.

Requests are built as plain dicts and sent with boto3's ``sagemaker`` client: the request is
exactly what the tests check with botocore's Stubber. (The SDK v3 ``sagemaker-train`` package
is not installed: its pins conflict with mlflow's, see requirements-ml.txt; ``sagemaker-core``
resources wrap the same CreateTrainingJob call without adding a check we need.)

Container side: `training/entrypoint.py` reads what these requests set (channels under
``/opt/ml/input/data/<channel>``, hyperparameters, ``/opt/ml/checkpoints``, ``/opt/ml/model``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core import parameters as p
from training.job.platform import BuPlatform

# Where the SageMaker contract puts things inside the container (training/entrypoint.py).
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
PROCESSING_INPUT = "/opt/ml/processing/input"
PROCESSING_OUTPUT = "/opt/ml/processing/output/dataset"
CONTAINER_ENTRYPOINT = ["python", "-m", "training.entrypoint"]
# SageMaker limits: a hyperparameter value holds at most 2,500 characters; job names 63.
MAX_HYPERPARAMETER = 2500
MAX_JOB_NAME = 63
_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")


class ManagedJobError(ValueError):
    """A setting the managed job cannot honour; the message names the flag."""


def image_ref(repository_uri: str, tag: str) -> str:
    """``uri:tag``, or ``uri@sha256:...`` when ``tag`` is a digest (a run pinned to the bytes
    its first step resolved, so a moved tag cannot change what later steps run)."""
    return f"{repository_uri}@{tag}" if tag.startswith("sha256:") else f"{repository_uri}:{tag}"


def job_name(platform: BuPlatform, run: str, now: datetime | None = None) -> str:
    """``<bu>-<run>-<UTC timestamp>``: unique per submission (SageMaker never reuses a name),
    and prefixed by the BU, which is the only prefix the role may write job logs under."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    name = f"{platform.bu}-{run}-{stamp}"
    if len(name) > MAX_JOB_NAME or not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name):
        raise ManagedJobError(f"--name: {run!r} makes job name {name!r} (max {MAX_JOB_NAME})")
    return name


def _in_bucket(uri: str, bucket: str, flag: str) -> str:
    match = _S3.match(uri)
    if not match:
        raise ManagedJobError(f"{flag}: {uri!r} is not an s3://bucket/prefix URI")
    if match.group(1) != bucket:
        raise ManagedJobError(
            f"{flag}: {uri!r} is outside bucket {bucket!r}; the job role reaches only this BU's "
            "data, models and checkpoints buckets"
        )
    return uri


def _vpc(platform: BuPlatform) -> dict[str, Any]:
    return {
        "SecurityGroupIds": [platform[p.TRAINING_SECURITY_GROUP_ID]],
        "Subnets": [s for s in platform[p.TRAINING_SUBNET_IDS].split(",") if s],
    }


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


@dataclass(frozen=True)
class TrainingJobSpec:
    """What a data scientist chooses; everything else comes from the BU's parameters."""

    run: str  # names the checkpoints prefix, so a resubmitted run resumes (checkpoint.resume)
    config_yaml: str  # the validated training config (training.config.dump_config)
    train_data: str  # s3:// prefix in the data bucket (training.prepare's output)
    base_model: str  # s3:// prefix in the models bucket: the HF weights to fine-tune
    image_tag: str
    eval_data: str | None = None
    instance_type: str = "ml.p5.48xlarge"
    instance_count: int = 1
    volume_gb: int = 500
    spot: bool = False
    max_run_hours: float = 24.0
    max_wait_hours: float = 48.0  # spot only: waiting for capacity plus running
    overrides: Sequence[str] = ()  # extra KEY=VALUE for training.train's --set
    environment: Mapping[str, str] = field(default_factory=dict)


def training_job_request(
    spec: TrainingJobSpec, platform: BuPlatform, *, name: str
) -> dict[str, Any]:
    """The CreateTrainingJob request."""
    data, models = platform[p.DATA_BUCKET], platform[p.MODELS_BUCKET]
    if len(spec.config_yaml) > MAX_HYPERPARAMETER:
        raise ManagedJobError(
            f"--config: the resolved config is {len(spec.config_yaml)} characters; a "
            f"hyperparameter holds {MAX_HYPERPARAMETER}"
        )
    if spec.spot and spec.max_wait_hours < spec.max_run_hours:
        raise ManagedJobError("--max-wait-hours must be at least --max-run-hours with --spot")
    hyperparameters = {"config_yaml": spec.config_yaml}
    for item in spec.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ManagedJobError(f"--set takes KEY=VALUE, got {item!r}")
        hyperparameters[key] = value
    channels = [
        _channel("train", _in_bucket(spec.train_data, data, "--data")),
        _channel("model", _in_bucket(spec.base_model, models, "--base-model")),
    ]
    if spec.eval_data:
        channels.append(_channel("eval", _in_bucket(spec.eval_data, data, "--eval-data")))
    mlflow = platform.values.get(p.MLFLOW_TRACKING_ARN)
    environment = {**({"MLFLOW_TRACKING_URI": mlflow} if mlflow else {}), **spec.environment}
    max_run = int(spec.max_run_hours * 3600)
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_run}
    if spec.spot:
        stopping["MaxWaitTimeInSeconds"] = int(spec.max_wait_hours * 3600)
    return {
        "TrainingJobName": name,
        "RoleArn": platform[p.TRAINING_JOB_ROLE_ARN],
        "AlgorithmSpecification": {
            "TrainingImage": image_ref(platform[p.TRAINING_IMAGE_URI], spec.image_tag),
            "TrainingInputMode": "File",
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": channels,
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{models}/training-jobs/{spec.run}/",
            "KmsKeyId": platform[p.MODELS_KEY_ARN],
        },
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_gb,
            "VolumeKmsKeyId": platform[p.TRAINING_VOLUME_KEY_ARN],
        },
        "VpcConfig": _vpc(platform),
        "StoppingCondition": stopping,
        # The container talks to MLflow over the network; without a tracking server it needs
        # none, and SageMaker still moves channels, checkpoints and the model in and out.
        "EnableNetworkIsolation": not mlflow,
        "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": spec.spot,
        "CheckpointConfig": {
            "S3Uri": f"s3://{platform[p.CHECKPOINTS_BUCKET]}/training-jobs/{spec.run}/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "Environment": environment,
        "Tags": [{"Key": "bu", "Value": platform.bu}, {"Key": "run", "Value": spec.run}],
    }


@dataclass(frozen=True)
class ProcessingJobSpec:
    run: str
    input: str  # s3://<data bucket>/.../file.jsonl
    output: str  # s3://<data bucket>/prefix/ for the prepared dataset
    tokenizer: str  # s3:// prefix (data or models bucket) or a path inside the image
    prepare_args: Sequence[str]  # training.prepare's other flags, passed through
    image_tag: str
    instance_type: str = "ml.m5.4xlarge"
    volume_gb: int = 100
    max_run_hours: float = 12.0


def processing_job_request(
    spec: ProcessingJobSpec, platform: BuPlatform, *, name: str
) -> dict[str, Any]:
    """The CreateProcessingJob request: prepare reads and writes the BU's data bucket."""
    data = platform[p.DATA_BUCKET]
    source = _in_bucket(spec.input, data, "--input")
    if source.endswith("/"):
        raise ManagedJobError("--input: give the JSONL object, not a prefix")
    file_name = source.rsplit("/", 1)[-1]
    inputs = {"records": source}
    tokenizer = spec.tokenizer
    if tokenizer.startswith("s3://"):
        match = _S3.match(tokenizer)
        if not match or match.group(1) not in {data, platform[p.MODELS_BUCKET]}:
            raise ManagedJobError(f"--tokenizer: {tokenizer!r} is outside this BU's buckets")
        inputs["tokenizer"] = tokenizer
        tokenizer = f"{PROCESSING_INPUT}/tokenizer"
    arguments = [
        "prepare",
        "--input",
        f"{PROCESSING_INPUT}/records/{file_name}",
        "--output",
        PROCESSING_OUTPUT,
        "--tokenizer",
        tokenizer,
        *spec.prepare_args,
    ]
    return command_job_request(
        CommandJob(
            run=spec.run,
            arguments=arguments,
            inputs=inputs,
            output=_in_bucket(spec.output, data, "--output"),
            output_key=p.DATA_KEY_ARN,
            image_tag=spec.image_tag,
            instance_type=spec.instance_type,
            volume_gb=spec.volume_gb,
            max_run_hours=spec.max_run_hours,
        ),
        platform,
        name=name,
    )


@dataclass(frozen=True)
class CommandJob:
    """One command of the training image (prepare, export, evaluate) as a Processing job:
    each input an S3 prefix mounted at ``PROCESSING_INPUT/<name>``, one output folder
    (``PROCESSING_OUTPUT``) uploaded to ``output`` encrypted with the key ``output_key`` names."""

    run: str
    arguments: Sequence[str]
    inputs: Mapping[str, str]
    output: str
    output_key: str  # a parameter name: p.DATA_KEY_ARN or p.MODELS_KEY_ARN
    image_tag: str
    instance_type: str = "ml.m5.4xlarge"
    volume_gb: int = 100
    max_run_hours: float = 12.0
    # prepare and export need no network; evaluate logs to MLflow when a URI is given.
    network_isolation: bool = True
    environment: Mapping[str, str] = field(default_factory=dict)


def command_job_request(job: CommandJob, platform: BuPlatform, *, name: str) -> dict[str, Any]:
    """The CreateProcessingJob request for one command of the training image."""
    inputs = [
        {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": f"{PROCESSING_INPUT}/{input_name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }
        for input_name, uri in job.inputs.items()
    ]
    return {
        "ProcessingJobName": name,
        "RoleArn": platform[p.TRAINING_JOB_ROLE_ARN],
        "AppSpecification": {
            "ImageUri": image_ref(platform[p.TRAINING_IMAGE_URI], job.image_tag),
            "ContainerEntrypoint": CONTAINER_ENTRYPOINT,
            "ContainerArguments": list(job.arguments),
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "dataset",
                    "S3Output": {
                        "S3Uri": job.output,
                        "LocalPath": PROCESSING_OUTPUT,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": platform[job.output_key],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": job.instance_type,
                "VolumeSizeInGB": job.volume_gb,
                "VolumeKmsKeyId": platform[p.TRAINING_VOLUME_KEY_ARN],
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(job.max_run_hours * 3600)},
        # SageMaker moves the inputs and outputs; the command itself needs no network.
        "NetworkConfig": {
            "EnableInterContainerTrafficEncryption": True,
            "EnableNetworkIsolation": job.network_isolation,
            "VpcConfig": _vpc(platform),
        },
        "Environment": {"PYTHONUNBUFFERED": "1", **job.environment},
        "Tags": [{"Key": "bu", "Value": platform.bu}, {"Key": "run", "Value": job.run}],
    }


def sagemaker_client(region: str) -> Any:
    import boto3

    return boto3.client("sagemaker", region_name=region)


def submit_training_job(client: Any, request: Mapping[str, Any]) -> str:
    arn: str = client.create_training_job(**request)["TrainingJobArn"]
    return arn


def submit_processing_job(client: Any, request: Mapping[str, Any]) -> str:
    arn: str = client.create_processing_job(**request)["ProcessingJobArn"]
    return arn
