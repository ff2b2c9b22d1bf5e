"""scripts/mwaa_bundle.py offline: the requirements.txt MWAA installs, the DAG folder it reads,
and which wheels go into plugins.zip (``pip download`` replaced by a fake that writes empty
wheels); and the pins of pipelines/ against Airflow's official constraints."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from config.loader import config_files, load_file
from scripts import mwaa_bundle as mb

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
# Packages the DAG needs that Airflow's constraints do not pin at all.
NOT_IN_AIRFLOW_CONSTRAINTS = {"mlflow-skinny", "sagemaker-mlflow"}
CONSTRAINTS_NAME = mb.MWAA_CONSTRAINTS.name

# A DAG as the real one uses the repo: config and the job manifest at parse time, a training
# step (numpy, so torch's side of the repo) only inside a task.
DAG_SOURCE = """
from airflow.sdk import dag, task

from config.loader import config_files
from training.job.manifest import build_manifest


@task
def prepare():
    from training import prepare as step  # runs in the training image, never on MWAA
    return step.__name__
"""


def _fake_wheel(spec: str) -> str:
    name, version = spec.split("==")
    return f"{re.sub(r'[-.]', '_', name)}-{version}-py3-none-any.whl"


class FakeDownload:
    """Writes an empty wheel per spec, plus one shared dependency of Airflow's and one of the
    MLflow client's, and records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, specs: Sequence[str], dest: Path, constraints: Path) -> None:
        assert constraints.name == CONSTRAINTS_NAME
        self.calls.append((list(specs), constraints.read_text()))
        names = [_fake_wheel(s) for s in specs]
        if any(s.startswith("apache-airflow==") for s in specs):
            names.append("SQLAlchemy-1.4.54-py3-none-any.whl")
        if any(s.startswith("mlflow-skinny==") for s in specs):
            names.append("databricks_sdk-0.156.0-py3-none-any.whl")
        for name in names:
            (dest / name).write_bytes(b"")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[mb.Bundle, FakeDownload, str]:
    tmp = tmp_path_factory.mktemp("mwaa")
    dag = tmp / "lifecycle.py"
    dag.write_text(DAG_SOURCE)
    config_file = tmp / "acme.yaml"
    config_file.write_text("name: acme\n")
    download = FakeDownload()
    built = mb.build("acme-ml", config_file, tmp / "out", dag_file=dag, download=download)
    return built, download, DAG_SOURCE


def _pins(path: Path) -> dict[str, str]:
    return {k: v for k, (_, v) in mb.read_pins(path).items()}


def test_requirements_install_pinned_wheels_from_plugins_only(bundle):
    built, _, _ = bundle
    lines = [
        line
        for line in (built.out / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[:3] == [
        "--no-index",
        "--find-links /usr/local/airflow/plugins",
        f'--constraint "/usr/local/airflow/dags/{CONSTRAINTS_NAME}"',
    ]
    packages = dict(line.split("==") for line in lines[3:])
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][A-Za-z0-9.+!_-]*", x) for x in lines[3:])
    # Every package of pipelines/requirements.txt but what MWAA's image has and pytest.
    wanted = _pins(PIPELINES / "requirements.txt")
    assert {mb.canonical(n) for n in packages} == (
        wanted.keys() - {mb.canonical(n) for n in (*mb.MWAA_PROVIDES, *mb.LOCAL_ONLY)}
    )
    mwaa = _pins(mb.MWAA_CONSTRAINTS)
    for name, version in packages.items():
        assert version == wanted[mb.canonical(name)]
        if mb.canonical(name) in NOT_IN_AIRFLOW_CONSTRAINTS:
            assert mb.canonical(name) not in mwaa
        else:
            assert mwaa[mb.canonical(name)] == version, name
    assert {"apache-airflow-providers-cncf-kubernetes", "kubernetes", "mlflow-skinny"} <= {
        mb.canonical(n) for n in packages
    }


def test_plugins_zip_holds_the_wheels_the_mwaa_image_lacks(bundle):
    built, download, _ = bundle
    (wanted_specs, constraints), (base_specs, base_constraints) = download.calls
    # MWAA's constraints, but dill: 0.3.1.1 has no wheel; the image has it, nothing ships it.
    assert constraints == base_constraints
    assert constraints.replace("dill==0.3.9", "dill==0.3.1.1") == mb.MWAA_CONSTRAINTS.read_text()
    assert wanted_specs[0] == "apache-airflow==3.0.6"  # the providers cannot pull a newer one
    assert wanted_specs[1:] == built.requirements
    assert {mb.canonical(s.split("==")[0]) for s in base_specs} == {
        mb.canonical(n) for n in mb.MWAA_PROVIDES
    }
    with zipfile.ZipFile(built.out / "plugins.zip") as archive:
        names = sorted(archive.namelist())
    assert names == sorted(
        [_fake_wheel(s) for s in built.requirements] + ["databricks_sdk-0.156.0-py3-none-any.whl"]
    )
    assert all("/" not in n for n in names)  # flat: MWAA's --find-links is the plugins folder


def test_dag_folder_has_the_dag_and_its_import_closure_only(bundle):
    built, _, source = bundle
    dags = built.out / "dags"
    files = {p.relative_to(dags).as_posix() for p in dags.rglob("*") if p.is_file()}
    assert (dags / "acme_ml_model_lifecycle.py").read_text() == source
    assert (dags / CONSTRAINTS_NAME).read_bytes() == mb.MWAA_CONSTRAINTS.read_bytes()
    assert {
        "config/__init__.py",
        "config/loader.py",
        "config/schema.py",
        "core/accelerators.py",
        "training/__init__.py",
        "training/job/__init__.py",
        "training/job/manifest.py",
        "training/job/schema/hyperpodpytorchjob-v1.schema.json",  # crd.py reads it
        "inference/serving.py",
        "inference/lmi_images.json",  # serving.py reads it
    } <= files
    # One BU's config, and nothing that needs the ML stack, the CDK app or the tests.
    assert [f for f in files if f.startswith("config/") and f.endswith(".yaml")] == [
        "config/acme.yaml"
    ]
    assert "training/prepare.py" not in files
    assert built.closure.excluded == {"training.prepare": "imports numpy"}
    assert not any(f.startswith(("stacks/", "platform_constructs/", "tests/")) for f in files)
    assert not any(f.startswith(("training/loop/", "training/model/")) for f in files)
    assert (dags / ".airflowignore").read_text().split() == [
        "config/",
        "core/",  # the GPU table config.hyperpod, inference.serving and training.job read
        "inference/",
        "training/",
    ]


def test_dag_folder_imports_on_its_own(bundle):
    """The closure is complete: with only dags/ on the path (no repo), what the DAG imports
    loads from the bundle, and the config loader sees the one BU file."""
    built, _, _ = bundle
    dags = built.out / "dags"
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import config.loader, training.job.manifest, inference.serving;"
        "from config.loader import config_files;"
        "assert config.loader.__file__.startswith(sys.argv[1]), config.loader.__file__;"
        "assert training.job.manifest.__file__.startswith(sys.argv[1]);"
        "print(*[p.name for p in config_files()])"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(dags)],
        capture_output=True,
        text=True,
        check=False,
        cwd=dags,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["acme.yaml"]


def test_the_real_dag_file_is_bundleable():
    """pipelines/mwaa_dag.py and what it imports at parse time stay clear of the ML stack (a
    module-level torch import anywhere under it would raise here)."""
    closure = mb.import_closure(mb.DAG_FILE)
    assert {"pipelines.dag", "config.loader", "config.schema"} <= closure.modules.keys()
    assert not any(n.startswith(("stacks", "platform_constructs")) for n in closure.modules)


def test_closure_follows_relative_and_lazy_imports_not_type_checking(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n"
        "    from pkg import heavy\n"
    )
    (pkg / "b.py").write_text("def f():\n    from pkg.sub import c\n    from pkg import chain\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("TABLE = 'table.json'\n")
    (pkg / "sub" / "table.json").write_text("{}")
    (pkg / "heavy.py").write_text("import torch\n")
    (pkg / "chain.py").write_text("from pkg import heavy\n")
    dag = tmp_path / "dag.py"
    dag.write_text("import pkg.a\n")
    closure = mb.import_closure(dag, tmp_path)
    assert list(closure.modules) == ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]
    assert closure.excluded == {"pkg.chain": "imports pkg.heavy (imports torch)"}
    assert closure.data_files == (pkg / "sub" / "table.json",)
    (tmp_path / "bad.py").write_text("import pkg.chain\n")
    with pytest.raises(mb.BundleError, match=r"imports pkg\.chain"):
        mb.import_closure(tmp_path / "bad.py", tmp_path)


def test_a_dag_file_airflow_would_not_parse_is_an_error(tmp_path: Path):
    dag = tmp_path / "quiet.py"
    dag.write_text('"""One DAG per BU."""\nfrom pipelines.dag import dags_from\n')
    with pytest.raises(mb.BundleError, match="safe mode would skip it"):
        mb.build("acme", tmp_path / "acme.yaml", tmp_path / "out", dag_file=dag)
    assert not (tmp_path / "out").exists()


def test_a_pin_mwaa_would_refuse_is_an_error(tmp_path: Path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("kubernetes==99.0.0\n")
    with pytest.raises(mb.BundleError, match=r"kubernetes==99\.0\.0, MWAA's constraints 32\.0\.1"):
        mb.mwaa_requirements(requirements, mb.MWAA_CONSTRAINTS)
    requirements.write_text("kubernetes>=32\n")
    with pytest.raises(mb.BundleError, match="not an exact name==version pin"):
        mb.mwaa_requirements(requirements, mb.MWAA_CONSTRAINTS)


def test_bu_source_is_the_bus_file_and_airflow_bucket():
    for path in config_files():
        config, _ = load_file(path)
        assert config is not None
        if config.pipeline is None:
            with pytest.raises(mb.BundleError, match="no pipeline section"):
                mb.bu_source(config.name)
        else:
            assert mb.bu_source(config.name) == (path, config.naming.airflow_bucket())
    with pytest.raises(mb.BundleError, match="no valid config"):
        mb.bu_source("no-such-bu")


def test_pipeline_pins_are_airflows_official_ones():
    """pipelines/constraints.txt is a resolve against Airflow's 3.0.6 constraints: a pin that
    drifts from them (a hand edit, a re-freeze without -c) is caught here."""
    official = _pins(mb.MWAA_CONSTRAINTS)
    local = _pins(PIPELINES / "constraints.txt")
    drift = {n: (v, official[n]) for n, v in local.items() if n in official and official[n] != v}
    assert drift == {"pytest": ("9.2.0", "8.4.1")}  # requirements-dev.txt's pytest
    assert local.keys() - official.keys() == {
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "databricks-sdk",
        *NOT_IN_AIRFLOW_CONSTRAINTS,
    }
    requirements = _pins(PIPELINES / "requirements.txt")
    assert {n: local.get(n) for n in requirements} == requirements
    assert requirements["pytest"] == _pins(ROOT / "requirements-dev.txt")["pytest"]


def test_ml_only_imports_cover_the_ml_environment():
    """Every package of requirements-ml.txt that MWAA does not get marks the modules that
    import it as unbundleable (the DAG ships mlflow as mlflow-skinny, and jsonschema)."""
    shipped = {"mlflow", "jsonschema"}
    imports: dict[str, set[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            imports.setdefault(mb.canonical(dist), set()).add(top)
    for name in _pins(ROOT / "requirements-ml.txt").keys() - shipped:
        assert imports[name] & mb.ML_ONLY_IMPORTS, name
