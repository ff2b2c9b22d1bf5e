"""The README's training quickstart, run as written (in a scratch directory): the tuned tiny model
must beat its base on at least 100 held-out turns. About 5 minutes: `make test-all` runs it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Training\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.startswith(".venv/bin/python")]
    assert lines[-1].startswith(".venv/bin/python -m training.evaluate")
    return lines


@pytest.mark.slow
def test_the_readme_quickstart_learns_to_call_tools(tmp_path: Path) -> None:
    commands = _quickstart_commands()
    commands[-1] += " --output report.json"
    # The commands run from the repository root; here the scratch directory plays `runs/`'s
    # parent, so the repository goes on the import path instead.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for line in commands:
        argv = line.replace("training/configs/", f"{ROOT}/training/configs/").split()
        argv[0] = sys.executable
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    base, tuned = (report["models"][m]["metrics"] for m in ("base", "tuned"))
    assert tuned["cases"] >= 100
    assert tuned["function_name_accuracy"] >= 0.8
    assert tuned["full_call_accuracy"] >= 0.5
    assert tuned["parse_validity"] >= 0.9
    for metric in ("function_name_accuracy", "full_call_accuracy", "parse_validity"):
        assert tuned[metric] > base[metric], metric
