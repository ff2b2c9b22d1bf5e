"""Cross-entropy on loss-bearing positions only, with the vocabulary projection chunked.

Qwen3's lm_head maps to 151,936 logits per token, and a tool-calling conversation takes loss on
a tenth to a third of its tokens. A plain `*ForCausalLM` forward projects every position and
keeps the full `[T, vocab]` logits; here the trainer gathers the hidden states whose next token
carries a label and projects only those, a chunk of rows at a time. Each chunk's gradient is
computed in the forward pass (as Liger's fused linear cross-entropy does), so at most one
`[chunk, vocab]` logits block is alive at any time and backward costs no recomputation.

TRL 1.16's `SFTTrainer` never builds full logits either: it patches in a chunked fused head
(`add_fused_lm_head`). On CUDA/XPU with Triton it projects only rows whose label is not -100;
elsewhere (the CPU included) it projects every position in tiles and recomputes each tile in
backward. `make bench-train` measures against the CPU path, so its LM-head gain is larger
than what to expect against TRL on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from training.data.packing import IGNORE_INDEX


def shift_targets(labels: np.ndarray, seq_lens: np.ndarray) -> np.ndarray:
    """Per-position next-token targets inside a pack, never across a sequence boundary.

    `labels` follow the Hugging Face convention (label[i] is token i, or -100), so position i
    predicts label[i + 1]; the last position of each sequence has no target.
    """
    targets = np.full(labels.shape, IGNORE_INDEX, dtype=np.int64)
    targets[:-1] = labels[1:]
    ends = np.cumsum(seq_lens) - 1
    targets[ends] = IGNORE_INDEX
    return targets


def _grad_buffers(
    hidden: torch.Tensor, weight: torch.Tensor, need_h: bool, need_w: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The gradients' buffers, only for the inputs that need one: `hidden`'s in its dtype, the
    lm_head's in float32 (summed over every chunk)."""
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
    return grad_h, grad_w


def _add_chunk_grads(
    g: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    *,
    span: slice,
    grad_h: torch.Tensor | None,
    grad_w: torch.Tensor | None,
) -> None:
    """Back-propagate one chunk's d(loss)/d(logits) `g` (already in the compute dtype) through
    `logits = h @ w.T` into the buffers: `grad_h[span]` set, `grad_w` added to."""
    if grad_h is not None:
        grad_h[span] = (g @ w).to(grad_h.dtype)
    if grad_w is not None and g.dtype == torch.float32:
        grad_w.addmm_(g.T, h)  # in place: no [vocab, hidden] temporary
    elif grad_w is not None:
        grad_w += (g.T @ h).float()


def _chunk_logits(
    hidden: torch.Tensor,
    w: torch.Tensor,
    targets: torch.Tensor,
    chunk_rows: int,
    compute_dtype: torch.dtype,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each chunk of rows as `(span, h, t, logits, rows)`: its slice of `hidden`, those rows in
    the compute dtype, their targets, their float32 logits `h @ w.T` and `arange(len(t))`, so
    only one `[chunk, vocab]` block is projected at a time."""
    for start in range(0, hidden.shape[0], chunk_rows):
        span = slice(start, start + chunk_rows)
        h = hidden[span].to(compute_dtype)
        t = targets[span]
        yield span, h, t, (h @ w.T).float(), torch.arange(t.shape[0], device=t.device)


class _LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden_i @ weight.T, target_i) with gradients formed chunk by chunk."""

    @staticmethod
    def forward(  # noqa: PLR0917 - autograd passes positionally
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk_rows: int,
        compute_dtype: torch.dtype,
        want_grad: bool,
    ) -> torch.Tensor:
        need_h = want_grad and ctx.needs_input_grad[0]
        need_w = want_grad and ctx.needs_input_grad[1]
        w = weight.to(compute_dtype)
        grad_h, grad_w = _grad_buffers(hidden, weight, need_h, need_w)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        chunks = _chunk_logits(hidden, w, targets, chunk_rows, compute_dtype)
        for span, h, t, logits, rows in chunks:
            # One [rows, vocab] buffer: torch.logsumexp would allocate a second one for
            # exp(logits - max), so the max-shifted exponentials are formed in place instead.
            target_logit = logits[rows, t]
            row_max = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(row_max).exp_()
            sum_exp = probs.sum(dim=-1, keepdim=True)
            lse = (sum_exp.log() + row_max).squeeze(1)
            total += (lse - target_logit).sum()
            if need_h or need_w:
                # d(sum CE)/d(logits) = softmax - one_hot, still in the same buffer.
                g = probs.div_(sum_exp)
                g[rows, t] -= 1.0
                _add_chunk_grads(g.to(compute_dtype), h, w, span=span, grad_h=grad_h, grad_w=grad_w)
        # Kept as plain attributes (they are neither inputs nor outputs), so backward can hand
        # them to autograd as the only reference: AccumulateGrad then adopts the lm_head gradient
        # instead of copying a [vocab, hidden] tensor.
        ctx.grads = [grad_h, grad_w]
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_h, grad_w = ctx.grads
        ctx.grads = [None, None]  # used once; scaled in place rather than copied
        gh = grad_h.mul_(grad_out) if grad_h is not None else None
        gw = grad_w.mul_(grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        del grad_h, grad_w
        return gh, gw, None, None, None, None


def linear_cross_entropy_sum(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_rows: int = 2048,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Summed cross-entropy of `hidden [N, H] @ weight[V, H].T` against `targets [N]`.

    The caller divides by the loss-token count of the whole optimizer step (see `train.py`).
    """
    if hidden.shape[0] == 0:
        return (hidden.sum() + weight.sum()) * 0.0  # keeps the graph (DDP) with a zero loss
    dtype = compute_dtype or hidden.dtype
    out: torch.Tensor = _LinearCrossEntropy.apply(
        hidden, weight, targets, chunk_rows, dtype, torch.is_grad_enabled()
    )
    return out


class _LinearLogProbs(torch.autograd.Function):
    """log_softmax(hidden_i @ weight.T)[target_i] per row, the vocabulary projected a chunk of
    rows at a time.

    Unlike `_LinearCrossEntropy`, the upstream gradient differs per row (DPO weights each pair's
    tokens by its own sigmoid), so the gradients cannot be formed in the forward pass; backward
    recomputes each chunk's logits instead. Peak memory stays one `[chunk, vocab]` block.
    """

    @staticmethod
    def forward(  # noqa: PLR0917 - autograd passes positionally
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk_rows: int,
        compute_dtype: torch.dtype,
    ) -> torch.Tensor:
        w = weight.to(compute_dtype)
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lses = torch.empty_like(out)
        chunks = _chunk_logits(hidden, w, targets, chunk_rows, compute_dtype)
        for span, _, t, logits, rows in chunks:
            lse = torch.logsumexp(logits, dim=-1)
            out[span] = logits[rows, t] - lse
            lses[span] = lse
        ctx.save_for_backward(hidden, weight, targets, lses)
        ctx.chunk_rows = chunk_rows
        ctx.compute_dtype = compute_dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        hidden, weight, targets, lses = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(ctx.compute_dtype)
        grad_h, grad_w = _grad_buffers(hidden, weight, need_h, need_w)
        chunks = _chunk_logits(hidden, w, targets, ctx.chunk_rows, ctx.compute_dtype)
        for span, h, t, logits, rows in chunks:
            # d logp / d logits = one_hot - softmax, scaled by each row's upstream gradient.
            g = logits.sub_(lses[span, None]).exp_().neg_()
            g[rows, t] += 1.0
            g.mul_(grad_out[span, None])
            g = g.to(ctx.compute_dtype)
            _add_chunk_grads(g, h, w, span=span, grad_h=grad_h, grad_w=grad_w)
        gw = grad_w.to(weight.dtype) if grad_w is not None else None
        return grad_h, gw, None, None, None


def linear_log_probs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_rows: int = 2048,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Per-row log-probability of `targets [N]` under `hidden [N, H] @ weight[V, H].T`, `[N]`."""
    if hidden.shape[0] == 0:
        return (hidden.sum() + weight.sum()) * 0.0 + hidden.new_zeros(0, dtype=torch.float32)
    dtype = compute_dtype or hidden.dtype
    out: torch.Tensor = _LinearLogProbs.apply(hidden, weight, targets, chunk_rows, dtype)
    return out
