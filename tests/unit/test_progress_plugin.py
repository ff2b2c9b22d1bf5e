"""`make test` is never silent for long: the progress plugin names a test that keeps running."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_a_long_test_is_named_while_it_runs(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text(
        "import time\n\ndef test_sleeps():\n    time.sleep(2.5)\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTEST_STILL_RUNNING_S": "1", "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.progress", "-q", "-p", "no:cacheprovider",
         str(tmp_path / "test_slow.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "... still running test_slow.py::test_sleeps (1 s)" in done.stdout
    assert "... still running test_slow.py::test_sleeps (2 s)" in done.stdout
