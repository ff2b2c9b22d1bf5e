"""Pack shards (written by safetensors, which creates files 0600) get the umask's usual modes."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.data.packing import pack_sequences, write_packs
from training.file_modes import honour_umask


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_027")
def test_pack_shards_follow_the_umask(tmp_path: Path) -> None:
    packs = pack_sequences([([1, 2, 3], [-100, 2, 3]), ([4, 5], [4, 5])], capacity=8)
    manifest = write_packs(tmp_path / "data", packs, pack_length=8)
    shard = next(manifest.parent.glob("packs-*.safetensors"))
    assert _mode(shard) == 0o640  # not safetensors' 0600
    assert _mode(manifest) == 0o640


@pytest.mark.usefixtures("umask_027")
def test_honour_umask_walks_a_directory(tmp_path: Path) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    weights = tmp_path / "out" / "sub" / "w.bin"
    weights.write_bytes(b"x")
    weights.chmod(0o600)
    honour_umask(tmp_path / "out")
    assert _mode(weights) == 0o640
    assert _mode(tmp_path / "out" / "sub") == 0o750
