"""The pipeline's HyperPod training branch: the run's HyperPodPyTorchJob built on the path
`training.job submit` takes, sent through the real `kubernetes` client to the fake API server
with a token made from AWS credentials (no kubeconfig, as on MWAA), submitted once per run, and
polled to completion or to its failure's reason."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from harness.fake_kube import FakeCluster, fake_kube_server

from config import parameters as p
from config.loader import CONFIG_DIR, load_file
from pipelines.aws import AwsBackend
from pipelines.eks import TOKEN_PREFIX, bearer_token
from pipelines.lifecycle import Run, StepFailedError
from training.job.platform import BuPlatform, hyperpod_names

TEAM, REGION, EKS = "research", "us-east-1", "fraud-eks"
DIGEST = "sha256:" + "cd" * 32
PUBLISHED = {
    p.EKS_CLUSTER_NAME: EKS,
    p.HYPERPOD_CLUSTER_NAME: "fraud-hyperpod",
    p.TRAINING_IMAGE_URI: "111111111111.dkr.ecr.us-east-1.amazonaws.com/fraud/training",
    p.MLFLOW_TRACKING_ARN: "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/f",
    p.team_parameter(p.TEAM_NAMESPACE, TEAM): "hyperpod-ns-research",
    p.team_parameter(p.TEAM_QUEUE, TEAM): "hyperpod-ns-research-localqueue",
    p.team_parameter(p.TEAM_SERVICE_ACCOUNT, TEAM): "research-trainer",
    p.team_parameter(p.TEAM_FSX_CLAIM, TEAM): "research-fsx",
    p.DATA_BUCKET: "fraud-data-111111111111-us-east-1",
    p.MODELS_BUCKET: "fraud-models-111111111111-us-east-1",
    p.CHECKPOINTS_BUCKET: "fraud-checkpoints-111111111111-us-east-1",
}


def _client(service: str) -> Any:
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )


def _parameters(stubber: Stubber, names: list[str]) -> None:
    found = [{"Name": f"/fraud/{n}", "Type": "String", "Value": PUBLISHED[n]} for n in names]
    stubber.add_response(
        "get_parameters", {"Parameters": found}, {"Names": [f"/fraud/{n}" for n in names]}
    )


@pytest.fixture
def hyperpod() -> Iterator[tuple[AwsBackend, FakeCluster, Stubber, Stubber, Run]]:
    fraud, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert fraud is not None
    assert fraud.pipeline is not None
    train = fraud.pipeline.train.model_copy(
        update={
            "backend": "hyperpod",
            "team": TEAM,
            "instance_type": "ml.p5.48xlarge",
            "base_model": f"{TEAM}/base/Qwen3-4B/",
        }
    )
    bu = fraud.model_copy(update={"pipeline": fraud.pipeline.model_copy(update={"train": train})})
    state = FakeCluster(namespaces={"hyperpod-ns-research"})
    ssm, eks = _client("ssm"), _client("eks")
    with fake_kube_server(state) as url, Stubber(ssm) as s_ssm, Stubber(eks) as s_eks:
        backend = AwsBackend(
            bu, ssm=ssm, eks=eks, sts=_client("sts"), sagemaker=_client("sagemaker"),
            s3=_client("s3"), cloudwatch=_client("cloudwatch"), sleep=lambda s: None,
        )  # fmt: skip
        # The buckets, as the backend reads them first (that read: test_pipeline_aws.py).
        backend._platform = BuPlatform(bu="fraud", region=REGION, team=None, values=PUBLISHED)
        s_eks.url = url  # type: ignore[attr-defined]
        yield backend, state, s_ssm, s_eks, Run(bu=bu, airflow_run_id="scheduled__2026-12-07")


def _cluster_endpoint(s_eks: Stubber) -> None:
    s_eks.add_response(
        "describe_cluster",
        {"cluster": {"name": EKS, "endpoint": s_eks.url,  # type: ignore[attr-defined]
                     "certificateAuthority": {"data": base64.b64encode(b"ca").decode()}}},
        {"name": EKS},
    )  # fmt: skip


def test_the_run_is_one_hyperpod_job_in_the_teams_queue_reading_s3(hyperpod: Any) -> None:
    backend, state, s_ssm, s_eks, run = hyperpod
    _parameters(s_ssm, hyperpod_names(TEAM))
    _cluster_endpoint(s_eks)
    prepared = {
        "dataset": f"s3://{PUBLISHED[p.DATA_BUCKET]}/pipeline/{run.name}/data/",
        "image_digest": DIGEST,
    }
    handle = backend.submit_training(run, prepared, ["optim.lr=1e-4"])
    assert handle["resumed"] is False
    ((namespace, name), job) = next(iter(state.jobs.items()))
    assert (namespace, name) == ("hyperpod-ns-research", run.name)
    assert (
        job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-research-localqueue"
    )
    args = job["spec"]["replicaSpecs"][0]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--config", "/app/training/configs/qwen3-4b-lora.yaml"]
    container = job["spec"]["replicaSpecs"][0]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{PUBLISHED[p.TRAINING_IMAGE_URI]}@{DIGEST}"
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets == [
        f"data.path={prepared['dataset']}",
        f"model.name_or_path=s3://{PUBLISHED[p.MODELS_BUCKET]}/{TEAM}/base/Qwen3-4B/",
        f"checkpoint.dir=s3://{PUBLISHED[p.CHECKPOINTS_BUCKET]}/{TEAM}/pipeline/{run.name}/"
        "checkpoints/",
        "optim.lr=1e-4",
    ]
    assert handle["checkpoints"] == sets[2].removeprefix("checkpoint.dir=")

    # A retry of the task finds the job and leaves it to the operator: no second job.
    _parameters(s_ssm, hyperpod_names(TEAM))
    _cluster_endpoint(s_eks)
    assert backend.submit_training(run, prepared, [])["resumed"] is True
    assert [m for m, path, _ in state.requests if m == "POST"] == ["POST"]


def _status(state: FakeCluster, run: Run, *conditions: dict[str, str]) -> None:
    state.jobs[("hyperpod-ns-research", run.name)]["status"] = {"conditions": list(conditions)}


def test_the_sensor_waits_for_complete_and_fails_with_the_operators_reason(hyperpod: Any) -> None:
    backend, state, s_ssm, s_eks, run = hyperpod
    _parameters(s_ssm, hyperpod_names(TEAM))
    _cluster_endpoint(s_eks)
    handle = backend.submit_training(run, {"dataset": "s3://d/p/", "image_digest": DIGEST}, [])
    _status(
        state, run, {"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}
    )
    _cluster_endpoint(s_eks)  # every poke: a fresh client and token
    assert backend.training_finished(handle) is False
    _status(
        state, run, {"type": "Running", "status": "False"}, {"type": "Complete", "status": "True"}
    )
    _cluster_endpoint(s_eks)
    assert backend.training_finished(handle) is True
    _status(state, run, {"type": "Failed", "status": "True", "message": "max retries (3) reached"})
    _cluster_endpoint(s_eks)
    with pytest.raises(StepFailedError, match=f"research/{run.name} failed: max retries"):
        backend.training_finished(handle)


def test_an_unknown_instance_type_fails_before_any_job(hyperpod: Any) -> None:
    """The BU's GPU groups decide where a job can run (training.job's placement check)."""
    backend, state, _, _, run = hyperpod
    train = run.pipeline.train.model_copy(update={"instance_type": "ml.g5.2xlarge"})
    pipeline = run.pipeline.model_copy(update={"train": train})
    run = Run(bu=run.bu.model_copy(update={"pipeline": pipeline}), airflow_run_id="x")
    with pytest.raises(StepFailedError, match=r"ml\.g5\.2xlarge"):
        backend.submit_training(run, {"dataset": "s3://d/p/", "image_digest": DIGEST}, [])
    assert state.jobs == {}


def test_the_token_is_a_presigned_sts_call_naming_the_cluster() -> None:
    """`aws eks get-token`'s format: k8s-aws-v1. + base64url(presigned GetCallerIdentity URL
    signed with the x-k8s-aws-id header), awscli/customizations/eks/get_token.py."""
    sts = boto3.client(
        "sts", region_name=REGION, endpoint_url=f"https://sts.{REGION}.amazonaws.com",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x",
    )  # fmt: skip
    token = bearer_token(sts, EKS)
    assert token.startswith(TOKEN_PREFIX)
    encoded = token.removeprefix(TOKEN_PREFIX)
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith(f"https://sts.{REGION}.amazonaws.com/")
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Expires"] == ["60"]
