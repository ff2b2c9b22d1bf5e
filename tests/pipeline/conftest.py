"""Airflow for the DAG's tests: `make test-pipeline` runs them in .venv-pipeline (Airflow 3.0.6),
offline, and the DAG's training steps in .venv (``PIPELINE_ML_PYTHON``).

The recipe `dag.test()` needs, found by trying a two-task TaskFlow DAG (about 3 s to migrate,
2.5 s to run):

- ``AIRFLOW_HOME``: a fresh folder; Airflow writes airflow.cfg and its sqlite database there.
  Airflow reads its settings once, when first imported, so they are set in ``pytest_configure``,
  before pytest imports any test module (and so the DAG). An ``AIRFLOW_HOME`` that is not an
  empty folder (a developer's real one) is left alone and a temporary one used instead.
- ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``: sqlite in that folder (the default, written out so an
  exported setting cannot point the tests at a real database); ``AIRFLOW__CORE__LOAD_EXAMPLES``
  off. ``AIRFLOW__CORE__DAGS_FOLDER`` is not needed: `dag.test()` runs the DAG object it is
  given, whichever file defines it.
- ``airflow db migrate`` once (the ``airflow_home`` fixture, for every test): without the tables
  `dag.test()` fails ("no such table: task_instance").
- `dag.test()` returns the DagRun and does not raise when a task fails: assert
  ``run.state == "success"`` (a task's error is in the captured log).
- fastapi 0.116.1 and cadwyn 5.x, as pipelines/requirements.txt pins them: with newer ones
  every task fails with HTTP 422 from Airflow's in-process Execution API.

Under .venv (``make test`` collects all of tests/) Airflow is absent and this folder is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

AIRFLOW_INSTALLED = importlib.util.find_spec("airflow") is not None
if not AIRFLOW_INSTALLED:
    collect_ignore_glob = ["test_*.py", "*_test.py"]

# tests/harness (loopback servers, the fake Kubernetes API) as the other tiers import it; the
# top conftest that puts it on the path is cut off by --confcutdir (it needs the CDK).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_created_home: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _created_home  # noqa: PLW0603 - one folder per session, removed at the end
    if not AIRFLOW_INSTALLED:
        return
    if "airflow" in sys.modules:
        raise pytest.UsageError("airflow was imported before tests/pipeline/conftest.py set it up")
    given = os.environ.get("AIRFLOW_HOME")
    if given and Path(given).is_dir() and not any(Path(given).iterdir()):
        home = Path(given)
    else:
        home = _created_home = Path(tempfile.mkdtemp(prefix="airflow-home-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _created_home is not None:
        shutil.rmtree(_created_home, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def airflow_home() -> Path:
    """AIRFLOW_HOME, its sqlite database migrated (once per session)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        check=False,
    )
    if migrate.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
    return home


@pytest.fixture(scope="session")
def ml_python() -> Path:
    """The ML environment's interpreter (.venv), which runs the DAG's training commands."""
    value = os.environ.get("PIPELINE_ML_PYTHON", "")
    if not value or not os.access(value, os.X_OK):
        pytest.fail(f"PIPELINE_ML_PYTHON={value!r}: run `make test-pipeline`, which sets it")
    return Path(value)


@pytest.fixture(scope="session")
def mlflow_server(ml_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` from .venv on 127.0.0.1 (sqlite, local artifacts); yields its URI.
    .venv-pipeline has only the MLflow client (mlflow-skinny), like MWAA."""
    from harness.servers import mlflow_server as harness_mlflow

    with harness_mlflow(ml_python, tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri
