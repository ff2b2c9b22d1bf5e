"""The local profile: every step of the lifecycle on this machine, offline.

The same commands the cloud jobs run (`training.prepare`, `.train`, `.export`, `.evaluate`) run
here as subprocesses of the training environment (``PIPELINE_ML_PYTHON``, default this
interpreter), and the endpoint is a local `transformers serve` that the deploy step replaces
blue/green: the new server must answer the endpoint client before traffic (the endpoint's state
file) moves to it; otherwise the old one keeps serving and the task fails.

The folder ``PIPELINE_LOCAL_ROOT`` stands in for the BU's buckets::

    data/<pipeline.data_prefix><dataset_file>   raw conversations (the data bucket)
    models/<train.base_model>                   the base model (the models bucket)
    runs/<run>/                                 prepared data, training output, export, reports
    endpoints/<endpoint>.json                   what the local endpoint serves: model, url, pid
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipelines.lifecycle import (
    TRAINING_CONFIGS,
    Candidate,
    Deployed,
    Evaluation,
    Prepared,
    Run,
    StepFailedError,
    TrainingHandle,
    evaluation_of,
    prepare_arguments,
    prepared_of,
)

REPO = Path(__file__).resolve().parents[1]
SERVE_READY_S = 180.0
# The evaluation's generation budget: enough for a tool call and a short thought.
EVAL_MAX_NEW_TOKENS = 96


class LocalBackend:
    def __init__(self, root: Path, *, ml_python: Path | None = None) -> None:
        self.root = root
        self.python = ml_python or Path(sys.executable)

    # -- helpers -------------------------------------------------------------------------------
    def _run_dir(self, run: Run) -> Path:
        path = self.root / "runs" / run.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _command(self, what: str, args: list[str], log: Path) -> str:
        """Run ``python -m training.<what>`` in the training environment; stdout, or a one-line
        failure naming the log with the tail of stderr."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        done = subprocess.run(
            [str(self.python), "-m", f"training.{what}", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr, encoding="utf-8")
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise StepFailedError(f"training.{what} exited {done.returncode}: {tail} (log: {log})")
        return done.stdout

    # -- steps ---------------------------------------------------------------------------------
    def prepare(self, run: Run) -> Prepared:
        pipeline = run.pipeline
        source = self.root / "data" / pipeline.data_prefix / pipeline.dataset_file
        if not source.is_file():
            raise StepFailedError(f"no dataset at {source} (pipeline.data_prefix + dataset_file)")
        out = self._run_dir(run) / "data"
        tokenizer = self.root / "models" / pipeline.train.base_model
        self._command(
            "prepare",
            prepare_arguments(
                pipeline, source=str(source), output=str(out), tokenizer=str(tokenizer)
            ),
            self._run_dir(run) / "prepare.log",
        )
        stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
        digest = hashlib.sha256()
        for path in sorted(p for p in out.iterdir() if p.is_file()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return prepared_of(
            stats,
            dataset=str(out),
            eval_data=str(out / "eval.jsonl"),
            digest=digest.hexdigest()[:16],
        )

    def submit_training(self, run: Run, prepared: Prepared, overrides: list[str]) -> TrainingHandle:
        """Train to completion here (the cloud backends submit and return); a retry of this task
        finds the run's checkpoints in the same output folder and resumes from them."""
        train = run.pipeline.train
        output = self._run_dir(run) / "train"
        resumed = (output / "checkpoints").is_dir()
        sets = [
            f"output_dir={output}",
            f"data.path={prepared['dataset']}",
            f"model.name_or_path={self.root / 'models' / train.base_model}",
            f"mlflow.experiment={run.bu.name}-pipeline",
            *overrides,
        ]
        self._command(
            "train",
            ["--config", str(TRAINING_CONFIGS / train.config), *(f"--set={s}" for s in sets)],
            self._run_dir(run) / "train.log",
        )
        return {"output_dir": str(output), "resumed": resumed}

    def training_finished(self, handle: TrainingHandle) -> bool:
        return True  # submit_training ran it to the end

    def export(self, run: Run, handle: TrainingHandle) -> Candidate:
        model = self._run_dir(run) / "model"
        self._command(
            "export",
            ["--run-dir", handle["output_dir"], "--output", str(model)],
            self._run_dir(run) / "export.log",
        )
        return {"model": str(model), "run": run.name}

    def champion(self, run: Run) -> str | None:
        state = self._endpoint_state(run)
        return state["model"] if state else None

    def evaluate(
        self, run: Run, candidate: Candidate, champion: str | None, prepared: Prepared
    ) -> Evaluation:
        report_path = self._run_dir(run) / "evaluation.json"
        args = [
            "--model", candidate["model"], "--data", prepared["eval_data"],
            "--max-cases", str(run.pipeline.gate.max_cases),
            "--max-new-tokens", str(EVAL_MAX_NEW_TOKENS), "--output", str(report_path),
        ]  # fmt: skip
        if champion is not None:
            args += ["--base-model", champion]
        self._command("evaluate", args, self._run_dir(run) / "evaluate.log")
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StepFailedError(f"{report_path}: unreadable evaluation report: {err}") from err
        return evaluation_of(report, champion, report_uri=str(report_path))

    # -- the local endpoint, blue/green ---------------------------------------------------------
    def _state_path(self, run: Run) -> Path:
        return self.root / "endpoints" / f"{run.pipeline.deploy.endpoint}.json"

    def _endpoint_state(self, run: Run) -> dict[str, Any] | None:
        path = self._state_path(run)
        if not path.is_file():
            return None
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state

    def deploy(self, run: Run, candidate: Candidate) -> Deployed:
        from inference.local_runtime import SERVE_ENV, serve_command

        blue = self._endpoint_state(run)
        port = _free_port()
        log = self._run_dir(run) / "serve.log"
        with log.open("wb") as sink:
            green = subprocess.Popen(
                serve_command(self.python, Path(candidate["model"]), port),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **SERVE_ENV},
                start_new_session=True,  # outlives this task, as an endpoint outlives a deploy
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, green, log)
            answer = smoke(url, candidate["model"], run.pipeline.deploy.endpoint)
        except StepFailedError:
            stop(green.pid)
            raise StepFailedError(
                f"the new model did not pass its check on {url}; the endpoint still serves "
                f"{blue['model'] if blue else 'nothing'} (log: {log})"
            ) from None
        state = {"model": candidate["model"], "url": url, "pid": green.pid, "run": run.name}
        path = self._state_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # traffic moves: clients read the state file
        if blue:
            stop(int(blue["pid"]))
        return {
            "endpoint": run.pipeline.deploy.endpoint,
            "model": candidate["model"],
            "replaced": blue["model"] if blue else None,
            "check": answer,
        }


def smoke(url: str, model: str, endpoint: str) -> dict[str, Any]:
    """One tool-calling request through the endpoint client, as a deployed endpoint is asked;
    a transport or protocol failure fails the deploy, the answer's parse problems are reported."""
    from inference.client import EndpointClient, EndpointError, Sampling
    from inference.local_runtime import LocalRuntime
    from inference.smoke import MESSAGES, WEATHER_TOOL

    client = EndpointClient(endpoint, runtime_client=LocalRuntime(url, model=model))
    try:
        result = client.chat(
            MESSAGES, tools=[WEATHER_TOOL], sampling=Sampling(temperature=0.0, max_tokens=64)
        )
    except EndpointError as err:
        raise StepFailedError(f"{endpoint}: {type(err).__name__}: {err}") from err
    return {
        "tool_calls": [c.name for c in result.tool_calls],
        "problems": [f"{e.kind.value}: {e.reason}" for e in result.errors],
    }


def stop(pid: int) -> None:
    """Stop a server this backend started (its own session), if it still runs."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVE_READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StepFailedError(f"transformers serve exited {process.returncode} (log: {log})")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise StepFailedError(f"transformers serve not ready in {SERVE_READY_S:.0f} s (log: {log})")
