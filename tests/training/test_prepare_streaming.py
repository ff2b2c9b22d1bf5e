"""prepare packs as it streams: rows spilled to disk, only their lengths held, shards written a
pack at a time from the spill. The output is byte for byte what the in-memory packing wrote
(`pack_sequences` / `pack_pairs` + `write_packs` with safetensors' own `save_file`), memory does
not grow with the tokens, and a failure leaves neither temporary files nor partial output.
`write_packs` builds each shard whole, sharing no shard code with the streaming writer, so it
is the oracle."""

from __future__ import annotations

import gc
import itertools
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_fixtures import tiny_tokenizer, tool_conversation, write_jsonl

from training import prepare, synthetic
from training.data import spill
from training.data.packing import (
    IGNORE_INDEX,
    MANIFEST,
    PackedDataset,
    best_fit,
    pack_sequences,
    write_packs,
)
from training.data.preference import PairExample, pack_pairs, pair_segments
from training.data.stream import UNPACKED
from training.prepare import QUARANTINE, STATS, PrepareArgs, TooManyBadRecordsError, main


def dataset_files(directory: Path) -> dict[str, bytes]:
    """Every file of a packed dataset (manifest and shards), by name."""
    names = [
        MANIFEST,
        *(s["file"] for s in json.loads((directory / MANIFEST).read_text())["shards"]),
    ]
    return {name: (directory / name).read_bytes() for name in names}


def leftovers(root: Path) -> list[str]:
    """Temporary folders and spill files anywhere under `root`."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".tmp" in p.name or p.name == prepare.SPILL or p.name.startswith("rows-")
    )


@pytest.fixture(scope="module")
def conversations_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streaming") / "train.jsonl"
    return synthetic.write(path, synthetic.generate(240, seed=7))


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training import synthetic_preference

    pairs = synthetic_preference.preference_pairs(synthetic.generate(80, 3, mean_tokens=0), 3)
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", pairs)


def args_for(tmp_path: Path, input_path: Path, **kw: Any) -> PrepareArgs:
    return PrepareArgs(
        input=input_path, output=tmp_path / "out", tokenizer="tiny", quiet=True, **kw
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_packed_output_is_byte_identical_to_the_in_memory_packing(
    tmp_path: Path, conversations_file: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A tiny pack length (many packs, some records too long), a few packs a shard (several
    shards), an eval split and small batches: the same shards and manifest, byte for byte, as
    the old algorithm makes of the very rows `--no-pack` writes."""
    monkeypatch.setattr(prepare, "SHARD_PACKS", 16)
    tok = tiny_tokenizer()
    args = args_for(
        tmp_path, conversations_file, max_length=900, max_bad_fraction=0.9, eval_fraction=0.1,
        batch_size=32, workers=workers,
    )  # fmt: skip
    stats = main(args, tokenizer=tok)
    rows = main(replace(args, output=tmp_path / "rows", pack=False), tokenizer=tok)
    records = [json.loads(x) for x in (tmp_path / "rows" / UNPACKED).read_text().splitlines()]
    assert stats["quarantined_by_kind"].get("too_long", 0) > 0  # the tiny length bites
    assert stats["eval_conversations"] > 0
    assert stats["sequences"] == len(records) > 150

    L = args.max_length  # noqa: N806
    packs = pack_sequences([(r["input_ids"], r["labels"]) for r in records], L)
    metadata = {"input": str(args.input), "tokenizer": "tiny", "format": "auto",
                "enable_thinking": True}  # fmt: skip
    write_packs(tmp_path / "old", packs, pack_length=L, packs_per_shard=16, metadata=metadata)
    new, old = dataset_files(tmp_path / "out"), dataset_files(tmp_path / "old")
    assert len(old) > 4  # the manifest and several shards
    assert list(new) == list(old)
    for name in old:
        assert new[name] == old[name], name
    assert (stats["packs"], stats["tokens"], stats["loss_tokens"]) == (
        len(packs), rows["tokens"], rows["loss_tokens"]
    )  # fmt: skip
    assert stats["spill_bytes"] == 8 * stats["tokens"]  # ids + labels, int32
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [*new, QUARANTINE, "eval.jsonl", STATS]
    )
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_preference_packs_are_byte_identical_too(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(prepare, "SHARD_PACKS", 5)
    tok = tiny_tokenizer()
    args = args_for(tmp_path, pairs_file, task="preference", max_length=1024, batch_size=16,
                    workers=workers, max_bad_fraction=0.5)  # fmt: skip
    stats = main(args, tokenizer=tok)
    main(replace(args, output=tmp_path / "rows", pack=False), tokenizer=tok)
    lines = (tmp_path / "rows" / UNPACKED).read_text().splitlines()
    pairs = [PairExample.from_json(json.loads(x)) for x in lines]
    packs = pack_pairs(pairs, args.max_length)
    metadata = {"input": str(args.input), "tokenizer": "tiny", "format": "auto",
                "enable_thinking": True, "kind": "preference", "num_pairs": len(pairs)}  # fmt: skip
    write_packs(tmp_path / "old", packs, pack_length=1024, packs_per_shard=5, metadata=metadata)
    new, old = dataset_files(tmp_path / "out"), dataset_files(tmp_path / "old")
    assert len(old) > 3
    assert stats["train_pairs"] == len(pairs) > 50
    assert new == old
    assert leftovers(tmp_path) == []


def _random_pack_input(rng: np.random.Generator, n: int, pairs: bool) -> list[Any]:
    """`n` random sequences (ids, labels) or preference pairs."""

    def ids_labels(size: int) -> tuple[list[int], list[int]]:
        ids = rng.integers(0, 150_000, size=size)
        return ids.tolist(), np.where(rng.random(size) < 0.3, ids, IGNORE_INDEX).tolist()

    out: list[Any] = []
    for _ in range(n):
        if pairs:
            prompt, _ = ids_labels(int(rng.integers(1, 60)))
            chosen, rejected = (
                ids_labels(int(rng.integers(1, 40))),
                ids_labels(int(rng.integers(1, 40))),
            )
            out.append(PairExample(prompt, *chosen, *rejected))
        else:
            out.append(ids_labels(int(rng.integers(1, 120))))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_streamed_shards_match_save_file(tmp_path: Path, seed: int) -> None:
    """Random sequences or pairs and shard sizes, rows spread over two spill files (two
    processes'): `write_spilled_packs` writes exactly the files the old in-memory packing and
    `save_file` do."""
    rng = np.random.default_rng(seed)
    pairs = seed % 2 == 1
    items = _random_pack_input(rng, int(rng.integers(1, 400)), pairs)
    capacity, per_shard = int(rng.integers(180, 400)), int(rng.integers(1, 40))
    directory = tmp_path / "spill"
    directory.mkdir()
    index = spill.SpillIndex(directory, width=3 if pairs else 1)
    writers = [
        spill.SpillWriter(directory, "rows-a.bin"),
        spill.SpillWriter(directory, "rows-b.bin"),
    ]
    for start in range(0, len(items), 7):
        rows, segments = [], []
        for item in items[start : start + 7]:
            if pairs:
                ids, labels, lens = pair_segments(item)
            else:
                (ids, labels), lens = item, [len(item[0])]
            rows.append((ids, labels))
            segments.append(lens)
        index.add(writers[(start // 7) % 2].write(rows, segments))
    for w in writers:
        w.close()
    bins = best_fit(index.lengths, capacity)
    spill.write_spilled_packs(
        tmp_path / "new", bins, index, pack_length=capacity, packs_per_shard=per_shard,
        metadata={"seed": seed},
    )  # fmt: skip
    packs = pack_pairs(items, capacity) if pairs else pack_sequences(items, capacity)
    write_packs(
        tmp_path / "old", packs, pack_length=capacity, packs_per_shard=per_shard,
        metadata={"seed": seed},
    )  # fmt: skip
    assert dataset_files(tmp_path / "new") == dataset_files(tmp_path / "old")
    assert len(PackedDataset(tmp_path / "new")) == len(packs)
    # The manifest's loss tokens are the index's: bins that leave a row out, place one twice,
    # or both (the same count), are refused.
    last = bins[-1][-1]
    swapped = [*bins[:-1], [*bins[-1][:-1], (last + 1) % len(index)]]
    for wrong in (bins[:-1], [*bins, [bins[0][0]]], *([swapped] if len(index) > 1 else [])):
        with pytest.raises(ValueError, match="place each of the"):
            spill.write_spilled_packs(tmp_path / "wrong", wrong, index, pack_length=capacity)


def test_safetensors_header_is_the_one_save_file_writes(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    residues = set()
    for n, tokens in itertools.product(range(1, 30), (1, 17, 333, 4096, 12345, 99999)):
        tensors: dict[str, np.ndarray] = {
            "input_ids": np.arange(tokens, dtype=np.int32),
            "labels": np.arange(tokens, dtype=np.int32),
            "seq_lens": np.arange(n + 1, dtype=np.int32),
            "pack_token_offsets": np.arange(n + 1, dtype=np.int64),
            "pack_seq_offsets": np.arange(n + 1, dtype=np.int64),
        }
        save_file(tensors, str(tmp_path / "x"))
        want = (tmp_path / "x").read_bytes()
        header, _ = spill.safetensors_header({k: (v.dtype, len(v)) for k, v in tensors.items()})
        assert want.startswith(header)
        residues.add(len(json.dumps(json.loads(header[8:]), separators=(",", ":"))) % 8)
    assert len(residues) == 8  # every amount of padding, 0 to 7 spaces


def test_memory_grows_with_rows_not_tokens(tmp_path: Path) -> None:
    """Python-side peak (numpy arrays included) of a run 4x as long grows by far less than the
    bytes its token arrays would take: the old packing held about 21 bytes a token."""
    tok = tiny_tokenizer()
    short: dict[str, Any] = {"tools": ["get_weather", "get_time"], "max_tools": 1, "mean_tokens": 0}
    peaks, tokens = [], []
    for n in (60, 240):
        path = synthetic.write(tmp_path / f"{n}.jsonl", synthetic.generate(n, 0, **short))
        main(args_for(tmp_path, path, batch_size=16), tokenizer=tok)  # warm caches first
        tracemalloc.start()
        stats = main(args_for(tmp_path, path, batch_size=16), tokenizer=tok)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        tokens.append(stats["tokens"])
    held_before = 16 * (tokens[1] - tokens[0])  # int32 ids + labels, then their packs' copies
    assert tokens[1] - tokens[0] > 40_000
    assert peaks[1] - peaks[0] < held_before / 8, (peaks, tokens)


def _good_run(tmp_path: Path, path: Path) -> bytes:
    main(args_for(tmp_path, path), tokenizer=tiny_tokenizer())
    return (tmp_path / "out" / MANIFEST).read_bytes()


def test_a_failure_while_writing_shards_leaves_nothing_behind(
    tmp_path: Path, conversations_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _good_run(tmp_path, conversations_file)
    monkeypatch.setattr(prepare, "SHARD_PACKS", 4)
    written: list[Path] = []
    save = spill.save_streamed

    def failing(path: Path, tensors: Any) -> None:
        if len(written) == 3:
            raise OSError("disk full")
        save(path, tensors)
        written.append(path)

    monkeypatch.setattr(spill, "save_streamed", failing)
    with pytest.raises(OSError, match="disk full"):
        main(args_for(tmp_path, conversations_file, workers=2), tokenizer=tiny_tokenizer())
    assert len(written) == 3  # it failed after some shards were written and renamed
    assert (tmp_path / "out" / MANIFEST).read_bytes() == before  # the old dataset, untouched
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


class _Failing:
    """The tiny tokenizer, failing on the batch that holds a given text."""

    def __init__(self, tok: Any, marker: str) -> None:
        self.tok, self.marker = tok, marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tok, name)

    def __call__(self, texts: Any, **kw: Any) -> Any:
        if isinstance(texts, list) and any(self.marker in t for t in texts):
            raise RuntimeError("tokenizer crashed")
        return self.tok(texts, **kw)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_while_reading_leaves_nothing_behind(tmp_path: Path, workers: int) -> None:
    """A crash in the middle of the input, in the main process or in a worker, after rows were
    spilled: no spill files, no temporary folder, the earlier output as it was."""
    good = [tool_conversation().to_record() for _ in range(40)]
    crash = tool_conversation().to_record()
    crash["messages"][1]["content"] = "CRASH-HERE"
    path = write_jsonl(tmp_path / "in.jsonl", [*good, crash, *good])
    before = _good_run(tmp_path, write_jsonl(tmp_path / "ok.jsonl", good))
    tok = _Failing(tiny_tokenizer(), "CRASH-HERE")
    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        main(args_for(tmp_path, path, workers=workers, batch_size=8), tokenizer=tok)
    assert (tmp_path / "out" / MANIFEST).read_bytes() == before
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "ok.jsonl", "out"]


def test_too_many_bad_records_leave_no_spill(tmp_path: Path) -> None:
    rows = [tool_conversation().to_record(), "{", "["]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(TooManyBadRecordsError):
        main(args_for(tmp_path, path, workers=2), tokenizer=tiny_tokenizer())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [QUARANTINE, STATS]
    assert leftovers(tmp_path) == []


def test_workers_leave_the_collector_as_they_found_it(tmp_path: Path) -> None:
    """With workers, prepare freezes what they inherit (`gc.freeze`) only while they run, and
    never thaws what its caller froze."""
    path = write_jsonl(tmp_path / "in.jsonl", [tool_conversation().to_record()] * 4)
    assert gc.get_freeze_count() == 0
    main(args_for(tmp_path, path, workers=2), tokenizer=tiny_tokenizer())
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        main(args_for(tmp_path, path, workers=2), tokenizer=tiny_tokenizer())
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
