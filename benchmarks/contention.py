"""``make bench-contention``: the tiny CPU training run idle and beside a competing CPU-bound
process, with this trainer's thread defaults and with the defaults it had before.

    python -m benchmarks.contention [--steps 40] [--repeat 3]

Each case is a fresh ``python -m training.train`` on the tiny model with ``tiny-cpu.yaml`` (the
quickstart's settings), measured as the median tokens/s of the steps after the first five
(``metrics.jsonl``), so start-up is left out. "busy" runs one single-threaded busy loop per CPU
core minus one beside it (on 2 cores: one competing process). Cases:

- ``defaults``: ``num_threads: 0`` (torch's count, at most the CPUs this process may use) and
  ``OMP_WAIT_POLICY=PASSIVE``, which ``training`` sets on import unless the environment sets a
  policy: a thread waiting at a barrier sleeps instead of spinning on a core another needs.
- ``before``: the same with OpenMP's own default wait, which spins before sleeping
  (``GOMP_SPINCOUNT=300000``, what libgomp uses when ``OMP_WAIT_POLICY`` is unset).

Target (issue 15): the defaults' busy run at most 2.5x slower than the idle run.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny-cpu.yaml"
CASES = {"defaults": {}, "before": {"GOMP_SPINCOUNT": "300000"}}


def _spin() -> None:
    while True:
        pass


def _prepare(work: Path) -> tuple[Path, Path]:
    from training import prepare, synthetic
    from training.tiny import save_tiny

    model = save_tiny(work / "tiny-qwen3")
    raw = synthetic.write(work / "raw.jsonl", synthetic.generate(400, seed=0))
    prepare.main(
        prepare.PrepareArgs(
            input=raw, output=work / "data", tokenizer=str(model), max_length=2048, quiet=True
        )
    )
    return model, work / "data"


def _tokens_per_second(
    work: Path, model: Path, data: Path, steps: int, env: dict[str, str]
) -> float:
    out = Path(tempfile.mkdtemp(dir=work))
    overrides = [
        f"output_dir={out}",
        f"model.name_or_path={model}",
        f"data.path={data}",
        f"max_steps={steps}",
        "checkpoint.every_n_steps=0",
        "progress_bar=false",
    ]
    cmd = [sys.executable, "-m", "training.train", "--config", str(CONFIG)]
    for item in overrides:
        cmd += ["--set", item]
    omp = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MLFLOW_TRACKING_URI")
    run_env = {k: v for k, v in os.environ.items() if k not in omp} | env
    subprocess.run(cmd, cwd=ROOT, env=run_env, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(row["tokens_per_s"] for row in rows[5:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as tmp:
        work = Path(tmp)
        model, data = _prepare(work)
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for load in ("idle", "busy"):
                spinners = []
                if load == "busy":
                    for _ in range(max(1, (os.cpu_count() or 2) - 1)):
                        spinner = multiprocessing.Process(target=_spin, daemon=True)
                        spinner.start()
                        spinners.append(spinner)
                    time.sleep(0.5)
                try:
                    for case, env in CASES.items():
                        rate = _tokens_per_second(work, model, data, args.steps, env)
                        rates.setdefault((case, load), []).append(rate)
                finally:
                    for spinner in spinners:
                        spinner.terminate()
    print(f"{'case':<10} {'idle tok/s':>11} {'busy tok/s':>11} {'busy slowdown':>14}")
    for case in CASES:
        idle = statistics.median(rates[(case, "idle")])
        busy = statistics.median(rates[(case, "busy")])
        print(f"{case:<10} {idle:>11.0f} {busy:>11.0f} {idle / busy:>13.2f}x")
    print("target: defaults' busy slowdown <= 2.5x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
