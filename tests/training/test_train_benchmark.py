"""`make bench-train`'s data, budgets and FLOP accounting do what its tables claim (no timings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks import flops
from benchmarks import train_data as data
from benchmarks.train import SHAPES, body
from training.data.packing import IGNORE_INDEX, PackedDataset, pack_sequences, write_packs
from training.data.render import encode_conversation
from training.tiny import TinyShape, build_model


@pytest.fixture(scope="module")
def heldout_like(tiny_tokenizer: Any) -> data.Examples:
    convs = data.conversations(data.MIXES["heldout-like"], 80, tiny_tokenizer, max_length=2048)
    examples = [encode_conversation(tiny_tokenizer, c, max_length=2048) for c in convs]
    return data.Examples([e.input_ids for e in examples], [e.labels for e in examples])


def test_a_mix_has_the_length_and_loss_share_it_asks_for(heldout_like: data.Examples) -> None:
    stats = heldout_like.stats()
    mix = data.MIXES["heldout-like"]
    assert stats["mean_tokens"] == pytest.approx(mix.mean_tokens, rel=0.05)
    assert stats["loss_fraction"] == pytest.approx(mix.loss_fraction, abs=0.04)
    assert stats["spread"] > 0.1  # lengths vary, as real conversations do


def test_padded_steps_match_their_token_targets(heldout_like: data.Examples) -> None:
    lengths = [len(x) for x in heldout_like.input_ids]
    targets = [4000, 3900, 4050]
    order = data.padded_plan(heldout_like, targets, per_step=5)
    assert len(order) == 15
    assert len(set(order)) == 15  # no conversation twice
    for step, target in enumerate(targets):
        total = sum(lengths[i] for i in order[step * 5 : step * 5 + 5])
        assert abs(total - target) <= data.BUDGET_TOLERANCE * target


def test_padded_packs_pad_each_conversation_to_the_longest_without_loss(
    heldout_like: data.Examples, tmp_path: Path
) -> None:
    order = list(range(6))
    data.write_padded_packs(heldout_like, order, 3, pad_id=0, out=tmp_path)
    ds = PackedDataset(tmp_path)
    assert len(ds) == 2
    for k, pack in enumerate(ds):
        members = order[3 * k : 3 * k + 3]
        width = max(len(heldout_like.input_ids[i]) for i in members)
        assert pack.seq_lens.tolist() == [width] * 3
        for seg, i in zip(np.split(pack.labels, 3), members, strict=True):
            real = len(heldout_like.labels[i])
            assert seg[:real].tolist() == heldout_like.labels[i]
            assert (seg[real:] == IGNORE_INDEX).all()


def test_our_step_tokens_read_packs_in_file_order(
    heldout_like: data.Examples, tmp_path: Path
) -> None:
    seqs = list(zip(heldout_like.input_ids, heldout_like.labels, strict=True))
    packs = pack_sequences(seqs, 2048)
    write_packs(tmp_path, packs, pack_length=2048)
    got = data.our_step_tokens(tmp_path, micro_per_step=2, steps=2)
    assert got == [
        packs[0].num_tokens + packs[1].num_tokens,
        packs[2].num_tokens + packs[3].num_tokens,
    ]
    with pytest.raises(ValueError, match="raise --conversations"):
        data.our_step_tokens(tmp_path, micro_per_step=2, steps=len(packs))


def test_linear_flops_count_every_projection_of_a_real_qwen3(tiny_tokenizer: Any) -> None:
    shape = TinyShape(96, 3, 200, 4, 2, 24, None, tie_word_embeddings=True)
    model = build_model(tiny_tokenizer, shape)
    weights = sum(
        m.weight.numel()
        for name, m in model.model.layers.named_modules()
        if isinstance(m, torch.nn.Linear)
    )
    b = flops.Body(96, 3, 4, 2, 24, 200, len(tiny_tokenizer))
    assert b.linear_macs_per_token() == weights
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as in Qwen3-4B


def test_the_headline_shape_is_representative_and_the_narrow_one_is_not(
    heldout_like: data.Examples,
) -> None:
    lengths = [len(x) for x in heldout_like.input_ids]
    qwen = flops.QWEN3_4B.attention_to_linear(lengths)
    assert 0.01 < qwen < 0.06  # a few percent, as the issue computed
    representative = body(SHAPES["R"], 2048).attention_to_linear(lengths)
    narrow = body(SHAPES["A"], 2048).attention_to_linear(lengths)
    assert qwen / 2 <= representative <= 2 * qwen
    assert narrow > 4 * qwen
    assert body(SHAPES["R"], 2048).head_to_body() == pytest.approx(
        flops.QWEN3_4B.head_to_body(), rel=0.5
    )


def test_model_flops_count_each_attended_pair_and_the_head_at_loss_rows_only() -> None:
    b = flops.Body(hidden=8, layers=1, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=100)
    lengths = [3, 5]
    # Causal attention, counted pair by pair: query i scores keys 0..i (QK^T), then mixes as
    # many values (AV), per head and channel.
    pairs = sum(i + 1 for n in lengths for i in range(n))
    attention = 2 * pairs * b.heads * b.head_dim * b.layers
    got = flops.model_flops(b, sum_len=8, sum_len_sq=flops.causal_pairs(lengths), loss_tokens=2)
    # forward 2 FLOPs a MAC, backward twice the forward; the head only at the 2 loss rows
    assert got == 6 * (b.linear_macs_per_token() * 8 + attention + 8 * 100 * 2)
