"""Runs land in a real MLflow server: params, per-step metrics, artifacts; resume continues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training import train
from training.config import MlflowConfig
from training.loop.tracking import flatten, log_to_run, resolve_uri


def test_run_is_logged_and_resume_continues_it(
    tiny_config: Any, mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    cfg = {"mlflow__tracking_uri": mlflow_server, "mlflow__experiment": "trainer-test"}
    first = train.main(tiny_config(max_steps=3, **cfg))
    assert first.run_id
    second = train.main(
        tiny_config(max_steps=5, checkpoint__resume_with_changed_settings=True, **cfg)
    )
    assert second.run_id == first.run_id

    client = MlflowClient(mlflow_server)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.003"
    assert run.data.params["model.attn_implementation"] == "auto"
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "loss_token_fraction"):
        history = client.get_metric_history(first.run_id, key)
        assert [m.step for m in history] == [1, 2, 3, 4, 5], key
    losses = [m.value for m in client.get_metric_history(first.run_id, "loss")]
    assert losses == pytest.approx(second.losses)
    assert "config.yaml" in {a.path for a in client.list_artifacts(first.run_id)}

    exported = tmp_path / "export"
    exported.mkdir()
    (exported / "config.json").write_text("{}")
    log_to_run(
        first.run_id, tracking_uri=mlflow_server, metrics={"tool_call_accuracy": 0.5},
        artifacts=exported,
    )  # fmt: skip
    assert client.get_run(first.run_id).data.metrics["tool_call_accuracy"] == 0.5
    assert [a.path for a in client.list_artifacts(first.run_id, "model")] == ["model/config.json"]


def test_sagemaker_arn_needs_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/x"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", arn)
    import importlib.util

    if importlib.util.find_spec("sagemaker_mlflow") is not None:
        assert resolve_uri(MlflowConfig()) == arn
    else:
        with pytest.raises(RuntimeError, match="sagemaker-mlflow"):
            resolve_uri(MlflowConfig())


def test_flatten_nested_config() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": "x"}) == {
        "a.b": "1", "a.c.d": "[1]", "e": "x",
    }  # fmt: skip


def test_tracking_off_is_said_once_on_the_main_rank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.loop.tracking import Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not Tracker(MlflowConfig(), enabled=True).active
    assert "MLflow tracking is off" in capsys.readouterr().err
    Tracker(MlflowConfig(), enabled=False)  # other ranks stay quiet
    assert capsys.readouterr().err == ""
