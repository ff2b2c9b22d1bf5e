"""The pipeline's MLflow side: one MLflow run per DAG run (the gate's numbers and reason), a model
version per promoted candidate, and the ``champion`` alias on the version the endpoint serves.

MLflow has no Airflow operator; the client runs in the task. On MWAA the tracking URI is the
BU's tracking-server ARN (the `sagemaker-mlflow` plugin signs the requests); locally, a real
`mlflow server`. With `mlflow.automatic_model_registration` on, SageMaker copies each MLflow
model version into the Model Registry itself (SageMaker developer guide, "Automatically
register SageMaker AI models with SageMaker Model Registry").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pipelines.gate import Decision
from pipelines.lifecycle import Candidate, Evaluation, Prepared, Run

CHAMPION_ALIAS = "champion"
BUILD_INFO = Path(__file__).with_name("BUILD_INFO.json")  # written by `make mwaa-bundle`


def model_name(run: Run) -> str:
    """`<bu>--<endpoint>`: the BU's MLflow service role may register only `<bu>--*` groups."""
    return f"{run.bu.name}--{run.pipeline.deploy.endpoint}"


def git_sha() -> str:
    if BUILD_INFO.is_file():
        return str(json.loads(BUILD_INFO.read_text(encoding="utf-8")).get("git_sha", "unknown"))
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"))


def pipeline_run_id(run: Run) -> str:
    """The MLflow run of this DAG run, found by tag on a retry, created once otherwise."""
    client = _client()
    experiment = f"{run.bu.name}-pipeline"
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.pipeline_run = '{run.name}'", max_results=1
    )
    if existing:
        return str(existing[0].info.run_id)
    created = client.create_run(
        experiment_id, run_name=run.name, tags={"pipeline_run": run.name, "bu": run.bu.name}
    )
    return str(created.info.run_id)


def _numbers(prefix: str, metrics: dict[str, Any] | None) -> dict[str, float]:
    return {
        f"{prefix}.{k}": float(v)
        for k, v in (metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def log_gate(run: Run, prepared: Prepared, evaluation: Evaluation, decision: Decision) -> str:
    client = _client()
    run_id = pipeline_run_id(run)
    for key, value in {
        **_numbers("candidate", evaluation["candidate"]),
        **_numbers("champion", evaluation.get("champion")),
        "data.quarantined": float(prepared["quarantined"]),
        "data.records_read": float(prepared["records_read"]),
    }.items():
        client.log_metric(run_id, key, value)
    tags = {
        "gate.deploy": str(decision.deploy).lower(),
        "gate.reason": decision.reason,
        "data.digest": prepared["dataset_digest"],
        "champion.model": evaluation.get("champion_model") or "none",
    }
    for key, text in tags.items():
        client.set_tag(run_id, key, text)
    return run_id


def register(
    run: Run, candidate: Candidate, prepared: Prepared, evaluation: Evaluation, image: str
) -> dict[str, Any]:
    """A model version whose tags say what it was trained on, with what, and how it scored."""
    from mlflow.exceptions import MlflowException

    client = _client()
    name = model_name(run)
    try:
        client.create_registered_model(name, tags={"bu": run.bu.name})
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {
        "data_digest": prepared["dataset_digest"],
        "image": image,
        "git_sha": git_sha(),
        "pipeline_run": run.name,
        **{k: f"{v:.6g}" for k, v in _numbers("metric", evaluation["candidate"]).items()},
    }
    run_id = pipeline_run_id(run)
    source = candidate["model"]
    if "://" not in source:
        # A local model folder (the local profile): the tracking server registers only what
        # lives in a run's artifacts, so the folder is logged to the pipeline run first.
        client.log_artifacts(run_id, source, artifact_path="model")
        source = f"runs:/{run_id}/model"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return {"name": name, "version": str(version.version)}


def promote(registered: dict[str, Any]) -> None:
    """The version the endpoint now serves becomes the registry's champion."""
    _client().set_registered_model_alias(registered["name"], CHAMPION_ALIAS, registered["version"])
