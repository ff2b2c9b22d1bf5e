"""Reference log-probs for full-fine-tuning DPO, computed once before training and stored with the
prepared data, so no second model ever sits in memory.

The pass runs the initial model over every pack (ranks split the packs, no gradients) and writes
one safetensors file per chunk of packs under ``<data>/reference/<key>/``; a pass that is cut off
resumes from the chunks already written, as training resumes from its checkpoints. ``key`` hashes
what the numbers depend on: the model's weight files (names, sizes and headers), the data's
fingerprint, the precision and the row layout. When the data folder is not writable (read-only
FSx, an S3 mirror) the files go under the run's output folder instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.packing import Pack
from training.data.preference import pairs_in
from training.file_modes import honour_umask
from training.loop import distributed

CHUNK_PACKS = 256
DONE = "complete.json"


def model_key(model_dir: str | Path) -> str:
    """A digest of the weights' identity: file names, sizes and the safetensors headers (which
    list every tensor's offsets), cheap even for an 8 GB model."""
    digest = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
        with f.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            digest.update(fh.read(min(n, 1 << 24)))
    return digest.hexdigest()[:16]


def reference_key(model_dir: str | Path, data_sha: str, *, bf16: bool, share_prompt: bool) -> str:
    blob = json.dumps([model_key(model_dir), data_sha, bf16, share_prompt]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def reference_dir(data_path: str, output_dir: str, key: str) -> Path:
    """``<data>/reference/<key>`` if that folder can be written, else under the output folder."""
    data = Path(data_path)
    base = data if data.is_dir() and os.access(data, os.W_OK) else Path(output_dir)
    return base / "reference" / key


class ReferenceTable:
    """Precomputed (chosen, rejected) reference log-probs of every pair, by pack index."""

    def __init__(self, per_pack: list[np.ndarray]) -> None:
        self.per_pack = per_pack

    def lookup(self, indices: tuple[int, ...]) -> np.ndarray:
        """`[pairs, 2]` for packs `indices` laid end to end, as `PackLoader` lays them."""
        return np.concatenate([self.per_pack[i] for i in indices])


def compute_or_load(
    source: Any,
    log_probs: Callable[[Pack], torch.Tensor],
    directory: Path,
    world: distributed.World,
) -> ReferenceTable:
    """Load the table from `directory`, computing (and writing) any chunk it lacks."""
    from safetensors.numpy import load_file, save_file

    n = len(source)
    chunks = range(0, n, CHUNK_PACKS)
    if world.is_main:
        directory.mkdir(parents=True, exist_ok=True)
    distributed.barrier(world)
    done = (directory / DONE).is_file()
    todo = [c for c in chunks if not done and not (directory / _chunk_name(c)).is_file()]
    if todo and world.is_main:
        print(
            f"reference log-probs: {len(todo)} of {len(chunks)} chunks to compute into {directory}",
            file=sys.stderr,
            flush=True,
        )
    for start in todo:
        stop = min(start + CHUNK_PACKS, n)
        mine = {
            i: log_probs(source[i]).double().cpu().numpy()
            for i in range(start + world.rank, stop, world.size)
        }
        gathered = distributed.all_gather_object(mine, world)
        if world.is_main:
            merged = {str(i): v for part in gathered for i, v in part.items()}
            tmp = directory / f".{_chunk_name(start)}.tmp"
            save_file(merged, str(tmp))
            honour_umask(tmp)
            os.replace(tmp, directory / _chunk_name(start))
        distributed.barrier(world)
    if world.is_main and not done:
        (directory / DONE).write_text(json.dumps({"packs": n}) + "\n", encoding="utf-8")
    per_pack: list[np.ndarray] = [np.empty(0)] * n
    for start in chunks:
        for name, v in load_file(str(directory / _chunk_name(start))).items():
            per_pack[int(name)] = v
    for i in range(n):
        if per_pack[i].shape != (pairs_in(source[i].seq_lens), 2):
            raise ValueError(
                f"{directory}: reference log-probs of pack {i} do not match its pairs; delete the "
                "folder to recompute them"
            )
    return ReferenceTable(per_pack)


def _chunk_name(start: int) -> str:
    return f"packs-{start:08d}.safetensors"
