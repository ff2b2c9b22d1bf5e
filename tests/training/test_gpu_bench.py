"""`make bench-gpu` (benchmarks/gpu.py) cannot rot: its CPU dry run trains every case it plans,
fills every row of the table and passes the same-loss check; its model is Qwen3-4B's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from benchmarks import flops, gpu
from benchmarks import train_data as data


def test_the_model_is_qwen3_4b_and_the_flop_count_reads_the_same_shape() -> None:
    c = gpu.QWEN3_4B_CONFIG
    assert (c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]) == (2560, 36, 9728)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (32, 8, 128)
    assert (c["vocab_size"], c["tie_word_embeddings"]) == (151_936, True)
    assert (c["rope_theta"], c["max_position_embeddings"]) == (1e6, 40_960)
    assert gpu.body(c) == flops.QWEN3_4B
    with torch.device("meta"):  # no memory: the shape only
        model = Qwen3ForCausalLM._from_config(Qwen3Config(**c))
    assert sum(p.numel() for p in model.parameters()) == 4_022_468_096  # "4.0B" on its card
    assert model.config.rope_parameters["rope_theta"] == 1e6


def test_ids_spread_over_the_vocabulary_one_to_one_and_masks_stay() -> None:
    ids = np.arange(2048)
    spread = gpu.spread_ids(ids, 151_936 // 2048)
    assert len(set(spread.tolist())) == 2048
    assert spread.max() < 151_936 < 1.01 * spread.max()
    labels = np.asarray([5, -100, 7])
    assert gpu.spread_ids(labels, 74).tolist() == [370, -100, 518]


def test_lora_counts_no_gradient_for_frozen_weights() -> None:
    b = flops.Body(hidden=8, layers=1, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=100)
    kw = {"tokens": 10, "sum_len_sq": flops.causal_pairs([4, 6]), "loss_tokens": 3}
    full = gpu.useful_flops(b, lora=False, **kw)
    lora = gpu.useful_flops(b, lora=True, **kw)
    attention = b.layers * b.heads * b.head_dim * kw["sum_len_sq"]
    assert full - lora == 2 * (b.linear_macs_per_token() * 10 + 8 * 100 * 3)
    assert full == flops.model_flops(b, sum_len=10, sum_len_sq=kw["sum_len_sq"], loss_tokens=3)
    assert lora > 6 * attention


@pytest.mark.parametrize(
    ("theirs", "tokens", "passed"),
    [(12.4031, 900, True), (12.43, 900, False), (12.4031, 899, False), (float("nan"), 900, False)],
)
def test_the_same_loss_check_needs_equal_loss_tokens_and_a_close_mean(
    theirs: float, tokens: int, passed: bool
) -> None:
    ours = gpu.Case("m", "lora", "ours", result={"check_loss": 12.4, "check_loss_tokens": 900})
    trl = gpu.Case("m", "lora", "trl", result={"check_loss": theirs, "check_loss_tokens": tokens})
    ok, lines = gpu.check_losses([ours, trl], "bf16")
    assert ok is passed
    assert lines[0].endswith("passed" if passed else "FAILED")


# TRL's SFTConfig and peft's probe use the names transformers 5.23 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
def test_the_dry_run_fills_every_row_and_both_trainers_agree_on_the_loss(tmp_path: Path) -> None:
    out = tmp_path / "bench-gpu.md"
    rc = gpu.main(
        ["--dry-run", "--steps", "1", "--warmup", "1", "--conversations", "16",
         "--out", str(out), "--workdir", str(tmp_path / "work")]
    )  # fmt: skip
    text = out.read_text(encoding="utf-8")
    assert rc == 0, text
    table = text[text.index("| mix | mode |") :]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    cases = gpu.plan_cases(list(data.MIXES), ["lora", "full"], liger=False, dry_run=True)
    for case in cases:
        row = next(r for r in rows if r.startswith(f"| {case.mix} | {case.mode} | {case.label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        if case.skip:  # Liger: not installed here (or, installed, it would need CUDA)
            assert cells[3] == case.skip
        else:  # numbers in every column the CPU can fill
            assert float(cells[6].replace(",", "")) > 0  # tokens/s
            assert float(cells[7].replace(",", "")) > 0  # loss tokens/s
            assert cells[8] == cells[9] == "n/a"  # MFU and GPU memory need CUDA
    assert len(rows) == len(cases) + 1  # the header
    assert "same-loss check: passed" in text
    assert text.count(": passed") == sum(c.side == "trl" and not c.skip for c in cases) + 1
