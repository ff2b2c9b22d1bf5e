"""What every step of the lifecycle needs, whichever profile runs it: the run's names, the
backend interface the DAG calls, and the one error a step raises for a clear task failure.

Two backends implement :class:`Backend`: `pipelines.aws` (SageMaker Processing and Training
jobs, the HyperPod job API, SageMaker endpoint updates with deployment guardrails or the
HyperPod inference operator's object re-applied, `pipelines.hyperpod_endpoint`) and
`pipelines.local` (the same commands as subprocesses in the training environment and a local
`transformers serve` as the endpoint), so the DAG's shape, its XComs and its gate are the same
offline and on MWAA.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from config.pipeline import Pipeline
from config.schema import BusinessUnitConfig

# Training configs as the image ships them (training/Dockerfile copies training/).
TRAINING_CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
# XCom values are small JSON objects; these are their shapes, by step.
Prepared = dict[str, Any]  # dataset, eval_data, quarantined, records_read, dataset_digest
TrainingHandle = dict[str, Any]  # backend-specific: job name / output dir, resumed
Candidate = dict[str, Any]  # model (a URI the backend can serve), run
Evaluation = dict[str, Any]  # candidate metrics, champion metrics or None, champion model
Deployed = dict[str, Any]  # endpoint, model, what it replaced


class StepFailedError(RuntimeError):
    """A step cannot go on: the message says what failed and where to look (one line)."""


@dataclass(frozen=True)
class Run:
    """One DAG run of one BU: a short, DNS-safe name every job and prefix of the run shares.

    The name is derived from the Airflow run ID alone, so a retried task finds the job, the
    checkpoints and the outputs of its earlier try (resume, not restart)."""

    bu: BusinessUnitConfig
    airflow_run_id: str

    @property
    def name(self) -> str:
        stem = re.sub(r"[^a-z0-9]+", "-", self.airflow_run_id.lower()).strip("-")[:16].strip("-")
        digest = hashlib.sha256(self.airflow_run_id.encode()).hexdigest()[:8]
        return f"pl-{stem}-{digest}"

    @property
    def pipeline(self) -> Pipeline:
        if self.bu.pipeline is None:  # the DAG exists only for BUs with the section
            raise StepFailedError(f"{self.bu.name} has no pipeline section")
        return self.bu.pipeline


class Backend(Protocol):
    def prepare(self, run: Run) -> Prepared: ...

    def submit_training(
        self, run: Run, prepared: Prepared, overrides: list[str]
    ) -> TrainingHandle: ...

    def training_finished(self, handle: TrainingHandle) -> bool:
        """True when done, False while running; raises StepFailedError when the job failed."""
        ...

    def export(self, run: Run, handle: TrainingHandle) -> Candidate: ...

    def champion(self, run: Run) -> str | None:
        """The model the endpoint serves now (a model URI), or None before the first deploy."""
        ...

    def evaluate(
        self, run: Run, candidate: Candidate, champion: str | None, prepared: Prepared
    ) -> Evaluation: ...

    def deploy(self, run: Run, candidate: Candidate) -> Deployed: ...


def pack_length(train_config: str) -> int:
    """The packed length the training config expects: prepare packs to it, or train refuses."""
    from training.config import TrainConfigError, load_config

    try:
        return int(load_config(TRAINING_CONFIGS / train_config, []).data.pack_length)
    except (OSError, TrainConfigError) as err:
        raise StepFailedError(f"training config {train_config}: {err}") from err


def prepare_arguments(pipeline: Pipeline, *, source: str, output: str, tokenizer: str) -> list[str]:
    """``training.prepare``'s arguments, the same in both profiles: packed to the training
    config's length (`pack_length`), a tenth held out for the evaluate step."""
    return [
        "--input", source, "--output", output, "--tokenizer", tokenizer,
        "--max-length", str(pack_length(pipeline.train.config)),
        "--eval-fraction", "0.1", "--quiet",
    ]  # fmt: skip


def prepared_of(stats: dict[str, Any], *, dataset: str, eval_data: str, digest: str) -> Prepared:
    """The prepare step's XCom, one shape in both profiles: where the data is, the counts of
    ``training.prepare``'s stats.json and ``digest``, a short hash of the prepared files."""
    return {
        "dataset": dataset,
        "eval_data": eval_data,
        "records_read": stats["records_read"],
        "quarantined": stats["quarantined"],
        "dataset_digest": digest,
    }


def metrics_of(report: dict[str, Any], side: str, source: str) -> dict[str, Any]:
    """``training.evaluate``'s report: the metrics of ``side`` (tuned or base), or a clear error."""
    try:
        metrics = report["models"][side]["metrics"]
    except (KeyError, TypeError) as err:
        raise StepFailedError(f"{source}: no {side} metrics in the evaluation report") from err
    if not isinstance(metrics, dict):
        raise StepFailedError(f"{source}: the {side} metrics are not an object")
    return metrics


def evaluation_of(
    report: dict[str, Any], champion: str | None, *, report_uri: str, source: str | None = None
) -> Evaluation:
    """The evaluate step's XCom from ``training.evaluate``'s report, one shape in both profiles
    (the gate reads it); ``source`` (default: the report) is where a missing metric's error
    points."""
    source = source or report_uri
    return {
        "candidate": metrics_of(report, "tuned", source),
        "champion": metrics_of(report, "base", source) if champion else None,
        "champion_model": champion,
        "report": report_uri,
    }


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_s3_json(s3: Any, uri: str) -> Any:
    """The JSON document at ``uri``: a body that is not JSON fails the step; S3's own errors
    (a missing key among them) are left to the caller, which alone knows what they mean."""
    bucket, key = split_s3(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return json.loads(body)
    except ValueError as err:
        raise StepFailedError(f"{uri}: not JSON ({err})") from err
