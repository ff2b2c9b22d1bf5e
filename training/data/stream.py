"""Packs in, micro-batches out: a deterministic, rank-sharded, resumable stream of packed rows.

Sources: a packed directory (`training.prepare` output); a `prepare --no-pack` directory or any
JSONL with `input_ids`/`labels` rows; or JSONL `text` rows (continued pre-training), packed here
with the same best-fit packer. Preference sets (`prepare --task preference`, packed or JSONL
rows with `prompt_ids`/`chosen_ids`/`rejected_ids`) are a `kind` of their own: a trainer asks for
the kind it needs, and a set of the other kind is an error rather than silently misread.

Each epoch's order is a permutation seeded by (seed, epoch); rank r takes every world-th pack,
truncated so every rank runs the same number of micro-batches (no collective hangs). The position
is (epoch, cursor), saved in checkpoints, so a resumed run continues with exactly the packs the
uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from training.data.formats import TextDocument
from training.data.packing import MANIFEST, Pack, PackedDataset, pack_sequences
from training.data.preference import PREFERENCE, PairExample, pack_pairs
from training.data.render import encode_texts

SEQUENCES = "sequences"  # manifest `kind` of SFT / pre-training packs (the default)

UNPACKED = "train.jsonl"  # the file `training.prepare --no-pack` writes


def _read_jsonl(path: Path, *, tokenizer: Any, pack_length: int) -> list[tuple[Any, Any]]:
    seqs: list[tuple[Any, Any]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "input_ids" in row:
                ids = row["input_ids"]
                labels = row.get("labels", ids)
                if len(ids) > pack_length:
                    raise ValueError(
                        f"{path}:{n}: {len(ids)} tokens exceed pack_length {pack_length}; "
                        "re-run prepare with a matching max length"
                    )
                seqs.append((ids, labels))
            elif "text" in row:
                if tokenizer is None:
                    raise ValueError(f"{path}:{n}: raw `text` rows need a tokenizer")
                # The same encoding as `prepare --format text`: text + end-of-text, cut into
                # pack-sized documents.
                docs = [TextDocument(row["text"], n)]
                examples = encode_texts(tokenizer, docs, max_length=pack_length)
                seqs.extend((ex.input_ids, ex.labels) for ex in examples)
            else:
                hint = "; this is a preference set (objective: dpo)" if "prompt_ids" in row else ""
                raise ValueError(f"{path}:{n}: expected `input_ids` or `text`{hint}")
    return seqs


def _read_pairs(path: Path, *, pack_length: int) -> list[PairExample]:
    pairs = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "prompt_ids" not in row:
                raise ValueError(
                    f"{path}:{n}: expected `prompt_ids`/`chosen_ids`/`rejected_ids` (prepare "
                    f"--task preference --no-pack output){_wrong_kind_hint(row)}"
                )
            pair = PairExample.from_json(row)
            if pair.num_tokens > pack_length:
                raise ValueError(
                    f"{path}:{n}: the pair has {pair.num_tokens} tokens, more than pack_length "
                    f"{pack_length}; re-run prepare with a matching max length"
                )
            pairs.append(pair)
    return pairs


def _wrong_kind_hint(row: dict[str, Any]) -> str:
    return "; this looks like SFT data (objective: sft)" if "input_ids" in row else ""


def _wrong_kind(path: Path, found: str, wanted: str) -> str:
    need = "objective: dpo" if found == PREFERENCE else "objective: sft"
    task = "--task preference" if wanted == PREFERENCE else "--task sft"
    return (
        f"{path}: a {found} dataset, but this run trains on {wanted} data; set {need}, or "
        f"prepare the data with `python -m training.prepare {task}`"
    )


class PackSource(Protocol):
    """A `PackedDataset` or a list of packs."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Pack: ...


def open_source(
    path: str | Path, *, pack_length: int, tokenizer: Any = None, kind: str = SEQUENCES
) -> PackSource:
    """Packs from a packed directory or a JSONL file (packed on the fly to `pack_length`).

    A packed directory must have been packed to `pack_length`: a different budget would change
    the tokens per step behind the config's back, so it is an error, never silently ignored.
    `kind` is what the caller trains on (`SEQUENCES` or `PREFERENCE`).
    """
    p = Path(path)
    if (p / MANIFEST).is_file():
        packed = PackedDataset(p)
        found = packed.manifest.get("kind", SEQUENCES)
        if found != kind:
            raise ValueError(_wrong_kind(p, found, kind))
        if packed.pack_length != pack_length:
            raise ValueError(
                f"{p}: packed to {packed.pack_length} tokens per pack but data.pack_length is "
                f"{pack_length}; re-run `python -m training.prepare ... --max-length "
                f"{pack_length}` or set data.pack_length={packed.pack_length}"
            )
        return packed
    if p.is_dir() and (p / UNPACKED).is_file():  # `training.prepare --no-pack` output
        p = p / UNPACKED
    if p.is_file():
        if kind == PREFERENCE:
            return pack_pairs(_read_pairs(p, pack_length=pack_length), pack_length)
        return pack_sequences(
            _read_jsonl(p, tokenizer=tokenizer, pack_length=pack_length), pack_length
        )
    raise FileNotFoundError(f"{p}: neither a packed directory (manifest.json) nor a JSONL file")


def fingerprint(source: PackSource) -> dict[str, Any]:
    """What the packs hold, wherever they live: a digest of every pack's tokens, labels and
    sequence lengths in order, with the counts that name a difference in a message."""
    digest = hashlib.sha256()
    tokens = loss_tokens = 0
    for i in range(len(source)):
        pack = source[i]
        digest.update(np.asarray([pack.num_tokens, len(pack.seq_lens)], dtype=np.int64).tobytes())
        for array in (pack.input_ids, pack.labels, pack.seq_lens):
            digest.update(np.ascontiguousarray(array, dtype=np.int32).tobytes())
        tokens += pack.num_tokens
        loss_tokens += pack.num_loss_tokens
    return {
        "packs": len(source),
        "tokens": tokens,
        "loss_tokens": loss_tokens,
        "sha256": digest.hexdigest()[:16],
    }


@dataclass
class Rows:
    """A micro-batch: packs concatenated into one row with their sequence lengths."""

    input_ids: np.ndarray
    labels: np.ndarray
    seq_lens: np.ndarray
    indices: tuple[int, ...] = ()  # the packs' indices in the source, in row order


class PackLoader:
    """Yields `Rows` of `packs_per_micro_batch` packs for this rank, forever, epoch after epoch."""

    def __init__(
        self,
        source: PackSource,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        packs_per_micro_batch: int = 1,
    ) -> None:
        self.source = source
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.packs_per_micro_batch = packs_per_micro_batch
        self.per_rank = len(source) // world_size
        self.micro_per_epoch = self.per_rank // packs_per_micro_batch
        if self.micro_per_epoch == 0:
            raise ValueError(
                f"{len(source)} packs cannot feed {world_size} ranks x "
                f"{packs_per_micro_batch} packs per micro-batch"
            )
        self.epoch = 0
        self.cursor = 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
        return perm[: self.per_rank * self.world_size][self.rank :: self.world_size]

    def next(self) -> Rows:
        if self.cursor >= self.micro_per_epoch:
            self.epoch += 1
            self.cursor = 0
            self._order = self._epoch_order(self.epoch)
        k = self.packs_per_micro_batch
        idx = self._order[self.cursor * k : (self.cursor + 1) * k]
        self.cursor += 1
        packs = [self.source[int(i)] for i in idx]
        return Rows(
            input_ids=np.concatenate([p.input_ids for p in packs]),
            labels=np.concatenate([p.labels for p in packs]),
            seq_lens=np.concatenate([p.seq_lens for p in packs]),
            indices=tuple(int(i) for i in idx),
        )

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("world_size", self.world_size) != self.world_size:
            raise ValueError(
                f"checkpoint data position was for {state['world_size']} ranks, not "
                f"{self.world_size}; exact resume needs the same world size"
            )
        self.epoch = int(state["epoch"])
        self.cursor = int(state["cursor"])
        self._order = self._epoch_order(self.epoch)
