"""Matmul FLOPs of a Qwen3 body, and this machine's matmul peak at the body's own GEMM sizes.

`model_flops` counts the work the loss needs, the same for every trainer: forward and backward
(backward is twice the forward) of every linear layer over the real tokens, causal attention
(QK^T and AV) within each conversation, and the LM head at loss-bearing rows only. Padding,
cross-conversation attention, logits nobody reads and checkpointing's recomputation are not
counted: they are what a trainer wastes, and utilisation should show it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from benchmarks.common import best_seconds


def causal_pairs(lengths: Iterable[int]) -> int:
    """sum(L * (L + 1)): twice the query-key pairs causal attention scores, per head and layer."""
    return sum(n * (n + 1) for n in lengths)


@dataclass(frozen=True)
class Body:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    def linear_macs_per_token(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = (
            self.hidden * (q + 2 * kv) + q * self.hidden + 3 * self.hidden * self.intermediate
        )
        return self.layers * per_layer

    def attention_macs(self, lengths: Iterable[int]) -> int:
        """QK^T and AV under a causal mask: L(L+1)/2 scores each, per head and layer."""
        return self.layers * self.heads * self.head_dim * causal_pairs(lengths)

    def attention_to_linear(self, lengths: list[int]) -> float:
        return self.attention_macs(lengths) / (self.linear_macs_per_token() * sum(lengths))

    def head_to_body(self) -> float:
        """LM head over body, per token that needs logits."""
        return self.hidden * self.vocab / self.linear_macs_per_token()

    def gemms(self, rows: int) -> list[tuple[int, int, int]]:
        """(m, k, n) of the body's projections for `rows` tokens."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return [(rows, h, q), (rows, h, kv), (rows, q, h), (rows, h, i), (rows, i, h)]


# Qwen/Qwen3-4B config.json (tie_word_embeddings true).
QWEN3_4B = Body(
    hidden=2560, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate=9728, vocab=151936
)


def model_flops(body: Body, *, sum_len: int, sum_len_sq: int, loss_tokens: int) -> float:
    """Forward + backward FLOPs (2 per MAC, backward twice forward) of the useful work.

    `sum_len_sq` is sum(L * (L + 1)) over the conversations, which sets the attention work.
    """
    attention = body.layers * body.heads * body.head_dim * sum_len_sq
    macs = (
        body.linear_macs_per_token() * sum_len + attention + body.hidden * body.vocab * loss_tokens
    )
    return 6.0 * macs


def matmul_peak(body: Body, rows: int = 2048, repeat: int = 5) -> dict[str, float]:
    """Best fp32 GFLOP/s of `torch.mm` at each of the body's GEMM shapes (torch's threads)."""
    import torch

    best: dict[str, float] = {}
    for m, k, n in body.gemms(rows):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)  # warm the kernel and the pages
        seconds = best_seconds(partial(torch.mm, a, b), repeat)
        best[f"{m}x{k}x{n}"] = 2 * m * k * n / seconds / 1e9
    return best
