"""prepare: packed and unpacked outputs agree with the renderer, bad records are quarantined with
their line numbers, the bad-fraction gate fails the run without losing anything."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_fixtures import tiny_tokenizer, tiny_tokenizer_dir, tool_conversation, write_jsonl

from training import synthetic
from training.data.conversation import Conversation
from training.data.formats import read_jsonl
from training.data.packing import IGNORE_INDEX, PackedDataset
from training.data.render import encode_conversation
from training.data.stream import UNPACKED
from training.prepare import (
    EVAL,
    QUARANTINE,
    STATS,
    PrepareArgs,
    TooManyBadRecordsError,
    cli,
    main,
)


def read_unpacked(directory: Path) -> list[dict[str, Any]]:
    """The records of a ``--no-pack`` output (one JSON object a line)."""
    lines = (directory / UNPACKED).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "train.jsonl"
    return synthetic.write(path, synthetic.generate(40, seed=1))


def args_for(tmp_path, input_path, **kw) -> PrepareArgs:
    return PrepareArgs(
        input=input_path, output=tmp_path / "out", tokenizer="tiny", quiet=True, **kw
    )


def test_packed_and_unpacked_outputs_hold_the_same_sequences(tmp_path, synthetic_file):
    tok = tiny_tokenizer()
    packed = main(args_for(tmp_path, synthetic_file, max_length=2048), tokenizer=tok)
    data = PackedDataset(tmp_path / "out")
    assert packed["records_read"] == packed["sequences"] == data.manifest["num_sequences"] == 40
    assert data.manifest["enable_thinking"] is True
    assert packed["pack_fill"] == data.manifest["fill"] > 0.85  # 40 sequences: last pack part-full
    from_packs = []
    for pack in data:
        bounds = np.cumsum(pack.seq_lens)[:-1]
        ids, labels = np.split(pack.input_ids, bounds), np.split(pack.labels, bounds)
        from_packs += [(i.tolist(), lab.tolist()) for i, lab in zip(ids, labels, strict=True)]

    unpacked = main(
        replace(args_for(tmp_path, synthetic_file, max_length=2048), output=tmp_path / "flat",
                pack=False),
        tokenizer=tok,
    )  # fmt: skip
    records = list(read_unpacked(tmp_path / "flat"))
    assert [r["line"] for r in records] == list(range(1, 41))
    assert sorted(from_packs) == sorted((r["input_ids"], r["labels"]) for r in records)
    assert unpacked["loss_tokens"] == packed["loss_tokens"] == data.manifest["num_loss_tokens"]
    # Each record is exactly what the renderer makes of that line's conversation.
    conversations = [c for _, c in read_jsonl(synthetic_file)]
    for record, conv in zip(records, conversations, strict=True):
        assert isinstance(conv, Conversation)
        ex = encode_conversation(tok, conv)
        assert (record["input_ids"], record["labels"]) == (ex.input_ids, ex.labels)
        assert any(lab != IGNORE_INDEX for lab in record["labels"])


def test_bad_records_are_quarantined_with_line_and_reason(tmp_path):
    long = tool_conversation().to_record()
    long["messages"][1]["content"] = "weather " * 3000
    lines = [
        tool_conversation().to_record(),
        "{not json",
        {"messages": [{"role": "robot", "content": "x"}]},
        long,
        tool_conversation().to_record(),
    ]
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    stats = main(
        args_for(tmp_path, path, max_length=1024, max_bad_fraction=0.9), tokenizer=tiny_tokenizer()
    )
    assert (stats["records_read"], stats["sequences"], stats["quarantined"]) == (5, 2, 3)
    assert stats["quarantined_by_kind"] == {"malformed_json": 1, "too_long": 1, "unknown_role": 1}
    quarantine = [json.loads(x) for x in (tmp_path / "out" / QUARANTINE).read_text().splitlines()]
    assert [(q["line"], q["kind"]) for q in quarantine] == [
        (2, "malformed_json"),
        (3, "unknown_role"),
        (4, "too_long"),
    ]
    raw = path.read_text().splitlines()
    assert [q["record"] for q in quarantine] == [raw[1], raw[2], raw[3]]  # nothing lost
    assert quarantine[2]["reason"].startswith("line 4:")
    assert "more than the maximum length 1024" in quarantine[2]["reason"]


def test_too_many_bad_records_fail_the_run_but_keep_the_quarantine(tmp_path, synthetic_file):
    out = tmp_path / "out"
    main(args_for(tmp_path, synthetic_file), tokenizer=tiny_tokenizer())  # an earlier good run
    path = write_jsonl(tmp_path / "in.jsonl", [tool_conversation().to_record(), "{", "["])
    with pytest.raises(TooManyBadRecordsError, match=r"2 of 3 records rejected .*quarantine"):
        main(args_for(tmp_path, path), tokenizer=tiny_tokenizer())
    assert sorted(p.name for p in out.iterdir()) == [QUARANTINE, STATS]  # no dataset to train on
    assert json.loads((out / STATS).read_text())["status"] == "failed"
    assert len((out / QUARANTINE).read_text().splitlines()) == 2
    assert not list(tmp_path.glob(".out.*"))  # no temporary folders left behind


def test_eval_split_is_held_out_stable_and_readable(tmp_path, synthetic_file):
    tok = tiny_tokenizer()
    stats = main(args_for(tmp_path, synthetic_file, eval_fraction=0.25), tokenizer=tok)
    held = [c for _, c in read_jsonl(tmp_path / "out" / EVAL)]
    assert all(isinstance(c, Conversation) for c in held)
    assert stats["eval_conversations"] == len(held) > 0
    assert stats["train_conversations"] + len(held) == 40
    lines = [c.meta["source_line"] for c in held if isinstance(c, Conversation)]
    originals = {c.source_line: c for _, c in read_jsonl(synthetic_file)}
    assert all(c.messages == originals[c.meta["source_line"]].messages for c in held)
    again = main(
        replace(args_for(tmp_path, synthetic_file, eval_fraction=0.25), output=tmp_path / "b"),
        tokenizer=tok,
    )
    assert again["eval_conversations"] == len(held)
    rerun = [c.meta["source_line"] for _, c in read_jsonl(tmp_path / "b" / EVAL)]
    assert rerun == lines


def test_text_format_takes_loss_everywhere(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "the weather is sunny " * 50}])
    stats = main(
        args_for(tmp_path, path, format="text", max_length=64, pack=False),
        tokenizer=tiny_tokenizer(),
    )
    records = list(read_unpacked(tmp_path / "out"))
    assert stats["text_chunks"] == len(records) > 1
    assert all(r["labels"] == r["input_ids"] for r in records)
    assert stats["quarantined"] == 0


def test_non_thinking_mode_counts_dropped_reasoning(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [tool_conversation().to_record()])
    stats = main(
        args_for(tmp_path, path, enable_thinking=False, pack=False), tokenizer=tiny_tokenizer()
    )
    assert stats["reasoning_dropped"] == 1
    (record,) = read_unpacked(tmp_path / "out")
    assert "<think>" not in tiny_tokenizer().decode(
        [t for t in record["labels"] if t != IGNORE_INDEX]
    )


def test_cli_loads_the_tokenizer_and_reports_failure(tmp_path, synthetic_file, capsys):
    base = ["--input", str(synthetic_file), "--tokenizer", str(tiny_tokenizer_dir()), "--quiet"]
    assert cli([*base, "--output", str(tmp_path / "ok"), "--no-pack"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"] == 40
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{"])
    argv = ["--input", str(bad), "--output", str(tmp_path / "bad"), "--tokenizer",
            str(tiny_tokenizer_dir()), "--quiet"]  # fmt: skip
    assert cli(argv) == 1
    assert "1 of 1 records rejected" in capsys.readouterr().err


def test_module_entry_point_documents_its_options():
    result = subprocess.run(
        [sys.executable, "-m", "training.prepare", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in (
        "--input",
        "--output",
        "--tokenizer",
        "--format",
        "--max-length",
        "--no-pack",
        "--max-bad-fraction",
        "--eval-fraction",
        "--no-enable-thinking",
        "--max-line-bytes",
        "--backend {local,processing}",  # handed to training.job.cli before this parser runs
    ):
        assert option in result.stdout  # fmt: skip


def test_worker_processes_give_the_same_output(tmp_path, synthetic_file):
    tok = tiny_tokenizer()
    args = args_for(tmp_path, synthetic_file, pack=False, eval_fraction=0.2, batch_size=7)
    one = main(args, tokenizer=tok)
    two = main(replace(args, output=tmp_path / "two", workers=2), tokenizer=tok)
    for name in ("train.jsonl", EVAL, QUARANTINE):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    drop = {"seconds", "records_per_second"}
    assert {k: v for k, v in one.items() if k not in drop} == {
        k: v for k, v in two.items() if k not in drop
    }


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_length", 0), ("max_bad_fraction", 1.5), ("eval_fraction", 1.0), ("workers", 0)],
)
def test_impossible_settings_fail_before_reading(tmp_path, option, value):
    with pytest.raises(ValueError, match=option.replace("_", "-")):
        args_for(tmp_path, tmp_path / "missing.jsonl", **{option: value})


def test_cli_reports_bad_settings_as_usage_errors(tmp_path, capsys):
    argv = ["--input", "x", "--output", str(tmp_path), "--tokenizer", "t", "--max-length", "0"]
    with pytest.raises(SystemExit) as e:
        cli(argv)
    assert e.value.code == 2
    assert "--max-length" in capsys.readouterr().err


def _hostile_lines() -> dict[str, bytes]:
    """One line per way a JSONL line used to abort the whole run, keyed by its quarantine kind."""
    good = tool_conversation().to_record()
    surrogate = tool_conversation().to_record()
    surrogate["messages"][1]["content"] = "Weather in \ud800?"  # json.dumps writes "\ud800"
    nested = tool_conversation().to_record()  # the same escape inside the arguments' JSON text
    nested["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"city": "\\ud800"}'
    huge = tool_conversation().to_record()
    huge["messages"][1]["content"] = "weather " * 40_000  # 320 kB: would be tokenised, then refused
    return {
        "good": json.dumps(good).encode(),
        "not_utf8": json.dumps(good).replace("Paris", "Par\u00eds").encode("latin-1"),
        "number_too_large": json.dumps({**good, "meta": {"n": 0}})
        .replace('"n": 0', '"n": ' + "9" * 5000)
        .encode(),
        "too_deep": b"[" * 10_000 + b"]" * 10_000,  # past the parser's recursion limit
        "too_deep_nested": json.dumps({**good, "meta": _nest(200)}).encode(),  # past MAX_JSON_DEPTH
        "lone_surrogate": json.dumps(surrogate).encode(),
        "lone_surrogate_nested": json.dumps(nested).encode(),
        "line_too_long": json.dumps(huge).encode(),
    }


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("workers", [1, 2])
def test_each_hostile_line_is_quarantined_and_the_run_keeps_the_rest(tmp_path, workers):
    lines = _hostile_lines()
    good = lines.pop("good")
    body = [good, *lines.values(), good]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(body) + b"\r\n")  # a CRLF last line too
    args = args_for(tmp_path, path, max_length=1024, max_bad_fraction=0.9, workers=workers)
    stats = main(args, tokenizer=tiny_tokenizer())
    assert (stats["records_read"], stats["sequences"], stats["quarantined"]) == (9, 2, 7)
    assert stats["max_line_bytes"] == 1024 * 32
    quarantine = [json.loads(x) for x in (tmp_path / "out" / QUARANTINE).read_text().splitlines()]
    expected = [k.removesuffix("_nested") for k in lines]
    assert [(q["line"], q["kind"]) for q in quarantine] == list(enumerate(expected, start=2))
    by_kind = {q["kind"]: q for q in quarantine}
    assert all(q["reason"].startswith(f"line {q['line']}: ") for q in quarantine)
    # Nothing lost: the exact bytes of a line that is not UTF-8, the position of one too long
    # to copy, the text of every other.
    assert base64.b64decode(by_kind["not_utf8"]["record_base64"]) == lines["not_utf8"]
    long = by_kind["line_too_long"]
    start, size = long["offset"], long["size"]
    assert path.read_bytes()[start : start + size] == lines["line_too_long"] + b"\n"
    assert "more than the 32,768-byte limit" in long["reason"]
    assert len(long["record"]) == 1024
    assert quarantine[1]["record"] == lines["number_too_large"].decode()
    assert "Exceeds the limit (4300 digits)" in by_kind["number_too_large"]["reason"]


def test_a_huge_line_is_refused_before_it_is_tokenised(tmp_path):
    line = json.dumps({"text": "weather " * 2_600_000})  # 21 MB
    path = write_jsonl(tmp_path / "in.jsonl", [tool_conversation().to_record(), line])
    calls: list[int] = []
    tok = tiny_tokenizer()

    class Counting:  # the tokenizer, counting the characters it is asked to tokenise
        def __getattr__(self, name: str) -> Any:
            return getattr(tok, name)

        def __call__(self, texts: list[str], **kw: Any) -> Any:
            calls.append(sum(len(t) for t in texts))
            return tok(texts, **kw)

    args = args_for(tmp_path, path, max_length=2048, max_bad_fraction=0.9)
    stats = main(args, tokenizer=Counting())
    assert stats["quarantined_by_kind"] == {"line_too_long": 1}
    assert max(calls) < 100_000  # only the good conversation was tokenised
    # --max-line-bytes replaces the derived limit.
    tight = replace(args, max_line_bytes=100, output=tmp_path / "tight")
    with pytest.raises(TooManyBadRecordsError, match="'line_too_long': 2"):
        main(tight, tokenizer=tok)


def test_preference_lines_get_the_same_reader(tmp_path):
    from training import synthetic_preference

    pair = synthetic_preference.preference_pairs(synthetic.generate(1, 0), 0)[0]
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(json.dumps(pair).encode() + b"\n\xff\xfe\n" + b"[" * 100 + b"]" * 100)
    args = args_for(tmp_path, path, task="preference", max_length=4096, max_bad_fraction=0.9)
    stats = main(args, tokenizer=tiny_tokenizer())
    assert (stats["train_pairs"], stats["quarantined_by_kind"]) == (
        1,
        {"not_utf8": 1, "too_deep": 1},
    )
