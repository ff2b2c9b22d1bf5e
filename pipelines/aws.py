"""The cloud profile (MWAA): each step is a SageMaker job in the BU's private subnets, built by
the same request builders `training.job` uses, and the deploy is an UpdateEndpoint with
SageMaker's deployment guardrails.

- prepare, export, evaluate: Processing jobs running the training image's command
  (`training.job.managed.command_job_request`), awaited in the task (no EKS token involved).
- train: a Training Job (`training_job_request`) or a HyperPodPyTorchJob in the team's namespace
  and Kueue queue (`training.job.cli.hyperpod_manifest`, the path `training.job submit` takes,
  through an EKS client made from the execution role's credentials for each call:
  `pipelines.eks`), submitted once per run and polled by a reschedule-mode sensor. A retry finds
  the run's job instead of starting a second one; a new job for the same run resumes from the
  run's checkpoint prefix.
- deploy: a new Model and EndpointConfig copied from what the endpoint serves with only the
  model data changed, then UpdateEndpoint with blue/green CANARY traffic shifting and
  auto-rollback on the endpoint's CloudWatch alarms (SageMaker developer guide, "Deployment
  guardrails": `DeploymentConfig.BlueGreenUpdatePolicy`, `AutoRollbackConfiguration.Alarms`).
  A rollback leaves the endpoint InService on its old config: the task fails saying so.
  An endpoint on HyperPod (`pipeline.deploy.namespace`): its `InferenceEndpointConfig`
  re-applied with the candidate's model location and awaited, the previous spec re-applied when
  the new one is not ready in time (`pipelines.hyperpod_endpoint`); its champion is the model
  location that object names.

Clients are injected by tests (botocore Stubber); on MWAA they come from the execution role.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from config.pipeline import OUTPUT_PREFIX
from config.schema import BusinessUnitConfig
from core import parameters as p
from pipelines.hyperpod_endpoint import EndpointObject, HyperPodEndpoint
from pipelines.lifecycle import (
    TRAINING_CONFIGS,
    Candidate,
    Deployed,
    Evaluation,
    Prepared,
    Run,
    StepFailedError,
    TrainingHandle,
    evaluation_of,
    prepare_arguments,
    prepared_of,
    read_s3_json,
    split_s3,
)
from training.job import managed, platform
from training.job.managed import PROCESSING_INPUT, PROCESSING_OUTPUT, CommandJob, image_ref

POLL_S = 30.0
IMAGE_TRAINING_CONFIGS = "/app/training/configs"  # training/Dockerfile: WORKDIR /app
# What the jobs' requests read from the BU's published parameters (both builders' lists).
PLATFORM_NAMES = list(dict.fromkeys([*platform.TRAINING_JOB_NAMES, *platform.PROCESSING_JOB_NAMES]))
EVAL_INSTANCE = "ml.g5.2xlarge"  # one A10G: a 4B model in bf16 with room for the batch
_DONE = {"Completed"}
_FAILED = {"Failed", "Stopped"}


def _not_found(err: ClientError) -> bool:
    """SageMaker's answer for a job or endpoint that does not exist: a ValidationException
    saying "Could not find ..." (it has no NotFound error code for these)."""
    error = err.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "Could not find" in error.get(
        "Message", ""
    )


class AwsBackend:
    def __init__(
        self,
        bu: BusinessUnitConfig,
        *,
        ssm: Any = None,
        sagemaker: Any = None,
        s3: Any = None,
        cloudwatch: Any = None,
        eks: Any = None,
        sts: Any = None,
        ecr: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import boto3

        self.bu = bu
        region = bu.region
        self.ssm = ssm or boto3.client("ssm", region_name=region)
        self.sagemaker = sagemaker or boto3.client("sagemaker", region_name=region)
        self.s3 = s3 or boto3.client("s3", region_name=region)
        self.cloudwatch = cloudwatch or boto3.client("cloudwatch", region_name=region)
        self.eks = eks or boto3.client("eks", region_name=region)
        self.ecr = ecr or boto3.client("ecr", region_name=region)
        # Regional STS: the token's presigned URL must name the region's STS endpoint.
        self.sts = sts or boto3.client(
            "sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com"
        )
        self.sleep = sleep
        self.clock = clock
        self._platform: platform.BuPlatform | None = None

    # -- platform values -----------------------------------------------------------------------
    @property
    def platform(self) -> platform.BuPlatform:
        if self._platform is None:
            try:
                self._platform = platform.read(self.ssm, self.bu.name, PLATFORM_NAMES)
            except platform.PlatformLookupError as err:
                raise StepFailedError(str(err)) from err
        return self._platform

    def image_digest(self, tag: str) -> str:
        """The digest (``sha256:...``) ``tag`` names now. The run's first step resolves it and
        every later job of the run uses it: a tag can move, the digest names the bytes."""
        uri = self.platform[p.TRAINING_IMAGE_URI]
        repository = uri.split("/", 1)[1]
        try:
            found = self.ecr.describe_images(
                repositoryName=repository, imageIds=[{"imageTag": tag}]
            )["imageDetails"]
        except ClientError as err:
            if err.response["Error"]["Code"] == "ImageNotFoundException":
                raise StepFailedError(
                    f"{uri}:{tag}: no such image; push it first (make push-training-image)"
                ) from err
            raise
        return str(found[0]["imageDigest"])

    def _uri(self, bucket_parameter: str, key: str) -> str:
        return f"s3://{self.platform[bucket_parameter]}/{key}"

    def _out(self, run: Run, what: str, bucket_parameter: str = p.DATA_BUCKET) -> str:
        return self._uri(bucket_parameter, f"pipeline/{run.name}/{what}/")

    def _read_json(self, uri: str) -> Any:
        try:
            return read_s3_json(self.s3, uri)
        except ClientError as err:  # a missing or unreadable object is a step failure
            raise StepFailedError(f"{uri}: {err}") from err

    # -- processing jobs -----------------------------------------------------------------------
    def _processing(self, run: Run, step: str, job: CommandJob) -> None:
        """Run one command of the image as a Processing job and wait for it (idempotent: a retry
        waits for the job its earlier try started)."""
        name = f"{self.bu.name}-{run.name}-{step}"[: managed.MAX_JOB_NAME]
        try:
            self.sagemaker.describe_processing_job(ProcessingJobName=name)
        except ClientError as err:
            if not _not_found(err):  # throttled or denied: never start a second job
                raise
            request = managed.command_job_request(job, self.platform, name=name)
            managed.submit_processing_job(self.sagemaker, request)
        while True:
            job_state = self.sagemaker.describe_processing_job(ProcessingJobName=name)
            status = job_state["ProcessingJobStatus"]
            if status in _DONE:
                return
            if status in _FAILED:
                reason = job_state.get("FailureReason") or job_state.get("ExitMessage") or status
                raise StepFailedError(f"processing job {name} {status.lower()}: {reason}")
            self.sleep(POLL_S)

    def prepare(self, run: Run) -> Prepared:
        pipeline = run.pipeline
        source = self._uri(p.DATA_BUCKET, pipeline.data_prefix + pipeline.dataset_file)
        output = self._out(run, "data")
        digest = self.image_digest(pipeline.train.image_tag)
        self._processing(
            run,
            "prepare",
            CommandJob(
                run=run.name,
                arguments=[
                    "prepare",
                    *prepare_arguments(
                        pipeline,
                        source=f"{PROCESSING_INPUT}/records/{pipeline.dataset_file}",
                        output=PROCESSING_OUTPUT,
                        tokenizer=f"{PROCESSING_INPUT}/tokenizer",
                    ),
                ],
                inputs={
                    "records": source,
                    "tokenizer": self._uri(p.MODELS_BUCKET, pipeline.train.base_model),
                },
                output=output,
                output_key=p.DATA_KEY_ARN,
                image_tag=digest,
            ),
        )
        stats = self._read_json(output + "stats.json")
        bucket, prefix = split_s3(output)
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        listing = hashlib.sha256()
        for item in sorted(listed, key=lambda o: o["Key"]):
            listing.update(f"{item['Key']}\0{item['ETag']}\0{item['Size']}\n".encode())
        prepared = prepared_of(
            stats, dataset=output, eval_data=output + "eval.jsonl", digest=listing.hexdigest()[:16]
        )
        return {**prepared, "image_digest": digest}

    # -- training ------------------------------------------------------------------------------
    def submit_training(self, run: Run, prepared: Prepared, overrides: list[str]) -> TrainingHandle:
        if run.pipeline.train.backend == "hyperpod":
            return self._submit_hyperpod(run, prepared, overrides)
        from training.config import dump_config, load_config

        train = run.pipeline.train
        running = self.sagemaker.list_training_jobs(
            NameContains=run.name, StatusEquals="InProgress", MaxResults=1
        )["TrainingJobSummaries"]
        checkpoints = self._uri(p.CHECKPOINTS_BUCKET, f"training-jobs/{run.name}/")
        image = prepared["image_digest"]
        if running:  # a retry of this task: the earlier try's job is still going
            return {
                "job": running[0]["TrainingJobName"],
                "resumed": True,
                "checkpoints": checkpoints,
                "image": image,
            }
        try:
            config = load_config(TRAINING_CONFIGS / train.config, overrides)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise StepFailedError(f"training config {train.config}: {err}") from err
        spec = managed.TrainingJobSpec(
            run=run.name,
            config_yaml=dump_config(config),
            train_data=prepared["dataset"],
            base_model=self._uri(p.MODELS_BUCKET, train.base_model),
            image_tag=image,
            instance_type=train.instance_type,
            max_run_hours=train.max_run_hours,
        )
        name = managed.job_name(self.platform, run.name)
        try:
            request = managed.training_job_request(spec, self.platform, name=name)
        except managed.ManagedJobError as err:
            raise StepFailedError(str(err)) from err
        earlier = self.sagemaker.list_training_jobs(NameContains=run.name, MaxResults=1)
        managed.submit_training_job(self.sagemaker, request)
        return {
            "job": name,
            "resumed": bool(earlier["TrainingJobSummaries"]),
            "checkpoints": checkpoints,
            "image": image,
        }

    def _cluster(self, eks_cluster: str) -> Any:
        from pipelines.eks import api_client
        from training.job.cluster import HyperPodCluster

        return HyperPodCluster(api_client(self.eks, self.sts, eks_cluster))

    def _submit_hyperpod(
        self, run: Run, prepared: Prepared, overrides: list[str]
    ) -> TrainingHandle:
        """The run's HyperPodPyTorchJob, named for the run: a retry that finds it leaves it to
        the training operator, which restarts it from its checkpoints itself."""
        from training.job import crd
        from training.job.cli import hyperpod_manifest
        from training.job.cluster import ClusterError
        from training.job.manifest import JobSpecError

        train = run.pipeline.train
        # Under the team's prefix: the only part of the bucket its pods may write.
        checkpoints = self._uri(
            p.CHECKPOINTS_BUCKET, f"{train.team}/pipeline/{run.name}/checkpoints/"
        )
        sets = [
            f"data.path={prepared['dataset']}",
            f"model.name_or_path={self._uri(p.MODELS_BUCKET, train.base_model)}",
            f"checkpoint.dir={checkpoints}",
            *overrides,
        ]
        argv = [
            "--bu", self.bu.name, "--team", str(train.team), "--region", self.bu.region,
            "--name", run.name, "--instance-type", train.instance_type,
            "--image", image_ref(self.platform[p.TRAINING_IMAGE_URI], prepared["image_digest"]),
            "--config", f"{IMAGE_TRAINING_CONFIGS}/{train.config}",
            "--config-file", str(TRAINING_CONFIGS / train.config),
            *(arg for item in sets for arg in ("--set", item)),
        ]  # fmt: skip
        try:
            manifest, spec, found = hyperpod_manifest(argv, ssm=self.ssm)
        except (JobSpecError, crd.ManifestSchemaError, platform.PlatformLookupError) as err:
            raise StepFailedError(str(err)) from err
        if found is None:  # --bu is given, so the BU's values were read
            raise StepFailedError(f"{self.bu.name}: no published HyperPod values")
        handle = {
            "backend": "hyperpod",
            "job": run.name,
            "namespace": spec.namespace,
            "eks_cluster": found[p.EKS_CLUSTER_NAME],
            "checkpoints": checkpoints,
            "image": prepared["image_digest"],
        }
        cluster = self._cluster(handle["eks_cluster"])
        try:
            cluster.get(spec.namespace, run.name)
        except ClusterError:
            try:
                cluster.submit(manifest)
            except ClusterError as err:
                raise StepFailedError(str(err)) from err
            return {**handle, "resumed": False}
        return {**handle, "resumed": True}

    def _hyperpod_finished(self, handle: TrainingHandle) -> bool:
        """Done on a true `Complete` condition, failed on `Failed` (the CRD's JobCondition type:
        "Complete or Failed", aws/sagemaker-hyperpod-cli hyperpod_pytorch_job_status.py)."""
        from training.job.cluster import ClusterError

        cluster = self._cluster(handle["eks_cluster"])
        try:
            job = cluster.get(handle["namespace"], handle["job"])
        except ClusterError as err:
            raise StepFailedError(str(err)) from err
        conditions = {
            c.get("type"): c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"
        }
        if "Failed" in conditions:
            failed = conditions["Failed"]
            reason = failed.get("message") or failed.get("reason") or "no reason given"
            raise StepFailedError(
                f"HyperPodPyTorchJob {handle['namespace']}/{handle['job']} failed: {reason}"
            )
        return bool(conditions.keys() & {"Complete", "Completed", "Succeeded"})

    def training_finished(self, handle: TrainingHandle) -> bool:
        if handle.get("backend") == "hyperpod":
            return self._hyperpod_finished(handle)
        job = self.sagemaker.describe_training_job(TrainingJobName=handle["job"])
        status = job["TrainingJobStatus"]
        if status in _FAILED:
            reason = job.get("FailureReason") or status
            raise StepFailedError(f"training job {handle['job']} {status.lower()}: {reason}")
        return status in _DONE

    def export(self, run: Run, handle: TrainingHandle) -> Candidate:
        """The run's latest checkpoint (synced to its checkpoint prefix) as a merged model."""
        output = self._out(run, "model", p.MODELS_BUCKET)
        self._processing(
            run,
            "export",
            CommandJob(
                run=run.name,
                arguments=[
                    "export",
                    # export reads <run-dir>/checkpoints/step-*: the prefix is mounted there.
                    "--run-dir", PROCESSING_INPUT,
                    "--base-model", f"{PROCESSING_INPUT}/base",
                    "--output", PROCESSING_OUTPUT,
                ],
                inputs={
                    "checkpoints": handle["checkpoints"],
                    "base": self._uri(p.MODELS_BUCKET, run.pipeline.train.base_model),
                },
                output=output,
                output_key=p.MODELS_KEY_ARN,
                image_tag=handle["image"],
                volume_gb=200,
            ),
        )  # fmt: skip
        image = image_ref(self.platform[p.TRAINING_IMAGE_URI], handle["image"])
        return {"model": output, "run": run.name, "image": image}

    # -- evaluation ----------------------------------------------------------------------------
    def _endpoint_name(self, run: Run) -> str:
        return self.bu.naming.resource(run.pipeline.deploy.endpoint)

    def _served_model(self, endpoint: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(endpoint config, model description, model data URI) of what the endpoint serves."""
        described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        model = self.sagemaker.describe_model(
            ModelName=config["ProductionVariants"][0]["ModelName"]
        )
        container = model["PrimaryContainer"]
        source = container.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri")
        uri = source or container.get("ModelDataUrl")
        if not uri:
            raise StepFailedError(f"{endpoint}: its model names no S3 model data")
        return config, model, str(uri)

    def champion(self, run: Run) -> str | None:
        hyperpod = self._hyperpod_endpoint(run)
        if hyperpod is not None:
            return hyperpod.served()
        try:
            return self._served_model(self._endpoint_name(run))[2]
        except ClientError as err:
            if _not_found(err):
                return None  # the endpoint does not exist yet
            raise

    def evaluate(
        self, run: Run, candidate: Candidate, champion: str | None, prepared: Prepared
    ) -> Evaluation:
        output = self._out(run, "evaluation")
        arguments = [
            "evaluate",
            "--model", f"{PROCESSING_INPUT}/candidate",
            "--data", f"{PROCESSING_INPUT}/eval/eval.jsonl",
            "--max-cases", str(run.pipeline.gate.max_cases),
            "--output", f"{PROCESSING_OUTPUT}/evaluation.json",
        ]  # fmt: skip
        inputs = {"candidate": candidate["model"], "eval": prepared["dataset"]}
        if champion is not None:
            arguments += ["--base-model", f"{PROCESSING_INPUT}/champion"]
            inputs["champion"] = champion
        self._processing(
            run,
            "evaluate",
            CommandJob(
                run=run.name,
                arguments=arguments,
                inputs=inputs,
                output=output,
                output_key=p.DATA_KEY_ARN,
                image_tag=prepared["image_digest"],
                instance_type=EVAL_INSTANCE,
            ),
        )
        report_uri = output + "evaluation.json"
        report = self._read_json(report_uri)
        return evaluation_of(report, champion, report_uri=report_uri, source=output)

    # -- deployment ----------------------------------------------------------------------------
    def _alarms(self, endpoint: str) -> list[str]:
        """The endpoint stack's alarms on this endpoint (their names carry the stack's name)."""
        names = []
        pages = self.cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=self.bu.naming.stack("endpoints"), AlarmTypes=["MetricAlarm"]
        )
        for page in pages:
            for alarm in page["MetricAlarms"]:
                dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
                if dims.get("EndpointName") == endpoint:
                    names.append(alarm["AlarmName"])
        return names

    def _hyperpod_endpoint(self, run: Run) -> HyperPodEndpoint | None:
        """The deploy target's InferenceEndpointConfig, when the endpoint runs on HyperPod."""
        deploy = run.pipeline.deploy
        if deploy.namespace is None:  # the schema requires it for (and only for) hyperpod
            return None
        from kubernetes import client as k8s

        from pipelines.eks import api_client

        cluster = self.bu.naming.resource("eks")  # the HyperPod stack's name for it
        target = EndpointObject(
            namespace=deploy.namespace,
            name=self._endpoint_name(run),
            apply_command=f"python -m inference.hyperpod apply --config config/{self.bu.name}"
            f".yaml --endpoint {deploy.endpoint} --namespace {deploy.namespace}",
        )
        return HyperPodEndpoint(
            target,
            connect=lambda: k8s.CustomObjectsApi(api_client(self.eks, self.sts, cluster)),
            s3=self.s3,
            sleep=self.sleep,
            clock=self.clock,
        )

    def _deploy_hyperpod(
        self, run: Run, candidate: Candidate, hyperpod: HyperPodEndpoint
    ) -> Deployed:
        deploy = run.pipeline.deploy
        models = self.platform[p.MODELS_BUCKET]
        if not candidate["model"].startswith(f"s3://{models}/{OUTPUT_PREFIX}{run.name}/"):
            # The pipeline stack lets the operator's role read this prefix of the models bucket
            # (its ModelReader policy), and the run writes its export there.
            raise StepFailedError(
                f"candidate {candidate['model']} is not this run's export under "
                f"s3://{models}/{OUTPUT_PREFIX}{run.name}/"
            )
        served, replaced = hyperpod.deploy(
            candidate["model"],
            record_uri=self._out(run, "deploy") + "previous.json",
            timeout_s=deploy.ready_timeout_minutes * 60,
        )
        self.ssm.put_parameter(
            Name=self.bu.naming.parameter(f"pipeline/{deploy.endpoint}/model"),
            Value=served,
            Type="String",
            Overwrite=True,
        )
        return {
            "endpoint": hyperpod.target.name,
            "namespace": hyperpod.target.namespace,
            "model": served,
            "replaced": replaced,
        }

    def deploy(self, run: Run, candidate: Candidate) -> Deployed:
        hyperpod = self._hyperpod_endpoint(run)
        if hyperpod is not None:
            return self._deploy_hyperpod(run, candidate, hyperpod)
        deploy = run.pipeline.deploy
        endpoint = self._endpoint_name(run)
        config, model, served = self._served_model(endpoint)
        alarms = self._alarms(endpoint)
        if not alarms:
            raise StepFailedError(
                f"{endpoint}: no CloudWatch alarm watches it, so nothing could roll a bad model "
                "back; deploy the endpoints stack first"
            )
        new_name = f"{endpoint}-{run.name}"[:63]
        container = dict(model["PrimaryContainer"])
        container.pop("ModelDataUrl", None)
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": candidate["model"],
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        }
        tags = [{"Key": "bu", "Value": self.bu.name}, {"Key": "run", "Value": run.name}]
        model_request: dict[str, Any] = {
            "ModelName": new_name,
            "ExecutionRoleArn": model["ExecutionRoleArn"],
            "PrimaryContainer": container,
            "Tags": tags,
        }
        for key in ("VpcConfig", "EnableNetworkIsolation"):
            if key in model:
                model_request[key] = model[key]
        self.sagemaker.create_model(**model_request)
        variants = [{**v, "ModelName": new_name} for v in config["ProductionVariants"]]
        config_request: dict[str, Any] = {
            "EndpointConfigName": new_name,
            "ProductionVariants": variants,
            "Tags": tags,
        }
        for key in ("DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig"):
            if key in config:
                config_request[key] = config[key]
        self.sagemaker.create_endpoint_config(**config_request)
        self.sagemaker.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=new_name,
            RetainAllVariantProperties=True,  # keep the autoscaled instance counts
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deploy.canary_percent},
                        "WaitIntervalInSeconds": deploy.canary_wait_minutes * 60,
                    },
                    "TerminationWaitInSeconds": deploy.termination_wait_minutes * 60,
                    "MaximumExecutionTimeoutInSeconds": deploy.maximum_execution_timeout_minutes
                    * 60,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]},
            },
        )
        while True:
            state = self.sagemaker.describe_endpoint(EndpointName=endpoint)
            status = state["EndpointStatus"]
            if status == "InService":
                break
            if status == "Failed":
                raise StepFailedError(f"{endpoint} failed: {state.get('FailureReason')}")
            self.sleep(POLL_S)
        if state["EndpointConfigName"] != new_name:
            raise StepFailedError(
                f"{endpoint} rolled back to {state['EndpointConfigName']} (an alarm fired during "
                f"the canary: {state.get('FailureReason') or 'see the endpoint events'}); it "
                f"still serves {served}"
            )
        self.ssm.put_parameter(
            Name=self.bu.naming.parameter(f"pipeline/{deploy.endpoint}/model"),
            Value=candidate["model"],
            Type="String",
            Overwrite=True,
        )
        return {"endpoint": endpoint, "model": candidate["model"], "replaced": served}
