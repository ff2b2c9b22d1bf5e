"""Fixtures shared across test tiers: a real MLflow tracking server on loopback; a progress
line for any test that runs long; OpenMP threads that do not spin against other work."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

# Before anything imports torch: the suite's torch threads sleep at barriers instead of spinning,
# so a busy machine slows the training tests ~1.3x rather than ~3.7x (make bench-contention).
# The training tests' own runs use one thread (tests/training/conftest.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from harness.servers import mlflow_server as harness_mlflow

pytest_plugins = ["harness.progress", "harness.synthesized_app"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `mlflow server` on 127.0.0.1 (sqlite backend, local artifacts); yield its URI."""
    with harness_mlflow(Path(sys.executable), tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri
