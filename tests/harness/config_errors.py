"""One way for config tests to break a field of a BU and check the loader's one-line error
(``file: field.path: reason``), shared by the tables of cases in tests/unit/test_*config.py."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_all

DELETE = object()
"""A ``set_dotted`` value that removes the field instead of setting it."""


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, with ``DELETE``, remove) the field at ``dotted`` in ``raw``: a table of cases
    names a field as the error does, list items by their index (``quotas.0.gpus``)."""
    *parents, leaf = dotted.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def assert_rejected(path: Path, error_path: str, words: str) -> None:
    """Loading ``path`` loads nothing, and one error line names the file and ``error_path`` and
    holds ``words``."""
    loaded, errors = load_all([path])
    assert loaded == []  # nothing to synthesize from
    lines = [str(e) for e in errors]
    assert any(line.startswith(f"{path}: {error_path}: ") and words in line for line in lines), (
        lines
    )


def mistake(what: str, field: str, value: Any, words: str, *, at: str | None = None) -> Any:
    """A row for ``assert_case_rejected``, with ``what`` as its test ID: ``field`` set to ``value``
    is rejected with ``words``, the error naming ``at`` (``field`` itself unless given)."""
    return pytest.param((what, field, value, at or field, words), id=what)


def assert_case_rejected(
    write_bu: Callable[..., Path], raw: dict[str, Any], case: tuple[Any, ...]
) -> None:
    """One row of a table of mistakes, ``(what, field, value, error path, words)``: ``raw`` with
    ``field`` set to ``value`` is rejected naming the error path and the words."""
    _, field, value, error_path, words = case
    set_dotted(raw, field, value)
    assert_rejected(write_bu(raw), error_path, words)
