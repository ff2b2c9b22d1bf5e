"""`make bench-prepare` measures what it says: its quick run prints every row, both sides keep
every conversation, the stand-in prepares exactly what `SFTTrainer` prepares, and the two sides'
loss-bearing tokens differ by exactly what their templates render differently (no timings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import prepare as bench
from training import synthetic
from training.data.render import encode_conversation

N = 30  # conversations for the per-conversation checks


@pytest.fixture(scope="module")
def conversations() -> list[Any]:
    return synthetic.generate(N, seed=0)


def test_quick_run_prints_every_row_and_both_sides_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save = tmp_path / "bench.json"
    assert bench.main(["--quick", "--save", str(save)]) == 0
    out = capsys.readouterr().out
    (n,) = bench.QUICK_SIZES
    for w in bench.WORKERS:
        for side in bench.SIDES:
            assert f"| {n:,} | {side} | {bench._label(side, w)} |" in out
    saved = json.loads(save.read_text())
    assert len(saved["runs"]) == len(bench.WORKERS) * len(bench.SIDES)
    gap, exp = saved["expected"][str(n)], saved["expected"]
    ours = {r["workers"]: r for r in saved["runs"] if r["side"] == "ours"}
    assert len({(r["tokens"], r["loss_tokens"]) for r in ours.values()}) == 1  # workers agree
    for r in saved["runs"]:
        assert r["records"] == r["sequences"] == n
        assert r["peak_rss_mb"] >= r["floor_rss_mb"] > 0
        assert r["output_mb"] > 0
        if r["side"] == "trl":
            # TRL's template adds an empty think block to each non-final turn without
            # reasoning, and its generation block ends after the newline following <|im_end|>.
            think = exp["think_tokens"] * gap["bare_turns"]
            newline = exp["newline_tokens"] * gap["assistant_turns"]
            assert r["tokens"] == ours[1]["tokens"] + think
            assert r["loss_tokens"] == ours[1]["loss_tokens"] + think + newline
    assert gap["bare_turns"] > 0  # the data exercises the difference it explains
    assert f"{n:,} conversations: every one kept by both" in out
    assert "goal at 200 conversations" in out


def test_trl_masks_differ_from_ours_only_by_the_template_gap(
    conversations: list[Any], tiny_tokenizer: Any
) -> None:
    """Per conversation, as TRL's tokenize_fn renders it: same tokens but the think blocks, and
    loss on ours plus the newline after each assistant turn and those blocks."""
    args = bench.trl_config(Path("unused"), None)
    template = bench.trl_trainer_state(args, tiny_tokenizer).chat_template
    assert template is not None  # Qwen3's template has no generation markers: TRL swaps it
    think = len(tiny_tokenizer(bench.EMPTY_THINK, add_special_tokens=False)["input_ids"])
    newline = len(tiny_tokenizer("\n", add_special_tokens=False)["input_ids"])
    for conv in conversations:
        ours = encode_conversation(tiny_tokenizer, conv)
        record = conv.to_record()
        theirs = tiny_tokenizer.apply_chat_template(
            record["messages"], tools=record["tools"], chat_template=template, tokenize=True,
            return_dict=True, return_assistant_tokens_mask=True,
        )  # fmt: skip
        turns, bare = bench.template_gap(conv)
        ids, mask = theirs["input_ids"], theirs["assistant_masks"]
        assert len(ids) == len(ours.input_ids) + think * bare
        assert sum(mask) == ours.num_loss_tokens + think * bare + newline * turns
        if bare == 0:  # same text: the masks differ only at the newlines
            assert ids == ours.input_ids
            pairs = zip(mask, ours.labels, strict=True)
            extra = [i for i, (m, label) in enumerate(pairs) if m and label == -100]
            assert [tiny_tokenizer.decode([ids[i]]) for i in extra] == ["\n"] * turns


def test_the_stand_in_prepares_what_sft_trainer_prepares(
    conversations: list[Any], tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    path = tmp_path / "trl.jsonl"
    path.write_text("".join(json.dumps(c.to_record()) + "\n" for c in conversations))
    args = bench.trl_config(tmp_path / "out", None)
    state = bench.trl_trainer_state(args, tiny_tokenizer)
    ours, records, _ = bench.trl_prepare(path, tiny_tokenizer, args, state, tmp_path / "cache")
    assert records == N
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tiny_tokenizer)
    prepared = trainer.train_dataset
    for column in ("input_ids", "labels", "seq_lengths"):
        assert prepared[column] == ours[column]
    assert bench.trl_counts(ours)["sequences"] == N


def test_template_gap_refuses_a_turn_before_the_last_query(conversations: list[Any]) -> None:
    from dataclasses import replace

    from training.data.conversation import Message

    conv = conversations[0]
    later = replace(conv, messages=(*conv.messages, Message("user", "And now?")))
    with pytest.raises(ValueError, match="before the last user query"):
        bench.template_gap(later)
