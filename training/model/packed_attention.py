"""Attention over packed rows that never crosses a sequence boundary.

A pack is one `[1, T]` row holding several conversations. A block-diagonal mask would make SDPA
compute (and then discard) every cross-sequence score, `#seqs` times the useful work; instead
`packed_sdpa` runs causal SDPA once per sequence segment, so compute scales with sum(len_i^2).
On CUDA with `flash-attn` installed, transformers' `flash_attention_2/3` consume the same
`cu_seq_lens_*` kwargs as varlen FlashAttention, so one call site serves both.

A segment may also attend to an earlier span of the row, its *prefix* (`packed_seq_prefixes`):
DPO's shared-prompt rows lay a pair out as ``[prompt | chosen | rejected]`` and let the rejected
segment see the prompt and itself, never the chosen one. Such a segment's keys are the prefix's
followed by its own, under a causal mask aligned to the bottom right (every prefix key visible,
causal within the segment). transformers' FlashAttention integrations know nothing of prefixes,
so `training.config` refuses them for rows with prefixes rather than let them misread one.

It is registered with transformers' `AttentionInterface`; because it has no entry in the mask
interface, transformers builds no mask at all for it (no O(T^2) mask per step).
"""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any

import numpy as np
import torch
from torch.nn.functional import scaled_dot_product_attention as sdpa

PACKED_SDPA = "packed_sdpa"


def packed_sdpa_attention(  # noqa: PLR0917 - transformers calls it positionally
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """query `[1, H, T, D]`, key/value `[1, Hkv, T, D]` -> `[1, T, H, D]`, causal per segment.

    Segment bounds come from `packed_seq_bounds` (python ints, so no device sync per layer; see
    `packed_kwargs`). They are required: without them a packed row would silently attend as one
    causal sequence, each conversation seeing the ones before it.
    """
    bounds: tuple[int, ...] | None = kwargs.get("packed_seq_bounds")
    if attention_mask is not None:
        raise ValueError("packed_sdpa takes segment bounds, not an attention mask")
    if bounds is None:
        raise ValueError(
            "packed_sdpa needs packed_seq_bounds (training.model.packed_attention.packed_kwargs); "
            "without them the row would attend as one sequence across conversation boundaries"
        )
    if query.shape[0] != 1:
        raise ValueError(f"packed rows have batch size 1, got {query.shape[0]}")
    if key.shape[2] != query.shape[2]:
        raise ValueError("packed_sdpa is for training (no KV cache); use sdpa to generate")
    if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != query.shape[2]:
        raise ValueError(
            f"packed_seq_bounds must run from 0 to the row length {query.shape[2]}, "
            f"got {bounds[:3]}...{bounds[-1:]}"
        )
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        # Materialised GQA: SDPA's enable_gqa path falls back to the slow math kernel on CPU.
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    p = dropout if module.training else 0.0
    prefixes: tuple[tuple[int, int] | None, ...] | None = kwargs.get("packed_seq_prefixes")
    if prefixes is not None and any(prefixes):
        out = _with_prefixes(query, key, value, bounds, prefixes, p, scaling)
    elif len(bounds) == 2:
        out = sdpa(query, key, value, is_causal=True, dropout_p=p, scale=scaling)
    else:
        # split (not slicing): its backward is one concatenation, where each slice's backward
        # would zero-fill a full-size gradient per segment.
        lens = [b - a for a, b in itertools.pairwise(bounds)]
        parts = [
            sdpa(q, k, v, is_causal=True, dropout_p=p, scale=scaling)
            for q, k, v in zip(
                query.split(lens, dim=2),
                key.split(lens, dim=2),
                value.split(lens, dim=2),
                strict=True,
            )
        ]
        out = torch.cat(parts, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _with_prefixes(  # noqa: PLR0917
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bounds: tuple[int, ...],
    prefixes: tuple[tuple[int, int] | None, ...],
    p: float,
    scaling: float | None,
) -> torch.Tensor:
    """Causal SDPA per segment; a segment with a prefix `(a, b)` also sees keys `a:b`."""
    if len(prefixes) != len(bounds) - 1:
        raise ValueError(f"{len(prefixes)} prefixes for {len(bounds) - 1} segments")
    lens = [b - a for a, b in itertools.pairwise(bounds)]
    parts = []
    for (start, _), q, k_own, v_own, prefix in zip(
        itertools.pairwise(bounds),
        query.split(lens, dim=2),
        key.split(lens, dim=2),
        value.split(lens, dim=2),
        prefixes,
        strict=True,
    ):
        if prefix is None:
            parts.append(sdpa(q, k_own, v_own, is_causal=True, dropout_p=p, scale=scaling))
            continue
        a, b = prefix
        if not 0 <= a < b <= start:
            raise ValueError(f"prefix {prefix} of the segment at {start} is not before it")
        k = torch.cat([key[:, :, a:b], k_own], dim=2)
        v = torch.cat([value[:, :, a:b], v_own], dim=2)
        n, m = q.shape[2], k.shape[2]
        # Bottom-right causal: query i sees every prefix key and segment keys 0..i.
        mask = torch.ones(n, m, dtype=torch.bool, device=q.device).tril_(m - n)
        parts.append(sdpa(q, k, v, attn_mask=mask, dropout_p=p, scale=scaling))
    return torch.cat(parts, dim=2)


def register() -> None:
    """Make `packed_sdpa` a valid `attn_implementation` (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)


def flash_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()


def resolve_attn_implementation(requested: str, device: torch.device) -> str:
    """`auto` picks FlashAttention varlen on CUDA when installed, else per-segment SDPA."""
    if requested == "auto":
        return "flash_attention_2" if device.type == "cuda" and flash_available() else PACKED_SDPA
    if requested.startswith("flash_attention") and device.type != "cuda":
        raise ValueError(f"{requested} needs CUDA; use packed_sdpa on {device.type}")
    return requested


def packed_kwargs(
    seq_lens: np.ndarray,
    device: torch.device,
    prefixes: tuple[tuple[int, int] | None, ...] | None = None,
) -> dict[str, Any]:
    """Forward kwargs describing a packed row: varlen FlashAttention and packed_sdpa both read
    them; transformers passes unknown attention kwargs through every decoder layer."""
    bounds = np.concatenate([[0], np.cumsum(seq_lens)]).astype(np.int64)
    cu = torch.as_tensor(bounds, dtype=torch.int32, device=device)
    max_len = int(seq_lens.max())
    extra = {"packed_seq_prefixes": prefixes} if prefixes is not None else {}
    return {
        **extra,
        "packed_seq_bounds": tuple(int(b) for b in bounds),
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": max_len,
        "max_length_k": max_len,
    }
