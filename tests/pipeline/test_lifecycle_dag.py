"""The real DAG, run twice with Airflow's `dag.test()` through the local profile: a tiny Qwen3 is
prepared, trained, exported, evaluated, gated, registered in a real MLflow server's registry and
deployed behind a local `transformers serve`; a deliberately worse second candidate stops at the
gate and the served model stays. Bad input fails one task with its reason and deploys nothing.

fraud's own pipeline section is used, with only what a CPU needs changed: the tiny model and
the quickstart recipe, 40 held-out cases, and a comparison on full-call accuracy (the tiny model
learns tool names in 200 steps, argument values only partly).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import CONFIG_DIR, load_file
from config.schema import BusinessUnitConfig
from inference.client import EndpointClient, Sampling
from inference.local_runtime import LocalRuntime
from inference.smoke import MESSAGES, WEATHER_TOOL
from pipelines import local
from pipelines.dag import build_dag

REPO = Path(__file__).resolve().parents[2]
ALL_TASKS = (
    "prepare", "train", "training_finished", "export", "evaluate",
    "gate", "register", "deploy", "promote",
)  # fmt: skip


def _bu(**gate: Any) -> BusinessUnitConfig:
    fraud, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert fraud is not None
    assert fraud.pipeline is not None
    section = fraud.pipeline
    pipeline = section.model_copy(
        update={
            "train": section.train.model_copy(
                update={"config": "quickstart-cpu.yaml", "base_model": "base/tiny/"}
            ),
            "gate": section.gate.model_copy(
                update={
                    "max_cases": 40,
                    "floors": {"parse_validity": 0.5},
                    "compare_on": "full_call_accuracy",
                    "min_improvement": 0.0,
                    **gate,
                }
            ),
        }
    )
    return fraud.model_copy(update={"pipeline": pipeline})


@pytest.fixture(scope="module")
def root(ml_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local stand-in for fraud's buckets: a tiny Qwen3 and 800 synthetic conversations."""
    base = tmp_path_factory.mktemp("pipeline-root")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in (
        ["training.tiny", "--output", str(base / "models/base/tiny")],
        [
            "training.synthetic", "--output", str(base / "data/raw/tool-calls/conversations.jsonl"),
            "--n", "800", "--tools", "get_weather", "get_time", "--max-tools", "2",
            "--mean-tokens", "0",
        ],
    ):  # fmt: skip
        subprocess.run([str(ml_python), "-m", *argv], cwd=REPO, env=env, check=True)
    yield base
    for state in (base / "endpoints").glob("*.json"):
        local.stop(int(json.loads(state.read_text())["pid"]))


@pytest.fixture
def profile(
    root: Path, ml_python: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("PIPELINE_PROFILE", "local")
    monkeypatch.setenv("PIPELINE_LOCAL_ROOT", str(root))
    monkeypatch.setenv("PIPELINE_ML_PYTHON", str(ml_python))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return root


def _run(bu: BusinessUnitConfig, *overrides: str) -> dict[str, str]:
    run = build_dag(bu).test(run_conf={"train_overrides": list(overrides)})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _served(root: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((root / "endpoints/qwen3-tools.json").read_text())
    return state


def _mlflow() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def test_run_one_deploys_and_run_two_stops_at_the_gate(profile: Path) -> None:
    bu = _bu()
    first = _run(bu, "max_steps=200", "checkpoint.every_n_steps=200")
    assert first == dict.fromkeys(ALL_TASKS, "success")
    served = _served(profile)
    assert Path(served["model"]).parent.parent == profile / "runs"

    # The endpoint answers a tool-calling request through the endpoint client.
    client = EndpointClient(
        "fraud-qwen3-tools", runtime_client=LocalRuntime(served["url"], model=served["model"])
    )
    answer = client.chat(
        MESSAGES, tools=[WEATHER_TOOL], sampling=Sampling(temperature=0.0, max_tokens=64)
    )
    assert [c.name for c in answer.tool_calls] == ["get_weather"]

    # The registry holds version 1 as the champion, tagged with what it came from.
    mlflow = _mlflow()
    version = mlflow.get_model_version_by_alias("fraud--qwen3-tools", "champion")
    assert version.version == "1"
    assert version.tags["pipeline_run"] == served["run"]
    assert {"data_digest", "git_sha", "image", "metric.full_call_accuracy"} <= set(version.tags)

    # A worse candidate (20 steps) is trained and evaluated beside the champion, then stopped.
    second = _run(bu, "max_steps=20", "checkpoint.every_n_steps=20", "optim.warmup_steps=5")
    assert second == {
        **dict.fromkeys(ALL_TASKS[:6], "success"),
        **dict.fromkeys(("register", "deploy", "promote"), "skipped"),
    }
    assert _served(profile) == served  # same model, same server process
    os.kill(int(served["pid"]), 0)
    assert [v.version for v in mlflow.search_model_versions("name='fraud--qwen3-tools'")] == ["1"]
    experiment = mlflow.get_experiment_by_name("fraud-pipeline")
    runs = mlflow.search_runs(
        [experiment.experiment_id], filter_string="tags.`gate.deploy` = 'false'"
    )
    assert len(runs) == 1
    assert (
        runs[0]
        .data.tags["gate.reason"]
        .startswith("does not beat the champion on full_call_accuracy")
    )
    assert runs[0].data.metrics["champion.full_call_accuracy"] > 0


def test_a_missing_dataset_fails_prepare_and_nothing_runs_after_it(
    profile: Path,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINE_LOCAL_ROOT", str(tmp_path))
    states = _run(_bu())
    assert states["prepare"] == "failed"
    assert {states[t] for t in ALL_TASKS[1:]} == {"upstream_failed"}
    assert "prepare: no dataset at" in capfd.readouterr().out


def test_a_training_config_error_fails_train_in_one_line_and_deploys_nothing(
    profile: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = _served(profile) if (profile / "endpoints/qwen3-tools.json").is_file() else None
    states = _run(_bu(), "max_steps=2")  # the recipe warms up for 20 steps
    assert states["prepare"] == "success"
    assert states["train"] == "failed"
    assert {states[t] for t in ALL_TASKS[2:]} == {"upstream_failed"}
    assert "warm-up steps exceed max_steps (2)" in capfd.readouterr().out
    after = _served(profile) if (profile / "endpoints/qwen3-tools.json").is_file() else None
    assert after == before
