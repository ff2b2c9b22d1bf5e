"""``make mwaa-bundle BU=<bu>``: what BU's Amazon MWAA environment reads from its source bucket
(``Naming.airflow_bucket``), written to ``build/mwaa/<bu>/``.

Three parts:
- ``requirements.txt``: the DAG's packages that MWAA's Airflow 3.0.6 image does not install,
  pinned, installed from ``plugins.zip`` only (``--no-index --find-links
  /usr/local/airflow/plugins``) under a constraints file in the DAG folder. The environment has
  no internet, so the constraints URL MWAA adds to a requirements file without one could not
  be fetched either.
- ``plugins.zip``: those packages and their dependencies as wheels for MWAA's platform (CPython
  3.12 on Amazon Linux 2023, x86_64), flat at the zip's root; wheels of what the image already
  has (Airflow's own closure and ``MWAA_PROVIDES``) are left out.
- ``dags/``: the DAG file (pipelines/mwaa_dag.py) as ``<bu>_model_lifecycle.py``, MWAA's
  constraints file, and the repo modules the DAG imports with the data files they name
  (``config/`` with this BU's YAML only, which the DAG file reads). The import closure is
  computed from the sources: a module whose module-level imports reach the ML stack
  (``ML_ONLY_IMPORTS``: torch, transformers, ...) is left out and listed, since MWAA cannot
  import it (the DAG runs that code in the training image, not in Airflow). ``.airflowignore``
  keeps Airflow from parsing the packages as DAG files.

    python -m scripts.mwaa_bundle --bu fraud [--out build/mwaa/fraud]

``pip download`` needs PyPI, so this is no part of ``make test``; tests/unit/test_mwaa_bundle.py
checks the rest offline. It prints the ``aws s3 sync`` that uploads the folder; the uploaded
objects' versions then go into the BU's ``pipeline.plugins_version`` and
``pipeline.requirements_version``.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core import cli

ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = ROOT / "pipelines" / "mwaa_dag.py"  # dags_from(its folder / "config")
PIPELINE_REQUIREMENTS = ROOT / "pipelines" / "requirements.txt"
MWAA_CONSTRAINTS = ROOT / "pipelines" / "mwaa-constraints-3.0.6-py3.12.txt"

MWAA_PLUGINS_DIR = "/usr/local/airflow/plugins"
MWAA_DAGS_DIR = "/usr/local/airflow/dags"
# MWAA's Airflow 3.0.6 image: CPython 3.12 on Amazon Linux 2023 (glibc 2.34), x86_64. pip 23
# expands manylinux2014 to the older manylinux tags but no newer one, hence both.
MWAA_PYTHON_VERSION = "3.12"
MWAA_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
# Installed in MWAA's 3.0.6 image at exactly the pins of pipelines/requirements.txt (its bill of
# materials: aws/amazon-mwaa-docker-images, images/airflow/3.0.6/BillOfMaterials/3.0.6/
# Python-Packages-BOM.txt): .venv-pipeline needs them listed, MWAA does not.
MWAA_PROVIDES = (
    "apache-airflow",
    "apache-airflow-providers-amazon",
    "fastapi",
    "cadwyn",
    "boto3",
    "pydantic",
    "pyyaml",
    "jsonschema",
)
LOCAL_ONLY = ("pytest",)  # tests/pipeline's, never the DAG's
# Pins of MWAA's constraints that exist only as sdists, which `pip download` for another
# platform cannot take: the resolve uses a release with a wheel in their place. They are
# Airflow's own dependencies, installed in MWAA's image, so their wheels must be among those
# left out of plugins.zip (checked).
SDIST_ONLY_PINS = {"dill": "0.3.9"}  # Airflow 3.0.6 pins dill==0.3.1.1 (2019, no wheel)
# The ML environment's packages (requirements-ml.txt, and numpy under them) as import names:
# neither MWAA nor .venv-pipeline has them.
ML_ONLY_IMPORTS = frozenset(
    {
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "accelerate",
        "peft",
        "trl",
        "datasets",
        "tqdm",
        "sagemaker",
        "openai",
        "numpy",
    }
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


class BundleError(Exception):
    """The bundle cannot be built; the message is the one line to print."""


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, tuple[str, str]]:
    """``canonical name -> (name as written, version)`` of a requirements or constraints file;
    every requirement line must be an exact ``name==version``."""
    pins: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise BundleError(f"{path.name}:{number}: {line!r} is not an exact name==version pin")
        pins[canonical(match[1])] = (match[1], match[2])
    return pins


def mwaa_requirements(pipeline_pins: Path, constraints: Path) -> list[str]:
    """The ``name==version`` lines MWAA installs: the pipeline's pins less ``MWAA_PROVIDES`` and
    ``LOCAL_ONLY``, each checked against MWAA's constraints where those pin it."""
    constrained = read_pins(constraints)
    lines = []
    for key, (name, version) in read_pins(pipeline_pins).items():
        if key in {canonical(n) for n in (*MWAA_PROVIDES, *LOCAL_ONLY)}:
            continue
        if key in constrained and constrained[key][1] != version:
            raise BundleError(
                f"{pipeline_pins.name} pins {name}=={version}, MWAA's constraints "
                f"{constrained[key][1]}: MWAA would refuse the requirements"
            )
        lines.append(f"{name}=={version}")
    return lines


def requirements_text(bu: str, lines: Sequence[str], constraints_name: str) -> str:
    header = (
        f"# Amazon MWAA requirements for BU {bu}, written by scripts/mwaa_bundle.py from\n"
        "# pipelines/requirements.txt: wheels from plugins.zip only, under MWAA's constraints.\n"
    )
    options = (
        "--no-index\n"
        f"--find-links {MWAA_PLUGINS_DIR}\n"
        f'--constraint "{MWAA_DAGS_DIR}/{constraints_name}"\n'
    )
    return header + options + "".join(f"{line}\n" for line in lines)


# --- the DAG's import closure --------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportVisitor(ast.NodeVisitor):
    """Every import statement, and whether it runs when the module is imported (``eager``) or
    only when a function is called (lazy). ``if TYPE_CHECKING:`` bodies never run."""

    def __init__(self) -> None:
        self.depth = 0
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self.strings: set[str] = set()

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._nested(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._nested(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._nested(node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self.depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self.depth == 0))

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and 0 < len(node.value) < 200:
            self.strings.add(node.value)


@dataclass
class _Module:
    name: str
    file: Path
    eager: set[str] = field(default_factory=set)  # local modules run on import (parents too)
    lazy: set[str] = field(default_factory=set)  # local modules imported inside functions
    ml_imports: set[str] = field(default_factory=set)  # ML_ONLY_IMPORTS it imports on import
    lazy_ml: set[str] = field(default_factory=set)  # ML_ONLY_IMPORTS inside its functions
    strings: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Closure:
    """The repo modules a DAG file needs, by module name; those left out, with why; the data
    files the modules name; and the bundled modules whose functions import the ML stack (those
    functions fail on MWAA)."""

    modules: dict[str, Path]
    excluded: dict[str, str]
    data_files: tuple[Path, ...]
    lazy_ml: dict[str, tuple[str, ...]]


def _module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_name(base.name + ".py").is_file():
        return base.with_name(base.name + ".py")
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _module_name(file: Path, root: Path) -> str:
    try:
        relative = file.resolve().relative_to(root.resolve())
    except ValueError:
        return "__dag__"  # a DAG file outside the repo (tests) has no package
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _scan(name: str, file: Path, root: Path) -> _Module:
    visitor = _ImportVisitor()
    visitor.visit(ast.parse(file.read_text(), filename=str(file)))
    module = _Module(name, file, strings=visitor.strings)
    is_package = file.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    for node, eager in visitor.found:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            targets = [target, *(f"{target}.{a.name}" for a in node.names if a.name != "*")]
        for target in targets:
            if not target:
                continue
            if _module_file(target, root) is None:
                top = target.split(".")[0]
                if top in ML_ONLY_IMPORTS:
                    (module.ml_imports if eager else module.lazy_ml).add(top)
                continue
            wanted = [*_parents(target), target]
            (module.eager if eager else module.lazy).update(
                m for m in wanted if _module_file(m, root) is not None
            )
    module.eager.update(p for p in _parents(name) if _module_file(p, root) is not None)
    return module


def _graph(dag_name: str, dag_file: Path, root: Path) -> dict[str, _Module]:
    """Every repo module reachable from the DAG over any import, eager or lazy, scanned once.
    The DAG runs as a top-level file on MWAA: its own parent packages are not imported."""
    dag = _scan(dag_name, dag_file, root)
    dag.eager.difference_update(_parents(dag_name))
    graph = {dag_name: dag}
    order = [dag_name]
    for name in order:
        for target in sorted(graph[name].eager | graph[name].lazy):
            file = _module_file(target, root)
            if target not in graph and file is not None:
                graph[target] = _scan(target, file, root)
                order.append(target)
    return graph


def _ml_reasons(graph: dict[str, _Module]) -> dict[str, str]:
    """The modules that pull the ML stack in when imported, through any chain of eager
    imports, each with the first link of that chain."""
    why = {n: f"imports {min(m.ml_imports)}" for n, m in graph.items() if m.ml_imports}
    changed = True
    while changed:
        changed = False
        for name, module in graph.items():
            blocked = sorted(module.eager & why.keys())
            if name not in why and blocked:
                why[name] = f"imports {blocked[0]} ({why[blocked[0]]})"
                changed = True
    return why


def import_closure(dag_file: Path, root: Path = ROOT) -> Closure:
    """The repo modules ``dag_file`` imports, directly or through others, eagerly or inside
    functions, less those that need the ML stack when imported; and the data files they name."""
    dag_name = _module_name(dag_file, root)
    graph = _graph(dag_name, dag_file, root)
    why = _ml_reasons(graph)
    if dag_name in why:
        raise BundleError(f"the DAG file {why[dag_name]}: MWAA cannot import it")
    # The bundle: what is reachable without passing through a module that needs the ML stack.
    kept: dict[str, Path] = {}
    excluded: dict[str, str] = {}
    frontier = [dag_name]
    while frontier:
        name = frontier.pop()
        if name in kept:
            continue
        kept[name] = graph[name].file
        for target in graph[name].eager | graph[name].lazy:
            if target in why:
                excluded[target] = why[target]
            elif target not in kept:
                frontier.append(target)
    kept.pop(dag_name)
    data = sorted({f for n, p in kept.items() for f in _data_files(p, graph[n].strings, root)})
    lazy_ml = {n: tuple(sorted(graph[n].lazy_ml)) for n in sorted(kept) if graph[n].lazy_ml}
    return Closure(dict(sorted(kept.items())), dict(sorted(excluded.items())), tuple(data), lazy_ml)


def _data_files(module_file: Path, strings: Iterable[str], root: Path) -> list[Path]:
    """Files beside a module, or in a non-package folder under it, that it names in a string
    (``Path(__file__).parent / "schema" / "x.json"``, ``with_name("lmi_images.json")``).
    Config YAML files are never data: the bundle carries the one BU's file on its own."""
    names = {s for s in strings if "/" not in s and "." in s.strip(".")}
    found: list[Path] = []
    directory = module_file.parent
    for path in directory.rglob("*"):
        if not path.is_file() or path.name not in names or path.suffix in {".py", ".pyc"}:
            continue
        between = path.parent.relative_to(directory).parts
        packages = (directory.joinpath(*between[: i + 1]) for i in range(len(between)))
        if any((folder / "__init__.py").is_file() for folder in packages):
            continue  # inside a sub-package: its own modules name their files
        if path.suffix in {".yaml", ".yml"} and path.parent == root / "config":
            continue
        found.append(path)
    return found


# --- the bundle ----------------------------------------------------------------------------

Download = Callable[[Sequence[str], Path, Path], None]


def download_wheels(specs: Sequence[str], dest: Path, constraints: Path) -> None:
    """``pip download`` ``specs`` and their dependencies into ``dest`` as MWAA-platform wheels."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", MWAA_PYTHON_VERSION,
        *(f"--platform={platform}" for platform in MWAA_PLATFORMS),
        "--constraint", str(constraints), "--dest", str(dest), *specs,
    ]  # fmt: skip
    if subprocess.run(command, check=False).returncode != 0:
        raise BundleError(f"pip download failed for {' '.join(specs)} (output above)")


@dataclass(frozen=True)
class Bundle:
    out: Path
    requirements: list[str]
    wheels: list[str]
    closure: Closure


def _wheel_project(filename: str) -> str:
    return canonical(filename.split("-", 1)[0])


def wheel_only_constraints(text: str) -> str:
    """MWAA's constraints with each ``SDIST_ONLY_PINS`` pin replaced by its stand-in."""
    lines = []
    for line in text.splitlines(keepends=True):
        match = _PIN.match(line.strip())
        stand_in = SDIST_ONLY_PINS.get(canonical(match[1])) if match else None
        lines.append(line.replace(f"=={match[2]}", f"=={stand_in}") if match and stand_in else line)
    return "".join(lines)


def _shipped_wheels(
    lines: Sequence[str],
    pins: dict[str, tuple[str, str]],
    constraints: Path,
    download: Download,
    workdir: Path,
) -> list[Path]:
    """Wheels of ``lines`` and their dependencies, less those of what the MWAA image installs
    (the same resolve of ``MWAA_PROVIDES`` alone; the same constraints give the same files)."""
    provided = [f"{pins[canonical(n)][0]}=={pins[canonical(n)][1]}" for n in MWAA_PROVIDES]
    # With Airflow pinned, the providers' `apache-airflow>=2.10` cannot pick a newer release.
    airflow = f"apache-airflow=={pins['apache-airflow'][1]}"
    wanted, base = workdir / "wanted", workdir / "base"
    wanted.mkdir()
    base.mkdir()
    resolvable = workdir / constraints.name
    resolvable.write_text(wheel_only_constraints(constraints.read_text()))
    download([airflow, *lines], wanted, resolvable)
    download(provided, base, resolvable)
    others = sorted(p.name for p in wanted.iterdir() if p.suffix != ".whl")
    if others:
        raise BundleError(f"pip download brought files that are not wheels: {', '.join(others)}")
    have = {p.name for p in base.iterdir()}
    keep = sorted((p for p in wanted.iterdir() if p.name not in have), key=lambda p: p.name)
    missing = sorted(
        line for line in lines if canonical(line.split("==")[0]) not in
        {_wheel_project(p.name) for p in keep}
    )  # fmt: skip
    if missing:
        raise BundleError(f"no wheel in plugins.zip for {', '.join(missing)}")
    stand_ins = sorted(p.name for p in keep if _wheel_project(p.name) in SDIST_ONLY_PINS)
    if stand_ins:
        raise BundleError(f"{', '.join(stand_ins)} would ship in place of the constraints' pin")
    return keep


def _write_zip(path: Path, files: Iterable[Path]) -> None:
    """Flat at the root (MWAA unpacks plugins.zip into /usr/local/airflow/plugins), with fixed
    timestamps: the same wheels give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            info = zipfile.ZipInfo(file.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes())


def dag_file_name(bu: str) -> str:
    return f"{bu.replace('-', '_')}_model_lifecycle.py"


def _write_dags(
    dags: Path,
    *,
    bu: str,
    dag_file: Path,
    config_file: Path,
    constraints: Path,
    closure: Closure,
    root: Path,
) -> None:
    dags.mkdir(parents=True)
    shutil.copy2(dag_file, dags / dag_file_name(bu))
    shutil.copy2(constraints, dags / constraints.name)
    for file in (*closure.modules.values(), *closure.data_files):
        target = dags / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    configs = root / "training" / "configs"
    if any(name.startswith("pipelines") for name in closure.modules) and configs.is_dir():
        # The training configs the pipeline's train.config names (the image ships the same
        # folder): the DAG validates the one it submits before any job exists.
        shutil.copytree(configs, dags / "training" / "configs", dirs_exist_ok=True)
    if "config" in closure.modules:
        # The one BU's YAML: the bundled loader's config_files() finds it and no other.
        shutil.copy2(config_file, dags / "config" / config_file.name)
    # Airflow parses every .py under the DAGs folder that mentions "airflow" and "dag"; the
    # packages are imported by the DAG, not DAG files themselves (glob syntax, 3.0's default).
    packages = sorted({f.relative_to(root).parts[0] for f in closure.modules.values()})
    (dags / ".airflowignore").write_text("".join(f"{p}/\n" for p in packages))


def build(
    bu: str,
    config_file: Path,
    out: Path,
    *,
    dag_file: Path = DAG_FILE,
    root: Path = ROOT,
    requirements: Path = PIPELINE_REQUIREMENTS,
    constraints: Path = MWAA_CONSTRAINTS,
    download: Download = download_wheels,
) -> Bundle:
    """Write ``out``/{requirements.txt, plugins.zip, dags/} for BU ``bu``."""
    if not dag_file.is_file():
        raise BundleError(f"no DAG file at {dag_file}")
    # Airflow's DAG discovery safe mode (on by default, and on MWAA) skips a file whose text
    # lacks "airflow" and one of "dag"/"asset" (airflow.utils.file's default heuristic).
    text = dag_file.read_text().lower()
    if "airflow" not in text or not ("dag" in text or "asset" in text):
        raise BundleError(
            f"{dag_file.relative_to(root) if dag_file.is_relative_to(root) else dag_file} never "
            "says 'airflow' and 'dag': Airflow's DAG discovery safe mode would skip it on MWAA "
            "(name them, e.g. in its docstring)"
        )
    lines = mwaa_requirements(requirements, constraints)
    closure = import_closure(dag_file, root)
    with tempfile.TemporaryDirectory(prefix="mwaa-wheels-") as workdir:
        pins = read_pins(requirements)
        wheels = _shipped_wheels(lines, pins, constraints, download, Path(workdir))
        shutil.rmtree(out / "dags", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        _write_zip(out / "plugins.zip", wheels)
    (out / "requirements.txt").write_text(requirements_text(bu, lines, constraints.name))
    _write_dags(
        out / "dags",
        bu=bu,
        dag_file=dag_file,
        config_file=config_file,
        constraints=constraints,
        closure=closure,
        root=root,
    )
    return Bundle(out, lines, [w.name for w in wheels], closure)


def bu_source(bu: str) -> tuple[Path, str]:
    """The BU's config file and its MWAA source bucket; the BU must have a pipeline section."""
    from config.loader import config_files, display_path, load_file

    for path in config_files():
        config, _ = load_file(path)
        if config is not None and config.name == bu:
            if config.pipeline is None:
                raise BundleError(f"{display_path(path)} has no pipeline section: no MWAA for {bu}")
            return path, config.naming.airflow_bucket()
    raise BundleError(f"no valid config/*.yaml names BU {bu!r} (make validate says why)")


@dataclass(frozen=True)
class BundleArgs:
    bu: str = field(metadata={"help": "the business unit (config/<bu>.yaml)"})
    out: Path | None = field(default=None, metadata={"help": "default: build/mwaa/<bu>"})


parse_args = cli.args_parser(BundleArgs, __doc__, module="scripts.mwaa_bundle")


def main(args: BundleArgs) -> int:
    out: Path = args.out or ROOT / "build" / "mwaa" / args.bu
    try:
        config_file, bucket = bu_source(args.bu)
        bundle = build(args.bu, config_file, out, dag_file=DAG_FILE, download=download_wheels)
    except BundleError as err:
        print(f"mwaa-bundle: {err}", file=sys.stderr)
        return 1
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    size_mb = (out / "plugins.zip").stat().st_size / 2**20
    packages = sorted({f.relative_to(ROOT).parts[0] for f in bundle.closure.modules.values()})
    print(f"mwaa-bundle: {shown}/")
    print(f"  requirements.txt  {', '.join(bundle.requirements)}")
    print(f"  plugins.zip       {len(bundle.wheels)} wheels, {size_mb:.1f} MiB")
    print(
        f"  dags/             {dag_file_name(args.bu)}, {len(bundle.closure.modules)} modules of "
        f"{', '.join(packages)}, {len(bundle.closure.data_files)} data files, "
        f"{config_file.name}"
    )
    for name, why in bundle.closure.excluded.items():
        print(f"  left out          {name}: {why} (MWAA cannot import it)")
    for name, imports in bundle.closure.lazy_ml.items():
        print(f"  note              {name} imports {', '.join(imports)} inside a function")
    print("Upload (credentials of the BU's account), then put the two printed versions in")
    print(f"{config_file.relative_to(ROOT)} as pipeline.plugins_version and requirements_version:")
    print(f"  aws s3 sync {shown} s3://{bucket}")
    for key in ("plugins.zip", "requirements.txt"):
        print(
            f"  aws s3api head-object --bucket {bucket} --key {key} --query VersionId --output text"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
