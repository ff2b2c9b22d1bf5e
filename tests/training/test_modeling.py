"""Packed rows give each sequence exactly the numbers it gets alone; sparse loss equals HF's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.functional import cross_entropy

from training.data.packing import IGNORE_INDEX, pack_sequences
from training.model import packed_attention
from training.model.loss import linear_cross_entropy_sum, shift_targets
from training.model.modeling import PackedCausalLM, make_micro_batch


def _model(path: Path, impl: str) -> Any:
    from transformers import AutoModelForCausalLM

    packed_attention.register()
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl, dtype=torch.float32)


def _hf_loss_sum(model: Any, ids: list[int], labels: list[int]) -> torch.Tensor:
    """Reference: full logits of one sequence alone, standard shifted CE (summed)."""
    logits = model(input_ids=torch.tensor([ids])).logits[0]
    return cross_entropy(
        logits[:-1], torch.tensor(labels[1:]), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def test_shift_targets_never_cross_a_boundary() -> None:
    labels = np.array([IGNORE_INDEX, 5, 6, IGNORE_INDEX, 8, 9])
    t = shift_targets(labels, np.array([3, 3]))
    # position 2 is sequence 0's last token: it must not predict sequence 1's first token.
    assert t.tolist() == [5, 6, IGNORE_INDEX, 8, 9, IGNORE_INDEX]


def test_packed_hidden_states_equal_each_sequence_alone(
    tiny_model_dir: Path, sequences: Any
) -> None:
    seqs = sequences(6, seed=3)
    (pack,) = pack_sequences(seqs, sum(len(s[0]) for s in seqs))
    packed = PackedCausalLM(_model(tiny_model_dir, "packed_sdpa"), chunk_rows=7, compute_dtype=None)
    ref = _model(tiny_model_dir, "sdpa")
    batch = make_micro_batch(pack.input_ids, pack.labels, pack.seq_lens, torch.device("cpu"))
    with torch.no_grad():
        hidden = packed.hidden_states(batch)
        alone = torch.cat(
            [ref.model(input_ids=torch.tensor([ids])).last_hidden_state[0] for ids, _ in seqs]
        )
    torch.testing.assert_close(hidden, alone, atol=1e-5, rtol=1e-5)


def test_sparse_loss_and_gradients_match_full_logits(tiny_model_dir: Path, sequences: Any) -> None:
    seqs = sequences(4, seed=4)
    (pack,) = pack_sequences(seqs, 4096)
    packed = PackedCausalLM(_model(tiny_model_dir, "packed_sdpa"), chunk_rows=5, compute_dtype=None)
    ref = _model(tiny_model_dir, "sdpa")
    batch = make_micro_batch(pack.input_ids, pack.labels, pack.seq_lens, torch.device("cpu"))
    assert batch.num_loss_tokens == sum(sum(x != IGNORE_INDEX for x in lab[1:]) for _, lab in seqs)

    loss = packed(batch)
    loss.backward()
    ref_loss = sum(_hf_loss_sum(ref, ids, lab) for ids, lab in seqs)
    assert isinstance(ref_loss, torch.Tensor)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-4, rtol=1e-5)
    got = dict(packed.causal_lm.named_parameters())
    for name, p in ref.named_parameters():
        assert got[name].grad is not None, name
        torch.testing.assert_close(got[name].grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("frozen_weight", [False, True])
def test_chunked_linear_cross_entropy_matches_reference(frozen_weight: bool) -> None:
    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    w = torch.randn(101, 16, requires_grad=not frozen_weight)
    t = torch.randint(0, 101, (37,))
    loss = linear_cross_entropy_sum(h, w, t, chunk_rows=8)
    loss.backward()
    gh, gw = h.grad, w.grad
    h.grad = None
    w.grad = None
    ref = cross_entropy(h @ w.T, t, reduction="sum")
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, h.grad)
    if frozen_weight:
        assert gw is None
    else:
        torch.testing.assert_close(gw, w.grad)


def test_no_loss_tokens_gives_zero_loss_with_a_graph() -> None:
    h = torch.randn(0, 4, requires_grad=True)
    w = torch.randn(9, 4, requires_grad=True)
    loss = linear_cross_entropy_sum(h, w, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0
    assert w.grad is not None


def test_flash_attention_needs_cuda() -> None:
    with pytest.raises(ValueError, match="needs CUDA"):
        packed_attention.resolve_attn_implementation("flash_attention_2", torch.device("cpu"))
    assert (
        packed_attention.resolve_attn_implementation("auto", torch.device("cpu")) == "packed_sdpa"
    )


def _qkv(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(1, 4, t, 8), torch.randn(1, 2, t, 8), torch.randn(1, 2, t, 8)


def test_packed_attention_without_sequence_bounds_raises() -> None:
    """No bounds would make the pack one causal sequence, each conversation seeing the last."""
    q, k, v = _qkv(6)
    module = torch.nn.Module()
    with pytest.raises(ValueError, match="needs packed_seq_bounds"):
        packed_attention.packed_sdpa_attention(module, q, k, v, None)
    with pytest.raises(ValueError, match="from 0 to the row length 6"):
        packed_attention.packed_sdpa_attention(module, q, k, v, None, packed_seq_bounds=(0, 4))
    out, _ = packed_attention.packed_sdpa_attention(
        module, q, k, v, None, packed_seq_bounds=(0, 4, 6)
    )
    # The second segment attends only to itself: the same as running it alone.
    alone, _ = packed_attention.packed_sdpa_attention(
        module, q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], None, packed_seq_bounds=(0, 2)
    )
    torch.testing.assert_close(out[:, 4:], alone)


def test_bf16_linear_cross_entropy_matches_torch_within_bf16_tolerance() -> None:
    """The GPU path (compute_dtype=bf16), run on the CPU against F.cross_entropy.

    Reference: the same bf16 matmul torch autocast would run, logits upcast to fp32 for the
    softmax, gradients by autograd; ours forms them chunk by chunk in the forward. Tolerances:
    the loss sums the same fp32 values in another order (1e-4 relative); gradients pass through
    bf16 (8 mantissa bits, relative step 2**-8 = 0.0039) and are accumulated in a different
    order, so entries agree to 1e-2 relative plus 1e-2 absolute; against exact fp32 math the loss
    is within 2e-2.
    """
    torch.manual_seed(0)
    h = torch.randn(67, 32, requires_grad=True)
    w = (torch.randn(301, 32) * 0.2).requires_grad_()
    t = torch.randint(0, 301, (67,))
    loss = linear_cross_entropy_sum(h, w, t, chunk_rows=16, compute_dtype=torch.bfloat16)
    loss.backward()
    gh, gw = h.grad, w.grad
    assert gh is not None
    assert gw is not None
    assert (gh.dtype, gw.dtype) == (h.dtype, w.dtype)  # fp32 master weights keep fp32 grads
    h.grad = w.grad = None
    ref = cross_entropy((h.bfloat16() @ w.bfloat16().T).float(), t, reduction="sum")
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=0)
    torch.testing.assert_close(gh, h.grad, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(gw, w.grad, rtol=1e-2, atol=1e-2)
    exact = cross_entropy(h.detach() @ w.detach().T, t, reduction="sum")
    torch.testing.assert_close(loss.detach(), exact, rtol=2e-2, atol=0)
