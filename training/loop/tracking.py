"""MLflow tracking on rank 0: params, per-step metrics, system metrics and artifacts.

The tracking URI comes from the config or `MLFLOW_TRACKING_URI`: an `http://` server locally, the
SageMaker tracking server ARN on AWS (which needs the `sagemaker-mlflow` plugin, installed in the
training image). With no URI the tracker does nothing, so tests and laptops need no server.
A resumed run passes the stored run id and keeps logging into the same MLflow run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from training.config import MlflowConfig


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)
    return out


def resolve_uri(config: MlflowConfig) -> str:
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if (
        uri.startswith("arn:aws:sagemaker:")
        and importlib.util.find_spec("sagemaker_mlflow") is None
    ):
        raise RuntimeError(
            "MLFLOW_TRACKING_URI is a SageMaker tracking server ARN, which needs the "
            "`sagemaker-mlflow` plugin (pip install sagemaker-mlflow; the training image "
            "ships it)"
        )
    return uri


class Tracker:
    """A thin MLflow wrapper; every method is a no-op when tracking is off or not rank 0."""

    def __init__(self, config: MlflowConfig, *, enabled: bool) -> None:
        self.config = config
        self.uri = resolve_uri(config) if enabled else ""
        self.run_id: str | None = None
        if enabled and not self.uri:
            print(
                "MLflow tracking is off: no mlflow.tracking_uri in the config and no "
                "MLFLOW_TRACKING_URI in the environment",
                file=sys.stderr,
            )

    @property
    def active(self) -> bool:
        return bool(self.uri)

    def start(self, *, run_id: str | None, params: dict[str, Any]) -> str | None:
        if not self.active:
            return None
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        if run_id is None:
            mlflow.set_experiment(self.config.experiment)
        run = mlflow.start_run(
            run_id=run_id,
            run_name=(self.config.run_name or None) if run_id is None else None,
            log_system_metrics=self.config.log_system_metrics,
        )
        self.run_id = run.info.run_id
        if run_id is None:  # a resumed run already has its params (MLflow forbids changing them)
            mlflow.log_params(flatten(params))
        return self.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics(metrics, step=step)

    def log_text(self, text: str, name: str) -> None:
        if self.active:
            import mlflow

            mlflow.log_text(text, name)

    def log_artifacts(self, path: Path, artifact_path: str) -> None:
        if self.active:
            import mlflow

            mlflow.log_artifacts(str(path), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.active:
            import mlflow

            mlflow.end_run(status=status)


def log_to_run(
    run_id: str,
    *,
    tracking_uri: str = "",
    metrics: dict[str, float] | None = None,
    artifacts: Path | None = None,
    artifact_path: str = "model",
) -> None:
    """Add eval results or an exported model to a finished run (used after export/evaluate)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None)
    for k, v in (metrics or {}).items():
        client.log_metric(run_id, k, v)
    if artifacts is not None:
        client.log_artifacts(run_id, str(artifacts), artifact_path=artifact_path)
