"""Start a real server process on loopback for a test session, and always stop it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


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
