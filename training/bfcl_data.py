"""BFCL's own test data, pinned: the ``bfcl-eval`` wheel fetched without its dependencies,
checked against a recorded sha256, and only ``bfcl_eval/data/`` kept, under ``.cache/bfcl/``.

    python -m training.bfcl_data            # what `make bfcl-data` runs

bfcl-eval pulls in API SDKs and model runtimes we do not need; the data and the rules are all
that `training.bfcl` reads, so the wheel is downloaded with ``--no-deps`` and never installed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from core import cli

BFCL_VERSION = "2026.3.23"  # newest on PyPI when pinned; bump both lines together
BFCL_WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
DATA_PREFIX = "bfcl_eval/data/"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bfcl"


def default_data_dir() -> Path:
    """Where `make bfcl-data` puts the pinned version's data files."""
    return CACHE / BFCL_VERSION


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(into: Path, version: str = BFCL_VERSION) -> Path:
    """The bfcl-eval wheel, downloaded alone (``--no-deps``) with this interpreter's pip."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    subprocess.run([*pip, f"bfcl-eval=={version}", "-d", str(into)], check=True)
    wheels = sorted(into.glob(f"bfcl_eval-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip left no bfcl_eval-{version} wheel in {into}")
    return wheels[0]


def extract_data(wheel: Path, dest: Path, sha256: str = BFCL_WHEEL_SHA256) -> int:
    """Check `wheel`'s digest, then write its ``bfcl_eval/data/`` files under `dest`; returns
    how many. A digest mismatch raises before anything is written."""
    actual = sha256_of(wheel)
    if actual != sha256:
        raise ValueError(f"{wheel.name}: sha256 {actual}, expected {sha256} (pinned)")
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            relative = member.filename.removeprefix(DATA_PREFIX)
            if member.is_dir() or relative == member.filename or ".." in Path(relative).parts:
                continue
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    (dest / "VERSION").write_text(f"bfcl-eval {BFCL_VERSION}\nsha256 {sha256}\n", encoding="utf-8")
    return count


def fetch(dest: Path | None = None) -> Path:
    """Download, check and extract the pinned data into `dest` (default: the cache); a folder
    that already holds it is left alone."""
    dest = dest or default_data_dir()
    if (dest / "VERSION").is_file():
        return dest
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        extract_data(download_wheel(Path(tmp)), staging)
    staging.replace(dest)  # a half-written cache never looks complete
    return dest


@dataclass(frozen=True)
class BfclDataArgs:
    dest: Path | None = field(
        default=None,
        metadata={
            "positional": True,
            "help": "where to put the data (default: .cache/bfcl/<version>)",
        },
    )


parse_args = cli.args_parser(BfclDataArgs, __doc__, module="training.bfcl_data")


def main(args: BfclDataArgs) -> int:
    path = fetch(args.dest)
    print(f"bfcl-data: bfcl-eval {BFCL_VERSION} data in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
