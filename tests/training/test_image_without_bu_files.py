"""The training image carries no BU file (training/Dockerfile copies core/, training/ and
inference/, not config/): every module of `training` must import with the `config` package
absent. The BU files are read only by the job-submission CLI on the user's machine
(`training.job.placement.bu_cluster`, a call-time import), never in a container."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, importlib.abc, pkgutil, sys
class NoConfig(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "config" or name.startswith("config."):
            raise ImportError(f"{name} is not in the training image")
sys.meta_path.insert(0, NoConfig())
import training
failed = []
for module in pkgutil.walk_packages(training.__path__, "training."):
    if module.name.endswith("__main__"):  # runs a CLI on import
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as err:
        failed.append(f"{module.name}: {err}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_training_module_imports_without_the_bu_config_package() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_the_training_image_copies_no_bu_file() -> None:
    dockerfile = (ROOT / "training" / "Dockerfile").read_text(encoding="utf-8")
    copies = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert "core/" in copies
    assert not any(c.startswith("config") for c in copies), copies
