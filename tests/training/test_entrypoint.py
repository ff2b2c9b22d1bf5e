"""The image's one entry point under each launch contract, run in-process with the tiny model for
a few steps: SageMaker Training (channels, hyperparameters, checkpoints, model dir; a resubmitted
run resumes), a torchrun-style launcher (HyperPod), and SageMaker Processing (prepare)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from training import entrypoint

CONFIG = {  # the tiny model, a couple of steps; paths are the contract's to fill
    "seed": 0,
    "num_threads": 1,
    "progress_bar": False,
    "device": "cpu",
    "precision": "fp32",
    "model": {"name_or_path": "set-by-the-model-channel"},
    "data": {"path": "set-by-the-train-channel"},  # pack_length: the channel's
    "optim": {"lr": 3e-3, "warmup_steps": 1, "grad_accum": 1},
    "checkpoint": {"every_n_steps": 1, "keep_last": 2, "resume": "auto"},
    "mlflow": {"tracking_uri": "", "log_system_metrics": False},
}


def _pack_length(packed: Path) -> int:
    return int(json.loads((packed / "manifest.json").read_text())["pack_length"])


def _opt_ml(root: Path, model: Path, data: Path, **hyperparameters: str) -> Path:
    """The tree SageMaker builds before `docker run IMAGE train`."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    if (data / "manifest.json").is_file():  # the training config must agree with the packs
        hyperparameters = {"data.pack_length": str(_pack_length(data)), **hyperparameters}
    (config / "hyperparameters.json").write_text(
        json.dumps({"config_yaml": yaml.safe_dump(CONFIG), **hyperparameters})
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    channels = root / "input" / "data"
    channels.mkdir(parents=True)
    (channels / "train").symlink_to(data, target_is_directory=True)
    (channels / "model").symlink_to(model, target_is_directory=True)
    return root


def _steps(opt_ml: Path) -> list[int]:
    lines = (opt_ml / "output" / "data" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_detects_each_contract(tmp_path: Path) -> None:
    assert entrypoint.detect({"LOCAL_RANK": "0"}, tmp_path) == "launcher"
    assert entrypoint.detect({}, tmp_path) == "local"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "processingjobconfig.json").write_text("{}")
    assert entrypoint.detect({}, tmp_path) == "sagemaker-processing"
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text("{}")
    assert entrypoint.detect({}, tmp_path) == "sagemaker-training"


def test_sagemaker_training_contract_trains_checkpoints_exports_and_resumes(
    tmp_path: Path, tiny_model_dir: Path, packed_dir: Path
) -> None:
    opt_ml = _opt_ml(tmp_path / "opt_ml", tiny_model_dir, packed_dir, max_steps="2")
    environ = {"SM_NUM_GPUS": "0"}
    assert entrypoint.main(["train"], environ=environ, opt_ml=opt_ml) == 0
    assert sorted(p.name for p in (opt_ml / "checkpoints").iterdir()) == [
        "step-000001",
        "step-000002",
    ]
    model = opt_ml / "model"
    for name in ("config.json", "model.safetensors", "chat_template.jinja", "tokenizer.json"):
        assert (model / name).is_file(), name
    assert _steps(opt_ml) == [1, 2]

    # The same run resubmitted (SageMaker restores /opt/ml/checkpoints from the run's S3
    # prefix): checkpoint.resume=auto continues at step 3, it does not start over. A longer
    # run is a changed setting, so the resubmission says it means it.
    hps = opt_ml / "input" / "config" / "hyperparameters.json"
    extended = {"max_steps": "3", "checkpoint.resume_with_changed_settings": "true"}
    hps.write_text(json.dumps({**json.loads(hps.read_text()), **extended}))
    assert entrypoint.main(["train"], environ=environ, opt_ml=opt_ml) == 0
    assert _steps(opt_ml) == [1, 2, 3]


def test_sagemaker_training_without_a_train_channel_records_the_failure(
    tmp_path: Path, tiny_model_dir: Path, packed_dir: Path
) -> None:
    opt_ml = _opt_ml(tmp_path / "opt_ml", tiny_model_dir, packed_dir)
    (opt_ml / "input" / "data" / "train").unlink()
    with pytest.raises(ValueError, match="no 'train' channel"):
        entrypoint.main(["train"], environ={"SM_NUM_GPUS": "0"}, opt_ml=opt_ml)
    assert "no 'train' channel" in (opt_ml / "output" / "failure").read_text()


def test_sm_channel_variables_win_over_the_default_paths(tmp_path: Path) -> None:
    opt_ml = _opt_ml(tmp_path / "opt_ml", tmp_path, tmp_path, max_steps="5")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    argv, checkpoints = entrypoint.training_arguments(
        {"SM_CHANNEL_TRAIN": str(elsewhere)}, opt_ml, tmp_path
    )
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert f"data.path={elsewhere}" in sets
    assert f"model.name_or_path={opt_ml / 'input' / 'data' / 'model'}" in sets
    assert "max_steps=5" in sets
    assert f"checkpoint.dir={checkpoints}" in sets
    assert checkpoints == opt_ml / "checkpoints"


def test_several_instances_start_one_torchrun_per_host() -> None:
    command = entrypoint.torchrun_command(["algo-1", "algo-2"], "algo-2", 8, ["--config", "c"])
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--node-rank=1",
        "--nproc-per-node=8",
        "--master-addr=algo-1",
        "--master-port=29500",
        "-m",
        "training.entrypoint",
        "train",
        "--config",
        "c",
    ]


def test_launcher_contract_runs_the_trainer_as_hyperpodrun_starts_it(
    tmp_path: Path, tiny_model_dir: Path, packed_dir: Path, monkeypatch: Any
) -> None:
    # What hyperpodrun/torchrun set for a single worker; the trainer reads them from os.environ.
    launcher = {
        "TORCHELASTIC_RUN_ID": "t",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }
    for key, value in launcher.items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    argv = ["train", "--config", str(config), "--set", "max_steps=2"]
    argv += ["--set", f"model.name_or_path={tiny_model_dir}", "--set", f"data.path={packed_dir}"]
    argv += ["--set", f"output_dir={out}", "--set", f"data.pack_length={_pack_length(packed_dir)}"]
    assert entrypoint.main(argv, environ=launcher, opt_ml=tmp_path / "no-opt-ml") == 0
    assert (out / "checkpoints" / "step-000002").is_dir()


def test_processing_contract_runs_prepare(
    tmp_path: Path, tiny_model_dir: Path, capsys: Any
) -> None:
    from training import synthetic

    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "config").mkdir(parents=True)
    (opt_ml / "config" / "processingjobconfig.json").write_text("{}")
    records = tmp_path / "processing" / "input" / "records"
    records.mkdir(parents=True)
    args = synthetic.parse_args(["--output", str(records / "tools.jsonl"), "--n", "20"])
    assert synthetic.main(args) == 0
    output = tmp_path / "processing" / "output" / "dataset"
    output.mkdir(parents=True)  # SageMaker creates the output's LocalPath
    argv = ["prepare", "--input", str(records / "tools.jsonl"), "--output", str(output)]
    argv += ["--tokenizer", str(tiny_model_dir), "--max-length", "4096", "--quiet"]
    assert entrypoint.main(argv, environ={}, opt_ml=opt_ml) == 0
    assert (output / "manifest.json").is_file()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sequences"] == 20
