"""How often a model ranks the chosen completion above the rejected one on held-out pairs, and by
how much, per mistake kind: the preference half of `training.evaluate --pairs`.

A pair's margin is ``log p(chosen) - log p(rejected)`` summed over each completion's tokens,
computed as training computes it (`training.model.preference`, prompt once per pair). Rising
accuracy and margin after DPO mean the model moved away from the mistakes the pairs show; the
generation metrics of `training.evaluate` then say whether its own answers improved.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.conversation import RecordError
from training.data.formats import numbered_lines
from training.data.preference import (
    PairExample,
    PreferenceRecord,
    encode_pairs,
    pair_segments,
    parse_preference,
)
from training.model import packed_attention
from training.model.preference import PreferenceLM, make_pair_batch


def load_pairs(path: Path) -> list[PreferenceRecord]:
    """Held-out pairs; a bad record here is a broken eval set, so it raises with its line."""
    records = []
    for number, raw in numbered_lines(path):
        record = raw if isinstance(raw, RecordError) else parse_preference(raw, number)
        if isinstance(record, RecordError):
            raise ValueError(f"{path}: {record.reason}")
        records.append(record)
    return records


@torch.no_grad()
def rank_pairs(
    model: Any, tokenizer: Any, records: list[PreferenceRecord], *, enable_thinking: bool = True
) -> dict[str, Any]:
    """`preference_accuracy`, `preference_margin` overall and `by_mistake` (``meta.mistake``).

    The model's attention is switched to `packed_sdpa` (which reads the shared-prompt rows) for
    the scoring and back afterwards, so one loaded model serves generation and this."""
    encoded = encode_pairs(tokenizer, records, max_length=1 << 62, enable_thinking=enable_thinking)
    pairs: list[PairExample] = []
    for rec, pair in zip(records, encoded, strict=True):
        if isinstance(pair, Exception):
            raise ValueError(f"line {rec.source_line}: {pair}")
        pairs.append(pair)
    lm = PreferenceLM(model, chunk_rows=1024, compute_dtype=None, beta=1.0)
    before = model.config._attn_implementation
    packed_attention.register()
    model.set_attn_implementation(packed_attention.PACKED_SDPA)
    margins: list[float] = []
    try:
        for pair in pairs:  # one pair per row: no pack budget to choose
            ids, labels, lens = pair_segments(pair)
            logps = lm.log_probs(make_pair_batch(ids, labels, np.asarray(lens), model.device))[0]
            margins.append(float(logps[0] - logps[1]))
    finally:
        model.set_attn_implementation(before)
    groups: dict[str, list[float]] = defaultdict(list)
    for rec, margin in zip(records, margins, strict=True):
        groups[str(rec.record.get("meta", {}).get("mistake", "unlabelled"))].append(margin)
    return {
        **_summary(margins),
        "by_mistake": {kind: _summary(ms) for kind, ms in sorted(groups.items())},
    }


def _summary(margins: list[float]) -> dict[str, Any]:
    n = len(margins)
    return {
        "pairs": n,
        "preference_accuracy": sum(m > 0 for m in margins) / n if n else None,
        "preference_margin": sum(margins) / n if n else None,
    }
