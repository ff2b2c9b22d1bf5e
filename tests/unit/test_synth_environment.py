"""`make synth`, `validate`, `new-bu` and `replacements` run in the synth-only environment
(requirements.txt: CDK, cdk-nag, cfn-lint, pydantic, boto3, YAML, kubernetes), and `.ci/run`
proves `make synth` on a fresh machine. This test finds the same mistake inside `make test`: the
CDK app and every module of `scripts/` must import with every package that only
requirements-ml.txt or requirements-dev.txt installs made unimportable (a stack once reached
jsonschema through `training.job`). Commands that need more live in `tools/` (`tools.doctor`:
mlflow for its tracking call; `tools.render_dashboard`: matplotlib), run under `make doctor` and
`make dashboard-picture`, which install everything, and say what is missing when run without
it."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _not_synth_modules() -> list[str]:
    """Import names of the packages only requirements-ml.txt and requirements-dev.txt install
    (`sagemaker-core` -> `sagemaker_core`)."""
    names = []
    for file in ("requirements-ml.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text(encoding="utf-8").splitlines():
            found = re.match(r"\s*([A-Za-z0-9_.-]+)==", line)
            if found:
                names.append(found.group(1).lower().replace("-", "_").replace(".", "_"))
    return names


PROBE = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class SynthOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in the synth-only environment (requirements.txt)")
sys.meta_path.insert(0, SynthOnly())
import importlib, pkgutil, scripts
import stacks.stage, config.loader, config.__main__, platform_constructs.gates
for module in pkgutil.iter_modules(scripts.__path__):  # synth, replacements, ... every one
    importlib.import_module(f"scripts.{module.name}")
"""


def test_the_cdk_app_imports_with_only_the_synth_requirements() -> None:
    blocked = _not_synth_modules()
    assert {"torch", "transformers", "jsonschema", "mlflow", "matplotlib", "moto"} <= set(blocked)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
