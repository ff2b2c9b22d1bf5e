"""Start a real server process on loopback for a test session, and always stop it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from inference.local_runtime import SERVE_ENV, serve_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    *,
    health_url: str,
    log_path: Path,
    env: Mapping[str, str],
    ready_timeout_s: float = 90.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until `health_url` answers 200; the log tail explains any failure to start."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
        try:
            deadline = time.monotonic() + ready_timeout_s
            while not _healthy(health_url):
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited: {log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{command[0]} not ready in {ready_timeout_s:.0f} s: "
                        f"{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.contextmanager
def mlflow_server(python: Path, root: Path) -> Iterator[str]:
    """`mlflow server` of ``python``'s environment on 127.0.0.1 (sqlite backend, artifacts
    under ``root``); yield its URI."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [
        str(python), "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running_server(command, health_url=f"{uri}/health", log_path=root / "server.log", env=env):
        yield uri


TRANSFORMERS_READY_TIMEOUT_S = 120.0


@contextlib.contextmanager
def transformers_serve(model: Path, log_dir: Path) -> Iterator[str]:
    """Run `transformers serve` pinned to `model` on 127.0.0.1 (CPU, offline); yield its URL.

    The local stand-in for an LMI container: an OpenAI-compatible chat server for a model
    directory as `training.export` writes it."""
    port = free_port()
    command = serve_command(Path(sys.executable), model, port)
    env = {**os.environ, **SERVE_ENV}
    base_url = f"http://127.0.0.1:{port}"
    with running_server(
        command,
        health_url=f"{base_url}/health",
        log_path=log_dir / "serve.log",
        env=env,
        ready_timeout_s=TRANSFORMERS_READY_TIMEOUT_S,
    ):
        yield base_url
