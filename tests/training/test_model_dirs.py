"""A missing local model or tokenizer folder is an error naming it and the command that makes it;
nothing falls through to a Hugging Face hub download."""

import json
from pathlib import Path

import pytest

from training import prepare, train


def test_prepare_names_the_missing_tokenizer_and_how_to_make_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n", encoding="utf-8")
    missing = tmp_path / "tiny-qwen3"
    argv = ["--input", str(data), "--output", str(tmp_path / "out"), "--tokenizer", str(missing)]
    assert prepare.cli(argv) == 2
    err = capsys.readouterr().err
    assert f"--tokenizer '{missing}' is not a local folder" in err
    assert f"python -m training.tiny --output {missing}" in err
    assert "huggingface.co" not in err


def test_train_names_the_missing_model_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path("training/configs/tiny-cpu.yaml")
    argv = ["--config", str(config), "--set", f"model.name_or_path={tmp_path / 'nowhere'}"]
    argv += ["--set", f"output_dir={tmp_path / 'run'}", "--set", f"data.path={tmp_path}"]
    assert train.cli(argv) == 2
    err = capsys.readouterr().err
    assert f"model.name_or_path '{tmp_path / 'nowhere'}' is not a local folder" in err
    assert "stage the Hugging Face layout" in err
