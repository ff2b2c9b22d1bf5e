"""`make bfcl-data`'s extraction: digest first, then only bfcl_eval/data/ (no network here)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from training.bfcl_data import extract_data


def _wheel(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bfcl_eval/data/BFCL_v4_simple_python.json", '{"id": "x"}\n')
        archive.writestr("bfcl_eval/data/possible_answer/BFCL_v4_simple_python.json", "{}\n")
        archive.writestr("bfcl_eval/eval_checker/ast_checker.py", "print('code')\n")
        archive.writestr("bfcl_eval/data/../../escape.txt", "no")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_only_the_data_folder_is_extracted(tmp_path: Path):
    wheel = tmp_path / "bfcl_eval-1-py3-none-any.whl"
    digest = _wheel(wheel)
    dest = tmp_path / "out"
    assert extract_data(wheel, dest, digest) == 2
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [
        "BFCL_v4_simple_python.json",
        "VERSION",
        "possible_answer/BFCL_v4_simple_python.json",
    ]


def test_a_wrong_digest_writes_nothing(tmp_path: Path):
    wheel = tmp_path / "bfcl_eval-1-py3-none-any.whl"
    _wheel(wheel)
    with pytest.raises(ValueError, match="sha256"):
        extract_data(wheel, tmp_path / "out", "0" * 64)
    assert not (tmp_path / "out").exists()
