"""``make bench-synth``: ``cdk synth`` wall time and peak memory of an empty CDK app (the jsii
floor) against this app with 1, 3, 10 and 20 business units (the examples, then BUs from
``config new``), every gate on (the nag packs and cfn-lint), as ratios to the floor; and the
one-BU synth a pull request runs (``-c bu=fraud``) in a 1-BU and a 20-BU repository.

Each BU count runs twice: "cold" lints every template afresh (``-c lint_cache=off``: a fresh
checkout's first synth), "cached" re-synthesizes unchanged templates with a primed cfn-lint
result cache (a developer's repeated ``cdk synth``/``cdk deploy``, and CI with the cache
restored). Both build, synthesize and nag-check the whole app; they differ only in how many
templates cfn-lint has to read.
Targets: the 3 example BUs within 4x the floor, each extra BU under 0.5x the floor, and a
one-BU synth of a 20-BU repository within 1.5x of a one-BU repository.
Peak memory is the largest resident set of any process of the synth (``ru_maxrss`` of the
children of a wrapper process per run: jsii's node process or the Python app).
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
from config.__main__ import parse_args as config_args  # noqa: E402
from config.loader import CONFIG_DIR, config_files  # noqa: E402

CDK = ROOT / "node_modules" / ".bin" / "cdk"
PYTHON = ROOT / ".venv" / "bin" / "python"
# The floor is an empty app built and ended like app.py (CDK's built-in CloudFormation
# validation off, cfn-lint runs instead; exit without interpreter teardown); the CDK-default
# empty app, ended normally, is shown for reference.
EMPTY_APP = (
    "{exit}import aws_cdk as cdk\n\napp = cdk.App({props})\ncdk.Stack(app, 'Empty')\napp.synth()\n"
)
# app.py's ending: a handler registered before aws-cdk-lib loads runs after the others and
# leaves before the interpreter's teardown.
FAST_EXIT = "import atexit, os\natexit.register(os._exit, 0)\n"
FLOOR = "empty app (floor)"
COUNTS = (1, 3, 10, 20)
EXTRA_BUS = tuple(f"bu{n:02d}" for n in range(4, max(COUNTS) + 1))
# Runs one command and prints its largest child's peak RSS (KiB on Linux) on stderr's last line.
PEAK_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    ".returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "true",
    }


def _time_synth(cwd: Path, outdir: Path, extra: list[str]) -> tuple[float, float]:
    """(seconds, peak MiB) of one ``cdk synth``."""
    shutil.rmtree(outdir, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, str(CDK), "synth", "--quiet", "--output",
         str(outdir), *extra],
        cwd=cwd,
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def _config_dir(work: Path, count: int) -> Path:
    """``count`` BUs: fraud first, then the other examples, then clones from `config new`."""
    directory = work / f"config-{count}"
    directory.mkdir()
    examples = sorted(config_files(CONFIG_DIR), key=lambda p: p.stem != "fraud")
    for path in examples[:count]:
        shutil.copy(path, directory / path.name)
    for name in EXTRA_BUS[: max(0, count - len(examples))]:
        with contextlib.redirect_stdout(io.StringIO()):
            config_cli(config_args(["new", name, "--config-dir", str(directory)]))
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
        for count in (1, max(COUNTS)):  # the PR check's one-BU synth, cold
            one = ["-c", f"config_dir={dirs[count]}", "-c", "bu=fraud", "-c", "lint_cache=off"]
            cases.append((f"fraud of {count} BU, cold", ROOT, one))
        results: dict[str, tuple[float, float]] = {}
        for label, cwd, extra in cases:
            runs = [_time_synth(cwd, work / "out", extra) for _ in range(args.repeat)]
            results[label] = (
                statistics.median(r[0] for r in runs),
                max(r[1] for r in runs),
            )
    floor = results[FLOOR][0]
    print(f"{'case':<22} {'median s':>9} {'x floor':>8} {'peak MiB':>9}")
    for label, (seconds, peak) in results.items():
        print(f"{label:<22} {seconds:>9.2f} {seconds / floor:>8.2f} {peak:>9.0f}")
    first, last = COUNTS[0], COUNTS[-1]
    for kind in ("cached", "cold"):
        per_bu = (
            (results[f"{last} BU, {kind}"][0] - results[f"{first} BU, {kind}"][0])
            / (last - first)
            / floor
        )
        total = results[f"3 BU, {kind}"][0] / floor
        print(
            f"{kind:>6}: each extra BU ({first} -> {last}) {per_bu:.2f}x floor (target <= 0.5); "
            f"3 example BUs {total:.2f}x floor (target <= 4)"
        )
    alone = results[f"fraud of {last} BU, cold"][0] / results[f"fraud of {first} BU, cold"][0]
    print(
        f"one-BU synth (fraud) of a {last}-BU repository: {alone:.2f}x a 1-BU one (target <= 1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
