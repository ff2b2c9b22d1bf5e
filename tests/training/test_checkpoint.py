"""Checkpoints are atomic and pruned, live locally or on S3, and resume a run exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import moto
import pytest
import torch

from training import train
from training.config import dump_config
from training.loop import checkpoint

REPO = Path(__file__).resolve().parents[2]


def _save(root: str, step: int, staging: Path, keep_last: int = 2) -> str:
    return checkpoint.save(
        root,
        step=step,
        weights={"w": torch.full((3,), float(step))},
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": step},
        rng=[checkpoint.rng_state()],
        state={"data": [{"epoch": 0, "cursor": step}]},
        keep_last=keep_last,
        staging=staging,
    )


def test_local_checkpoints_are_atomic_and_pruned(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    (root / ".tmp-step-000009").mkdir(parents=True)  # a save killed mid-write
    (root / "step-000008").mkdir()  # no trainer_state.json: never a candidate
    for step in (1, 2, 3):
        _save(str(root), step, tmp_path / "staging")
    assert sorted(p.name for p in root.iterdir()) == ["step-000002", "step-000003", "step-000008"]
    assert checkpoint.latest(str(root)) == str(root / "step-000003")
    ckpt = checkpoint.load(str(root / "step-000003"), staging=tmp_path / "staging")
    assert ckpt.step == 3
    assert ckpt.weights["w"].tolist() == [3.0, 3.0, 3.0]


class _RunsCode:
    """Pickles as a call to os.mkdir: unpickling it would run code (creating `marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng.pt"])
def test_a_checkpoint_carrying_a_pickled_callable_is_refused_unexecuted(
    tmp_path: Path, name: str
) -> None:
    path = Path(_save(str(tmp_path / "ckpt"), 1, tmp_path / "staging"))
    marker = tmp_path / "code-ran"
    torch.save({"state": {}, "param_groups": [], "payload": _RunsCode(marker)}, path / name)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match=f"{name}: refused"):
        checkpoint.load(str(path), staging=tmp_path / "staging")
    assert not marker.exists(), "loading the checkpoint ran its pickled code"


def test_rng_state_round_trips_through_a_safe_load(tmp_path: Path) -> None:
    import random

    import numpy as np

    path = Path(_save(str(tmp_path / "ckpt"), 1, tmp_path / "staging"))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: S311
    ckpt = checkpoint.load(str(path), staging=tmp_path / "staging")
    checkpoint.set_rng_state(ckpt.rng[0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected  # noqa: S311


def test_s3_checkpoints_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="ckpts")
        root = "s3://ckpts/runs/a"
        assert checkpoint.latest(root) is None
        for step in (1, 2, 3):
            uri = _save(root, step, tmp_path / "staging")
        assert uri == "s3://ckpts/runs/a/step-000003"
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="ckpts")["Contents"]]
        assert {k.split("/")[2] for k in keys} == {"step-000002", "step-000003"}
        assert checkpoint.latest(root) == uri
        ckpt = checkpoint.load(uri, staging=tmp_path / "dl")
        assert ckpt.step == 3
        assert ckpt.weights["w"].tolist() == [3.0, 3.0, 3.0]


def test_resume_refuses_changed_settings_naming_each(
    tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train.main(tiny_config(max_steps=2))
    changed = tmp_path / "changed.yaml"
    changed.write_text(dump_config(tiny_config(max_steps=3)))
    capsys.readouterr()
    assert train.cli(["--config", str(changed)]) == 2  # a one-line refusal, not a traceback
    assert "max_steps: 2 -> 3" in capsys.readouterr().err.split("train: ", 1)[1]
    with pytest.raises(ValueError, match="other settings") as refused:
        train.main(tiny_config(max_steps=4, optim__lr=1e-3, lora__enabled=True))
    message = str(refused.value)
    assert "max_steps: 2 -> 4" in message
    assert "optim.lr: 0.003 -> 0.001" in message
    assert "lora.enabled: False -> True" in message
    assert "checkpoint.resume_with_changed_settings=true" in message


def test_resume_with_changed_settings_allowed_applies_the_new_values(
    tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first = train.main(tiny_config(max_steps=2))
    capsys.readouterr()
    cfg = tiny_config(max_steps=4, optim__lr=1e-3, checkpoint__resume_with_changed_settings=True)
    result = train.main(cfg)
    err = capsys.readouterr().err
    assert f"resuming from {first.checkpoint_path} (step 2 of 4)" in err
    assert "max_steps: 2 -> 4" in err
    assert "optim.lr: 0.003 -> 0.001" in err
    assert result.steps == 4
    rows = {json.loads(x)["step"]: json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl")
            .read_text().splitlines()}  # fmt: skip
    # Step 3 runs at the new peak lr on the new 4-step cosine (warm-up 1): 1e-3 * f(2).
    factor = train.cosine_with_warmup(1, 4, 0.0)
    assert rows[3]["lr"] == pytest.approx(1e-3 * factor(2))


def test_resume_refuses_other_data_but_not_a_moved_copy(
    tiny_config: Any, packed_dir: Path, jsonl_file: Path, tmp_path: Path
) -> None:
    import shutil

    first = train.main(tiny_config(max_steps=2))
    with pytest.raises(ValueError, match="trained on different data") as refused:
        train.main(tiny_config(max_steps=2, data__path=str(jsonl_file)))
    message = str(refused.value)
    assert "packs " in message
    assert "sha256 " in message
    assert str(packed_dir) in message  # the data the checkpoint read
    moved = shutil.copytree(packed_dir, tmp_path / "moved")
    again = train.main(tiny_config(max_steps=2, data__path=str(moved)))
    assert again.checkpoint_path == first.checkpoint_path  # resumed at step 2: nothing to do
    assert again.losses == first.losses


def test_pack_length_differing_from_the_prepared_data_is_an_error(tiny_config: Any) -> None:
    with pytest.raises(
        ValueError, match=r"packed to \d+ tokens per pack but data\.pack_length is 4096; re-run"
    ):
        train.main(tiny_config(max_steps=1, data__pack_length=4096))


def _last_loss_per_step(path: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}  # a re-run step overwrites the killed attempt's


def _launch(config: Any, path: Path) -> subprocess.Popen[bytes]:
    path.write_text(dump_config(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "training.train", "--config", str(path)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_sigkill_then_resume_reproduces_the_uninterrupted_losses(
    tiny_config: Any, tmp_path: Path
) -> None:
    steps, every = 40, 5
    common = {
        "max_steps": steps,
        "deterministic": True,
        "num_threads": 1,
        "checkpoint__every_n_steps": every,
        "checkpoint__keep_last": 2,
        "lora__enabled": True,  # exercises adapter-only weights + dropout RNG restore
        "lora__r": 4,
        "lora__dropout": 0.1,
    }
    reference = _launch(tiny_config(output_dir="ref", **common), tmp_path / "ref.yaml")

    cfg = tiny_config(output_dir="killed", **common)
    proc = _launch(cfg, tmp_path / "killed.yaml")
    first = Path(cfg.output_dir) / "checkpoints" / "step-000005"
    deadline = time.monotonic() + 240
    while not first.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = max(_last_loss_per_step(Path(cfg.output_dir) / "metrics.jsonl"))
    assert killed_at < steps, "the run finished before it could be killed"

    resume_point = checkpoint.latest(str(Path(cfg.output_dir) / "checkpoints"))
    assert resume_point is not None
    resume_step = int(resume_point.rsplit("-", 1)[1])
    assert every <= resume_step <= killed_at
    resumed = _launch(cfg, tmp_path / "killed.yaml")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr.decode()
    assert f"resuming from {resume_point} (step {resume_step} of {steps})" in stderr.decode()
    assert reference.wait(timeout=300) == 0
    ref = _last_loss_per_step(Path(tiny_config(output_dir="ref").output_dir) / "metrics.jsonl")
    got = _last_loss_per_step(Path(cfg.output_dir) / "metrics.jsonl")
    assert sorted(got) == list(range(1, steps + 1))
    # Every step after the checkpoint the resumed run restarted from matches bit for bit.
    torch.testing.assert_close(
        torch.tensor([got[s] for s in range(resume_step + 1, steps + 1)], dtype=torch.float64),
        torch.tensor([ref[s] for s in range(resume_step + 1, steps + 1)], dtype=torch.float64),
        rtol=1e-9,
        atol=0,
    )


# --- one line, naming the file, from every command that loads one ---------------------------
def _refusal_line(err: str, prefix: str) -> str:
    """The command's refusal: no traceback, and exactly one line of its own."""
    assert "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith(prefix)]
    return line


def _pickled_model_dir(model_dir: Path, out: Path, marker: Path) -> Path:
    """The tiny model with its weights as a pickle that would run code when unpickled."""
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(model_dir, out)
    weights: dict[str, Any] = dict(load_file(str(out / "model.safetensors")))
    (out / "model.safetensors").unlink()
    torch.save({**weights, "payload": _RunsCode(marker)}, out / "pytorch_model.bin")
    return out


def test_train_resume_refuses_a_tampered_checkpoint_in_one_line(
    tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(max_steps=2)
    first = train.main(cfg)
    marker = tmp_path / "code-ran"
    tampered = Path(first.checkpoint_path) / "optimizer.pt"
    torch.save({"state": {}, "param_groups": [], "payload": _RunsCode(marker)}, tampered)
    path = tmp_path / "again.yaml"
    path.write_text(dump_config(cfg))
    capsys.readouterr()
    assert train.cli(["--config", str(path)]) == 2
    line = _refusal_line(capsys.readouterr().err, "train: ")
    assert line.startswith(f"train: {tampered}: refused: ")
    assert line.endswith(
        "Trying to load unsupported GLOBAL posix.mkdir whose module posix is blocked."
    )
    assert not marker.exists()


def test_export_refuses_unsafe_or_broken_files_in_one_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training import export

    marker = tmp_path / "code-ran"
    base = _pickled_model_dir(tiny_model_dir, tmp_path / "base", marker)
    ckpt = _save(str(tmp_path / "ckpt"), 1, tmp_path / "staging")
    argv = ["--checkpoint", ckpt, "--output", str(tmp_path / "out")]
    assert export.cli([*argv, "--base-model", str(base)]) == 2
    line = _refusal_line(capsys.readouterr().err, "export failed: ")
    assert line.startswith(f"export failed: {base / 'pytorch_model.bin'}: refused: ")
    assert not marker.exists()

    (Path(ckpt) / "model.safetensors").write_bytes(b"not safetensors at all")
    assert export.cli([*argv, "--base-model", str(tiny_model_dir)]) == 2
    line = _refusal_line(capsys.readouterr().err, "export failed: ")
    assert line.startswith(f"export failed: {Path(ckpt) / 'model.safetensors'}: not a readable")

    (Path(ckpt) / checkpoint.STATE).write_text("{truncated")
    with pytest.raises(checkpoint.CheckpointError, match=r"trainer_state.json: not a JSON"):
        checkpoint.load(ckpt, staging=tmp_path / "staging")


def test_evaluate_refuses_pickled_weights_in_one_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from data_fixtures import tool_conversation, write_jsonl

    from training import evaluate

    marker = tmp_path / "code-ran"
    model = _pickled_model_dir(tiny_model_dir, tmp_path / "model", marker)
    data = write_jsonl(tmp_path / "eval.jsonl", [tool_conversation().to_record()])
    assert evaluate.cli(["--model", str(model), "--data", str(data)]) == 2
    line = _refusal_line(capsys.readouterr().err, "evaluate failed: ")
    assert line.startswith(f"evaluate failed: {model / 'pytorch_model.bin'}: refused: ")
    assert not marker.exists()
