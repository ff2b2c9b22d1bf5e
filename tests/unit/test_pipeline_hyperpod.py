"""The pipeline's HyperPod training branch: the run's HyperPodPyTorchJob built on the path
`training.job submit` takes, sent through the real `kubernetes` client to the fake API server
with a token made from AWS credentials (no kubeconfig, as on MWAA), submitted once per run, and
polled to completion or to its failure's reason."""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.stub import Stubber
from harness.fake_kube import Clock, FakeCluster, fake_kube_server
from harness.pipeline_backend import (
    ClusterLookup,
    fraud_pipeline,
    hyperpod_training,
    offline_backend,
    offline_client,
)

from config.loader import CONFIG_DIR
from core import parameters as p
from pipelines.aws import AwsBackend
from pipelines.eks import TOKEN_PREFIX, bearer_token
from pipelines.lifecycle import Run, StepFailedError
from training.job.platform import hyperpod_names

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


def _parameters(stubber: Stubber, names: list[str]) -> None:
    found = [{"Name": f"/fraud/{n}", "Type": "String", "Value": PUBLISHED[n]} for n in names]
    stubber.add_response(
        "get_parameters", {"Parameters": found}, {"Names": [f"/fraud/{n}" for n in names]}
    )


@pytest.fixture
def hyperpod() -> Iterator[tuple[AwsBackend, FakeCluster, Stubber, Stubber, Run]]:
    bu = fraud_pipeline(train=hyperpod_training(TEAM))
    state = FakeCluster(namespaces={"hyperpod-ns-research"})
    ssm, eks = offline_client("ssm", REGION), offline_client("eks", REGION)
    with fake_kube_server(state) as url, Stubber(ssm) as s_ssm, Stubber(eks) as s_eks:
        backend = offline_backend(bu, PUBLISHED, ssm=ssm, eks=eks)
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


# --- deploy to an endpoint served on HyperPod ---------------------------------------------------

NAMESPACE, ENDPOINT = "hyperpod-ns-research", "fraud-qwen3-tools-hp"
SERVED = f"s3://{PUBLISHED[p.MODELS_BUCKET]}/qwen3-4b-tools/v1/"


class Operator:
    """What the HyperPod inference operator writes to the object's status (the fields
    `inference.hyperpod.rollout` reads), driven by the test between the deploy's polls."""

    def __init__(self, state: FakeCluster) -> None:
        self.state = state

    @property
    def obj(self) -> dict[str, Any]:
        return self.state.endpoint_configs[(NAMESPACE, ENDPOINT)]

    def report(self, state: str, *, updated: int = 1, total: int = 1, message: str = "") -> None:
        """``state`` for the spec's current generation, its Deployment at ``updated`` of
        ``total`` pods on the new spec (all of them available)."""
        self.obj["status"] = {
            "observedGeneration": self.obj["metadata"]["generation"],
            "state": state,
            "deploymentStatus": {
                "name": ENDPOINT,
                "lastUpdated": "2026-12-07T03:00:00Z",
                "message": message,
                "status": {"replicas": total, "updatedReplicas": updated,
                           "availableReplicas": updated},
            },
        }  # fmt: skip


@pytest.fixture
def served_on_hyperpod() -> Iterator[tuple[AwsBackend, Operator, Clock, Run, Any]]:
    """fraud deploying to qwen3-tools-hp, whose InferenceEndpointConfig (as
    `python -m inference.hyperpod apply` made it) serves qwen3-4b-tools/v1/ and is ready; S3
    (the run's record) and SSM (the served-model parameter) in moto."""
    from config.hyperpod_endpoints import hyperpod_endpoint
    from inference.hyperpod import build_endpoint_config

    bu = fraud_pipeline(
        deploy={"endpoint": "qwen3-tools-hp", "namespace": NAMESPACE, "ready_timeout_minutes": 10}
    )
    live = build_endpoint_config(
        hyperpod_endpoint(CONFIG_DIR / "fraud.yaml", "qwen3-tools-hp", NAMESPACE)
    )
    live["metadata"] |= {"generation": 1, "resourceVersion": "7"}
    state = FakeCluster(namespaces={NAMESPACE}, endpoint_configs={(NAMESPACE, ENDPOINT): live})
    operator, clock = Operator(state), Clock()
    operator.report("DeploymentComplete")
    with fake_kube_server(state) as url, moto.mock_aws():
        s3, ssm = offline_client("s3", REGION), offline_client("ssm", REGION)
        s3.create_bucket(Bucket=PUBLISHED[p.DATA_BUCKET])
        backend = offline_backend(
            bu, PUBLISHED, clock=clock, ssm=ssm, s3=s3, eks=ClusterLookup(url, EKS)
        )
        yield backend, operator, clock, Run(bu=bu, airflow_run_id="scheduled__2026-12-07"), ssm


def _candidate(run: Run) -> dict[str, Any]:
    return {"model": f"s3://{PUBLISHED[p.MODELS_BUCKET]}/pipeline/{run.name}/model/"}


def _puts(operator: Operator) -> list[dict[str, Any]]:
    return [body for method, _, body in operator.state.requests if method == "PUT"]


def _record(backend: AwsBackend, run: Run) -> dict[str, Any]:
    key = f"pipeline/{run.name}/deploy/previous.json"
    body = backend.s3.get_object(Bucket=PUBLISHED[p.DATA_BUCKET], Key=key)["Body"].read()
    return dict(json.loads(body))


def test_deploy_re_applies_the_object_with_the_candidates_location_and_waits_for_ready(
    served_on_hyperpod: Any,
) -> None:
    backend, operator, clock, run, ssm = served_on_hyperpod
    before = copy.deepcopy(operator.obj)
    clock.on_sleep = lambda: operator.report("DeploymentComplete")  # the operator catches up
    deployed = backend.deploy(run, _candidate(run))

    ((_, path, body),) = [r for r in operator.state.requests if r[0] == "PUT"]
    assert path == (
        f"/apis/inference.sagemaker.aws.amazon.com/v1/namespaces/{NAMESPACE}/"
        f"inferenceendpointconfigs/{ENDPOINT}"
    )
    source = body["spec"]["modelSourceConfig"]
    assert source["modelLocation"] == f"pipeline/{run.name}/model"
    assert source["s3Storage"] == before["spec"]["modelSourceConfig"]["s3Storage"]
    # Only the model location changed: the image, the LMI options, the MIG slice stay.
    expected = copy.deepcopy(before["spec"])
    expected["modelSourceConfig"]["modelLocation"] = f"pipeline/{run.name}/model"
    assert body["spec"] == expected
    assert body["metadata"]["resourceVersion"] == "7"  # a concurrent change would be refused
    assert deployed == {
        "endpoint": ENDPOINT,
        "namespace": NAMESPACE,
        "model": _candidate(run)["model"],
        "replaced": SERVED,
    }
    stored = ssm.get_parameter(Name="/fraud/pipeline/qwen3-tools-hp/model")["Parameter"]
    assert stored["Value"] == _candidate(run)["model"]
    # What it replaced was recorded before the write.
    assert _record(backend, run)["previous_spec"] == before["spec"]


def test_the_previous_generations_complete_state_is_not_the_new_specs(
    served_on_hyperpod: Any,
) -> None:
    """Right after the PUT the status still says ``DeploymentComplete`` for generation 1: the
    deploy waits until the operator has reconciled generation 2 and every pod runs it.

    The status fields relied on, all from the operator's published CRD as vendored in
    ``inference/hyperpod/crds/inferenceendpointconfig-v1.schema.json`` (``properties.status``):
    ``observedGeneration`` ("Latest generation reconciled by controller", compared with the
    object's ``metadata.generation``), ``state`` (enum ``DeploymentPending``,
    ``DeploymentInProgress``, ``DeploymentFailed``, ``DeploymentComplete``, ``Deletion*``),
    ``deploymentStatus.status.{replicas, updatedReplicas, availableReplicas}`` (the hosting
    Deployment's status) and ``deploymentStatus.message`` for the reason."""
    backend, operator, clock, run, _ = served_on_hyperpod
    reports = iter(
        [
            lambda: operator.report("DeploymentInProgress", updated=0),
            lambda: operator.report("DeploymentComplete", updated=1, total=2),  # old pod left
            lambda: operator.report("DeploymentComplete"),
        ]
    )
    seen: list[str] = []

    def next_report() -> None:
        seen.append(operator.obj["status"]["state"])
        next(reports)()

    clock.on_sleep = next_report
    backend.deploy(run, _candidate(run))
    assert seen == ["DeploymentComplete", "DeploymentInProgress", "DeploymentComplete"]


def test_a_retry_finds_its_spec_applied_and_does_not_apply_it_again(
    served_on_hyperpod: Any,
) -> None:
    backend, operator, clock, run, _ = served_on_hyperpod

    def worker_lost() -> None:
        raise ConnectionError("worker lost")

    clock.on_sleep = worker_lost
    with pytest.raises(ConnectionError):
        backend.deploy(
            run, _candidate(run)
        )  # Airflow retries a task on anything but a StepFailedError
    clock.on_sleep = lambda: operator.report("DeploymentComplete")
    deployed = backend.deploy(run, _candidate(run))
    assert len(_puts(operator)) == 1
    assert deployed["replaced"] == SERVED  # from the first try's record


# (the operator's state and message while the deploy polls, what the failure names)
NOT_SERVING = [
    (
        "DeploymentInProgress",
        "Pending",
        "not ready within 10 minutes (DeploymentInProgress: Pending)",
    ),
    ("DeploymentFailed", "OOMKilled", "refused by the operator: DeploymentFailed: OOMKilled"),
]


@pytest.mark.parametrize(
    ("state", "why", "reason"), NOT_SERVING, ids=["not ready in time", "a failed rollout"]
)
def test_a_rollout_that_does_not_serve_re_applies_the_previous_spec_and_names_what_serves(
    served_on_hyperpod: Any, state: str, why: str, reason: str
) -> None:
    """Not ready within the timeout, or refused by the operator: the previous spec is applied
    again, and the failure names what serves."""
    backend, operator, clock, run, ssm = served_on_hyperpod
    before = copy.deepcopy(operator.obj["spec"])
    clock.on_sleep = lambda: operator.report(state, updated=0, message=why)
    with pytest.raises(StepFailedError) as failed:
        backend.deploy(run, _candidate(run))
    message = str(failed.value)
    assert reason in message
    assert message.endswith(f"re-applied the previous spec: it serves {SERVED}")
    assert operator.obj["spec"] == before
    assert len(_puts(operator)) == 2
    assert _record(backend, run)["rolled_back"] is True
    assert not ssm.describe_parameters()["Parameters"]  # the served-model parameter unchanged


def test_the_champion_is_the_model_location_the_object_names(served_on_hyperpod: Any) -> None:
    backend, operator, _, run, _ = served_on_hyperpod
    assert backend.champion(run) == SERVED
    del operator.state.endpoint_configs[(NAMESPACE, ENDPOINT)]
    assert backend.champion(run) is None  # not applied yet: nothing to compare with


def test_no_object_fails_before_anything_is_written(served_on_hyperpod: Any) -> None:
    backend, operator, _, run, _ = served_on_hyperpod
    del operator.state.endpoint_configs[(NAMESPACE, ENDPOINT)]
    with pytest.raises(
        StepFailedError, match=r"inference\.hyperpod apply --config config/fraud\.yaml"
    ):
        backend.deploy(run, _candidate(run))
    assert _puts(operator) == []
    listed = backend.s3.list_objects_v2(Bucket=PUBLISHED[p.DATA_BUCKET])
    assert "Contents" not in listed


def test_the_dag_bundle_carries_the_endpoint_code_and_the_crd_schema() -> None:
    """The deploy imports `inference.hyperpod` (lazily) and validates against the vendored CRD:
    both must be in the MWAA DAG folder."""
    from scripts import mwaa_bundle

    closure = mwaa_bundle.import_closure(mwaa_bundle.DAG_FILE)
    assert {"pipelines.hyperpod_endpoint", "inference.hyperpod"} <= closure.modules.keys()
    assert any(f.name == "inferenceendpointconfig-v1.schema.json" for f in closure.data_files)
