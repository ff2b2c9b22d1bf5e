"""Outputs get the modes the user's umask gives any other file.

safetensors creates its files 0600 whatever the umask, so pack shards, checkpoints and exported
weights would be unreadable to the teammates and the serving role that share the folder.
"""

import os
from pathlib import Path

_FILE, _DIR = 0o666, 0o777


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def honour_umask(*paths: Path) -> None:
    """chmod each file (and, for a directory, everything under it) as ``open()`` would have."""
    mask = _umask()
    for path in paths:
        items = [path, *path.rglob("*")] if path.is_dir() else [path]
        for item in items:
            item.chmod((_DIR if item.is_dir() else _FILE) & ~mask)
