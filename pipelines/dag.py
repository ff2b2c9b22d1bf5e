"""The model lifecycle of each BU as one Airflow DAG: prepare, train, export, evaluate, gate,
register, deploy, promote. One DAG per BU config with a ``pipeline`` section in the DAG folder's
``config/`` (on MWAA, `make mwaa-bundle` ships only that BU's file).

The tasks are thin: each calls its profile's backend (`pipelines.aws` on MWAA,
`pipelines.local` when ``PIPELINE_PROFILE=local``) and passes small JSON objects on as XComs.
A step that cannot go on raises `StepFailedError`, which fails the task at once with its reason
(no retry of a bad dataset); anything else (a throttled API, a lost connection) is retried. The
gate is a short-circuit: a candidate that does not clear it skips register, deploy and promote,
so nothing is deployed and the served model stays as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from airflow.exceptions import AirflowFailException
from airflow.sdk import DAG, Param, dag, get_current_context, task

from config.schema import BusinessUnitConfig
from pipelines import gate as gating
from pipelines import registry
from pipelines.lifecycle import Backend, Run, StepFailedError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Training is polled, not awaited: an EKS token lasts about 14 minutes, so each poke builds a
# fresh client, and a reschedule-mode sensor frees its worker slot between pokes.
TRAINING_POKE_S = 120
TRAINING_TIMEOUT = timedelta(days=3)


def backend_for(bu: BusinessUnitConfig) -> Backend:
    """The profile's backend, chosen when a task runs (never at DAG parse time)."""
    if os.environ.get("PIPELINE_PROFILE", "aws") == "local":
        from pipelines.local import LocalBackend

        ml_python = os.environ.get("PIPELINE_ML_PYTHON")
        return LocalBackend(
            Path(os.environ["PIPELINE_LOCAL_ROOT"]),
            ml_python=Path(ml_python) if ml_python else None,
        )
    from pipelines.aws import AwsBackend

    return AwsBackend(bu)


def _step(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except StepFailedError as err:
        log.error("%s failed: %s", what, err)
        raise AirflowFailException(f"{what}: {err}") from err


def build_dag(bu: BusinessUnitConfig) -> DAG:
    pipeline = bu.pipeline
    if pipeline is None:
        raise ValueError(f"{bu.name}: no pipeline section")

    def current_run() -> Run:
        context = get_current_context()
        dag_run = context["dag_run"]
        return Run(bu=bu, airflow_run_id=str(dag_run.run_id))

    @dag(
        dag_id=f"{bu.name}_model_lifecycle",
        description=f"{bu.name}: prepare, train, evaluate, gate, register, deploy",
        schedule=pipeline.schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # one candidate at a time per endpoint
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
        params={
            # Extra `training.train --set KEY=VALUE` for this run (a hotfix, a shorter run).
            "train_overrides": Param([], type="array", items={"type": "string"}),
        },
        tags=[bu.name, "mlops"],
    )
    def lifecycle() -> None:
        @task(multiple_outputs=False)
        def prepare() -> dict[str, Any]:
            run = current_run()
            prepared = _step("prepare", lambda: backend_for(bu).prepare(run))
            log.info(
                "prepared %s: %s records, %s quarantined, digest %s",
                prepared["dataset"], prepared["records_read"], prepared["quarantined"],
                prepared["dataset_digest"],
            )  # fmt: skip
            if prepared["records_read"] == prepared["quarantined"]:
                raise AirflowFailException("prepare: every record was quarantined")
            return prepared

        @task(multiple_outputs=False)
        def train(prepared: dict[str, Any]) -> dict[str, Any]:
            overrides = list(get_current_context()["params"]["train_overrides"])
            return _step(
                "train",
                lambda: backend_for(bu).submit_training(current_run(), prepared, overrides),
            )

        @task.sensor(poke_interval=TRAINING_POKE_S, timeout=TRAINING_TIMEOUT, mode="reschedule")
        def training_finished(handle: dict[str, Any]) -> bool:
            return _step("training", lambda: backend_for(bu).training_finished(handle))

        @task(multiple_outputs=False)
        def export(handle: dict[str, Any]) -> dict[str, Any]:
            return _step("export", lambda: backend_for(bu).export(current_run(), handle))

        @task(multiple_outputs=False)
        def evaluate(candidate: dict[str, Any], prepared: dict[str, Any]) -> dict[str, Any]:
            run = current_run()
            backend = backend_for(bu)
            champion = _step("evaluate", lambda: backend.champion(run))
            log.info("champion: %s", champion or "none (nothing served yet)")
            return _step("evaluate", lambda: backend.evaluate(run, candidate, champion, prepared))

        @task.short_circuit
        def gate(evaluation: dict[str, Any], prepared: dict[str, Any]) -> bool:
            run = current_run()
            try:
                decision = gating.decide(
                    pipeline.gate, evaluation["candidate"], evaluation.get("champion")
                )
            except gating.EvaluationUnreadableError as err:
                raise AirflowFailException(f"gate: {err}") from err
            run_id = registry.log_gate(run, prepared, evaluation, decision)
            log.info(
                "gate: %s: %s (MLflow run %s)",
                "DEPLOY" if decision.deploy else "STOP", decision.reason, run_id,
            )  # fmt: skip
            return decision.deploy

        @task(multiple_outputs=False)
        def register(
            candidate: dict[str, Any], prepared: dict[str, Any], evaluation: dict[str, Any]
        ) -> dict[str, Any]:
            # The cloud backends record the training image's digest on the candidate.
            image = candidate.get("image", "local")
            return registry.register(current_run(), candidate, prepared, evaluation, image)

        @task(multiple_outputs=False)
        def deploy(candidate: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
            deployed = _step("deploy", lambda: backend_for(bu).deploy(current_run(), candidate))
            log.info("deployed %s (version %s)", deployed, registered["version"])
            return deployed

        @task(multiple_outputs=False)
        def promote(registered: dict[str, Any], deployed: dict[str, Any]) -> None:
            registry.promote(registered)

        prepared = prepare()
        handle = train(prepared)
        finished = training_finished(handle)
        candidate = export(handle)
        finished >> candidate
        evaluation = evaluate(candidate, prepared)
        passed = gate(evaluation, prepared)
        registered = register(candidate, prepared, evaluation)
        passed >> registered
        promote(registered, deploy(candidate, registered))

    return lifecycle()


def dags_from(config_dir: Path) -> dict[str, DAG]:
    """One DAG per BU config with a pipeline section; an invalid file fails the DAG file's
    import with the loader's `file: field: reason` lines, as `make synth` would."""
    from config.loader import config_files, load_valid

    return {
        f"{bu.name}_model_lifecycle": build_dag(bu)
        for bu in load_valid(config_files(config_dir))
        if bu.pipeline is not None
    }
