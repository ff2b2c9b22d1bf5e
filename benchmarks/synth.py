"""``make bench-synth``: ``cdk synth`` wall time of an empty CDK app (the jsii floor) against
this app with 1, 3 and 6 business units, every gate on (the nag packs and cfn-lint), as ratios
to the floor.

Each BU count runs twice: "cold" lints every template afresh (``-c lint_cache=off``: a fresh
checkout's first synth), "cached" re-synthesizes unchanged templates with a primed cfn-lint
result cache (a developer's repeated ``cdk synth``/``cdk deploy``, and CI with the cache
restored). Both build, synthesize and nag-check the whole app; they differ only in how many
templates cfn-lint has to read.
Targets: the 3 example BUs within 4x the floor, each extra BU under 0.5x the floor.
Each case runs ``--repeat`` times (default 3) and reports the median, the machine being shared.
"""

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.__main__ import main as config_cli  # noqa: E402
from config.loader import CONFIG_DIR, config_files  # noqa: E402

CDK = ROOT / "node_modules" / ".bin" / "cdk"
PYTHON = ROOT / ".venv" / "bin" / "python"
# The floor is an empty app built and ended like app.py (CDK's built-in CloudFormation
# validation off, cfn-lint runs instead; exit without interpreter teardown); the CDK-default
# empty app, ended normally, is shown for reference.
EMPTY_APP = (
    "import atexit, os\nimport aws_cdk as cdk\n\napp = cdk.App({props})\n"
    "cdk.Stack(app, 'Empty')\napp.synth()\n{exit}"
)
FAST_EXIT = "atexit._run_exitfuncs()\nos._exit(0)\n"
FLOOR = "empty app (floor)"
EXTRA_BUS = ("risk", "payments", "lending")
COUNTS = (1, 3, 6)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "true",
    }


def _time_synth(cwd: Path, outdir: Path, extra: list[str]) -> float:
    shutil.rmtree(outdir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(outdir), *extra],
        cwd=cwd,
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _config_dir(work: Path, count: int) -> Path:
    """``count`` BUs: fraud first, then the other examples, then clones from `config new`."""
    directory = work / f"config-{count}"
    directory.mkdir()
    examples = sorted(config_files(CONFIG_DIR), key=lambda p: p.stem != "fraud")
    for path in examples[:count]:
        shutil.copy(path, directory / path.name)
    for name in EXTRA_BUS[: max(0, count - len(examples))]:
        with contextlib.redirect_stdout(io.StringIO()):
            config_cli(["new", name, "--config-dir", str(directory)])
    assert len(config_files(directory)) == count
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        work = Path(tmp)
        cases: list[tuple[str, Path, list[str]]] = []
        for label, props, end in (
            (FLOOR, "builtin_cloud_formation_validation=False", FAST_EXIT),
            ("empty, CDK defaults", "", ""),
        ):
            empty = work / f"empty-{len(cases)}"
            empty.mkdir()
            app = EMPTY_APP.format(props=props, exit=end)
            (empty / "app.py").write_text(app, encoding="utf-8")
            (empty / "cdk.json").write_text(f'{{"app": "{PYTHON} app.py"}}', encoding="utf-8")
            cases.append((label, empty, []))
        dirs = {count: _config_dir(work, count) for count in COUNTS}
        for count, directory in dirs.items():
            cold = ["-c", f"config_dir={directory}", "-c", "lint_cache=off"]
            cases.append((f"{count} BU, cold", ROOT, cold))
        for count, directory in dirs.items():
            cached = ["-c", f"config_dir={directory}", "-c", f"lint_cache={work / 'lint'}"]
            _time_synth(ROOT, work / "out", cached)  # prime the cache
            cases.append((f"{count} BU, cached", ROOT, cached))
        results: dict[str, float] = {}
        for label, cwd, extra in cases:
            runs = [_time_synth(cwd, work / "out", extra) for _ in range(args.repeat)]
            results[label] = statistics.median(runs)
    floor = results[FLOOR]
    print(f"{'case':<20} {'median s':>9} {'x floor':>8}")
    for label, seconds in results.items():
        print(f"{label:<20} {seconds:>9.2f} {seconds / floor:>8.2f}")
    for kind in ("cached", "cold"):
        per_bu = (results[f"6 BU, {kind}"] - results[f"1 BU, {kind}"]) / 5 / floor
        total = results[f"3 BU, {kind}"] / floor
        print(
            f"{kind:>6}: each extra BU (1 -> 6) {per_bu:.2f}x floor (target < 0.5); "
            f"3 example BUs {total:.2f}x floor (target <= 4)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
