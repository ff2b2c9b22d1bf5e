"""Packing that streams: tokenised rows go to disk as they are made, only their lengths stay in
memory, and the packs are written by reading the rows back.

Best-fit packing needs every length before it can place the first row, so `training.prepare`
used to hold every row's ids and labels until the input ended (about 21 bytes a token). Here each
process that tokenises (the main one, or each worker) appends its rows to a file of its own in a
spill folder, one ``write`` per batch (a row: its ids then its labels, little-endian int32), and
hands back only where each row went (`SpilledRows`). The main process keeps, per row, the file,
the byte offset, the length and (for preference pairs) the three segment lengths (`SpillIndex`),
runs the same `best_fit` over the lengths, and writes each shard by reading its rows back with
``pread`` (`write_spilled_packs`): memory is a few bytes a row plus one pack, whatever the size
of the input, and no token crosses a process boundary.

The shards are byte for byte what `packing.write_packs` writes for the same packs: the same
safetensors layout (header tensors sorted by dtype size, then name; header padded with spaces to
8 bytes; data in header order), written a pack at a time instead of from whole arrays
(`tests/training/test_prepare_streaming.py` checks both against ``safetensors.numpy.save_file``
and the old in-memory packing).
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data.packing import IGNORE_INDEX, write_manifest
from training.file_modes import honour_umask

TOKEN = np.dtype("<i4")  # spilled ids and labels: what the shards store (safetensors "I32")
OFFSET = np.dtype("<i8")  # the shards' pack offsets ("I64")
_SAFETENSORS_DTYPES = {TOKEN: "I32", OFFSET: "I64"}


@dataclass
class SpilledRows:
    """Where one batch's rows went: small enough to send back from a worker process."""

    file: str  # name of the spill file, inside the spill folder
    offsets: np.ndarray  # int64 byte offset of each row (its ids, then its labels)
    lengths: np.ndarray  # int32 tokens of each row
    segments: np.ndarray  # int32 [rows x width] segment lengths (pairs: prompt, chosen, rejected)
    loss_tokens: int  # labels that are not IGNORE_INDEX, over all rows


class SpillWriter:
    """Appends rows to this process's own file in `directory` (created exclusively, 0600)."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self.name = name or f"rows-{os.getpid()}.bin"
        self._fd = os.open(directory / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0

    def write(
        self, rows: Sequence[tuple[Any, Any]], segments: Sequence[Sequence[int]]
    ) -> SpilledRows:
        """Append `(ids, labels)` rows, each with its segment lengths (summing to its length),
        in one write; the file holds them before this returns, so another process may read
        them as soon as it has the answer."""
        arrays: list[np.ndarray] = []
        lengths: list[int] = []
        loss = 0
        for ids, labels in rows:
            a, b = np.asarray(ids, dtype=TOKEN), np.asarray(labels, dtype=TOKEN)
            if a.shape != b.shape or a.ndim != 1:
                raise ValueError(f"a row has {a.shape} input_ids but {b.shape} labels")
            arrays += (a, b)
            lengths.append(len(a))
            loss += int(np.count_nonzero(b != IGNORE_INDEX))
        n = np.asarray(lengths, dtype=np.int64)
        offsets = self.size + 2 * TOKEN.itemsize * (np.cumsum(n) - n)
        if arrays:
            _write_all(self._fd, np.concatenate(arrays).data.cast("B"))
            self.size += int(n.sum()) * 2 * TOKEN.itemsize
        seg = np.asarray(segments, dtype=np.int32).reshape(len(lengths), -1 if lengths else 1)
        if not np.array_equal(seg.sum(axis=1), n):
            raise ValueError("segment lengths do not add up to the rows' lengths")
        return SpilledRows(self.name, offsets, n.astype(np.int32), seg, loss)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


class SpillIndex:
    """The main process's record of every spilled row, in input order: a few bytes a row."""

    def __init__(self, directory: Path, width: int = 1) -> None:
        self.directory = directory
        self.width = width  # segments a row: 1 for a sequence, 3 for a preference pair
        self.files: list[str] = []
        self._file_ids: dict[str, int] = {}
        self.file = array("H")
        self.offsets = array("q")
        self.lengths = array("i")
        self.segments = array("i")  # width values a row, only when width > 1
        self.bytes = 0
        self.loss_tokens = 0  # labels that are not IGNORE_INDEX, over every row

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, rows: SpilledRows) -> None:
        if rows.segments.size and rows.segments.shape[1] != self.width:
            raise ValueError(f"rows of {rows.segments.shape[1]} segments, expected {self.width}")
        fid = self._file_ids.setdefault(rows.file, len(self.files))
        if fid == len(self.files):
            self.files.append(rows.file)
        self.file.extend([fid] * len(rows.lengths))
        self.offsets.frombytes(rows.offsets.astype(np.int64).tobytes())
        self.lengths.frombytes(rows.lengths.astype(np.int32).tobytes())
        if self.width > 1:
            self.segments.frombytes(rows.segments.astype(np.int32).tobytes())
        self.bytes += int(rows.lengths.sum(dtype=np.int64)) * 2 * TOKEN.itemsize
        self.loss_tokens += rows.loss_tokens

    def row_segments(self, i: int) -> Sequence[int]:
        if self.width == 1:
            return (self.lengths[i],)
        return self.segments[i * self.width : (i + 1) * self.width]


class SpillReader:
    """Reads spilled rows back with ``pread`` (no mapping: the page cache never counts as this
    process's memory)."""

    def __init__(self, index: SpillIndex) -> None:
        self.index = index
        self._fds: list[int] = []
        for name in index.files:
            self._fds.append(os.open(index.directory / name, os.O_RDONLY))

    def ids(self, i: int) -> bytes:
        return self._read(i, 0)

    def labels(self, i: int) -> bytes:
        return self._read(i, 1)

    def _read(self, i: int, part: int) -> bytes:
        n = self.index.lengths[i] * TOKEN.itemsize
        offset = self.index.offsets[i] + part * n
        data = os.pread(self._fds[self.index.file[i]], n, offset)
        if len(data) != n:
            raise OSError(f"spill file {self.index.files[self.index.file[i]]}: short read")
        return data

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> SpillReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_spilled_packs(
    directory: Path,
    bins: Sequence[Sequence[int]],
    index: SpillIndex,
    *,
    pack_length: int,
    packs_per_shard: int = 4096,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """`packing.write_packs` for packs given as `bins` of spilled rows: the same shard files,
    each written a pack at a time from the spill, and the same manifest. ``bins`` place every
    spilled row once (the manifest's loss tokens are the index's)."""
    placed = np.bincount(
        np.fromiter(itertools.chain.from_iterable(bins), dtype=np.int64), minlength=len(index)
    )
    if len(placed) != len(index) or not (placed == 1).all():
        raise ValueError(f"bins must place each of the {len(index)} spilled rows once")
    directory.mkdir(parents=True, exist_ok=True)
    shards, tokens, sequences = [], 0, 0
    with SpillReader(index) as reader:
        for s, start in enumerate(range(0, len(bins), packs_per_shard)):
            chunk = bins[start : start + packs_per_shard]
            name = f"packs-{s:05d}.safetensors"
            tmp = directory / f".{name}.tmp"
            shard = _write_shard(tmp, chunk, index, reader)
            honour_umask(tmp)
            os.replace(tmp, directory / name)
            shards.append({"file": name, "packs": len(chunk)})
            tokens += shard["tokens"]
            sequences += shard["sequences"]
    return write_manifest(
        directory,
        pack_length=pack_length,
        num_packs=len(bins),
        num_sequences=sequences,
        num_tokens=tokens,
        num_loss_tokens=index.loss_tokens,
        shards=shards,
        metadata=metadata,
    )


def _write_shard(
    path: Path, chunk: Sequence[Sequence[int]], index: SpillIndex, reader: SpillReader
) -> dict[str, int]:
    """One shard: write_packs' five tensors, streamed; returns its token and sequence counts."""
    lengths = index.lengths
    pack_tokens = [sum(lengths[i] for i in members) for members in chunk]
    seq_lens = np.asarray(
        [n for members in chunk for i in members for n in index.row_segments(i)], dtype=TOKEN
    )
    pack_seqs = [sum(len(index.row_segments(i)) for i in members) for members in chunk]

    def rows(read: Callable[[int], bytes]) -> Iterator[bytes]:
        for members in chunk:
            yield b"".join([read(i) for i in members])

    total = sum(pack_tokens)
    tensors: dict[str, tuple[np.dtype[Any], int, Callable[[], Iterator[bytes]]]] = {
        "input_ids": (TOKEN, total, lambda: rows(reader.ids)),
        "labels": (TOKEN, total, lambda: rows(reader.labels)),
        "seq_lens": (TOKEN, len(seq_lens), lambda: iter([seq_lens.tobytes()])),
        "pack_token_offsets": _small(np.cumsum([0, *pack_tokens]).astype(OFFSET)),
        "pack_seq_offsets": _small(np.cumsum([0, *pack_seqs]).astype(OFFSET)),
    }
    save_streamed(path, tensors)
    return {"tokens": total, "sequences": len(seq_lens)}


def _small(values: np.ndarray) -> tuple[np.dtype[Any], int, Callable[[], Iterator[bytes]]]:
    return values.dtype, len(values), lambda: iter([values.tobytes()])


def safetensors_header(tensors: dict[str, tuple[np.dtype[Any], int]]) -> tuple[bytes, list[str]]:
    """The header safetensors writes for these 1-D tensors (``{name: (dtype, length)}``), and
    the order their data follows it in: by dtype size, largest first, then by name; compact
    JSON, padded with spaces to a multiple of 8 bytes, after its length as a little-endian u64."""
    order = sorted(tensors, key=lambda k: (-tensors[k][0].itemsize, k))
    header, at = {}, 0
    for name in order:
        dtype, n = tensors[name]
        size = n * dtype.itemsize
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": [n],
            "data_offsets": [at, at + size],
        }
        at += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, order


def save_streamed(
    path: Path, tensors: dict[str, tuple[np.dtype[Any], int, Callable[[], Iterator[bytes]]]]
) -> None:
    """Write a safetensors file of 1-D tensors whose data comes in chunks
    (``{name: (dtype, length, chunks)}``), never held whole."""
    header, order = safetensors_header({k: (d, n) for k, (d, n, _) in tensors.items()})
    with path.open("wb", buffering=1 << 20) as f:
        f.write(header)
        for name in order:
            dtype, n, chunks = tensors[name]
            written = 0
            for data in chunks():
                f.write(data)
                written += len(data)
            if written != n * dtype.itemsize:
                raise ValueError(f"{path}: {name} got {written} bytes, not {n * dtype.itemsize}")


def remove_spill(directory: Path) -> None:
    """Delete the spill folder and everything in it (rows of any process)."""
    if directory.is_dir():
        for item in directory.iterdir():
            item.unlink(missing_ok=True)
        directory.rmdir()
