"""DPO on packed preference rows: the prompt computed once per pair, the reference without a copy.

A row holds pairs as ``[prompt | chosen | rejected]`` triplets (`training.data.preference`).
With `share_prompt` (the default) the forward pass reads each prompt once: prompt + chosen is one
causal segment, and rejected is a segment whose prefix is the prompt (it sees the prompt and
itself, never chosen), its positions continuing from the prompt's end. The last prompt position
predicts the first token of both completions, so it appears twice among the loss positions, once
per target. Without `share_prompt` the row is laid out as ``[prompt | chosen][prompt | rejected]``,
two plain segments (the layout every other trainer uses, and the ablation in `bench-dpo`).

The reference costs no second model: with LoRA its log-probs come from the same weights with the
adapters disabled (a no-grad pass, no activations kept); for full fine-tuning they are computed
once before training (`training.loop.reference`) and arrive with the batch.

Loss (DPO, sigmoid form, as TRL's ``loss_type="sigmoid"``): with ``z = beta * ((pi_c - pi_r) -
(ref_c - ref_r))`` over summed completion log-probs, ``loss = -(1 - ls) log s(z) - ls log s(-z)``
(``ls``: label smoothing, conservative DPO), plus ``sft_weight`` x the chosen completion's mean
token NLL (RPO) when set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.functional import logsigmoid

from training.data.packing import IGNORE_INDEX
from training.data.preference import pairs_in
from training.loop import host_memory
from training.model import packed_attention
from training.model.loss import linear_log_probs
from training.model.modeling import MicroBatch, PackedCausalLM

# Per-step sums the trainer divides by the number of pairs (TRL's metric names).
STATS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
)


@dataclass
class PairBatch:
    """Packed pairs on the device: `lm` as for SFT, plus which pair and side each loss row is."""

    lm: MicroBatch
    side: torch.Tensor  # [N]: 2 * pair + (0 chosen | 1 rejected) for each loss position
    num_pairs: int
    reference: torch.Tensor | None = None  # [pairs, 2] precomputed reference log-probs

    @property
    def num_tokens(self) -> int:
        return self.lm.num_tokens

    @property
    def num_loss_tokens(self) -> int:
        return self.lm.num_loss_tokens


def make_pair_batch(
    input_ids: np.ndarray,
    labels: np.ndarray,
    seq_lens: np.ndarray,
    device: torch.device,
    *,
    share_prompt: bool = True,
    reference: np.ndarray | None = None,
) -> PairBatch:
    """A `PairBatch` from a preference row (triplets in `seq_lens`)."""
    n_pairs = pairs_in(seq_lens)
    ids, positions, segments, prefixes = [], [], [], []
    loss_at, targets, side = [], [], []
    src = at = 0  # offsets in the stored row and in the row we build
    for k in range(n_pairs):
        p, c, r = (int(x) for x in seq_lens[3 * k : 3 * k + 3])
        prompt = input_ids[src : src + p]
        chosen = slice(src + p, src + p + c)
        rejected = slice(src + p + c, src + p + c + r)
        # Per completion: its slice of the stored row, where its tokens start in our row, and
        # the position that predicts its first token (the last token of the prompt it follows).
        if share_prompt:
            ids += [input_ids[src : src + p + c + r]]
            positions += [np.arange(p + c), p + np.arange(r)]
            segments += [p + c, r]
            prefixes += [None, (at, at + p)]
            layout = [(chosen, at + p, at + p - 1), (rejected, at + p + c, at + p - 1)]
        else:
            ids += [prompt, input_ids[chosen], prompt, input_ids[rejected]]
            positions += [np.arange(p + c), np.arange(p + r)]
            segments += [p + c, p + r]
            prefixes += [None, None]
            layout = [(chosen, at + p, at + p - 1), (rejected, at + 2 * p + c, at + 2 * p + c - 1)]
        for s, (part, start, first) in enumerate(layout):
            lab = labels[part]
            where = np.nonzero(lab != IGNORE_INDEX)[0]
            predictors = start + where - 1  # token j is predicted by the position before it
            predictors[where == 0] = first
            loss_at.append(predictors)
            targets.append(lab[where])
            side.append(np.full(len(where), 2 * k + s))
        src += p + c + r
        at += (p + c + r) if share_prompt else (2 * p + c + r)
    row = np.concatenate(ids).astype(np.int64)
    loss_positions = np.concatenate(loss_at).astype(np.int64)
    lm = MicroBatch(
        input_ids=torch.as_tensor(row, device=device)[None],
        position_ids=torch.as_tensor(np.concatenate(positions).astype(np.int64), device=device)[
            None
        ],
        loss_positions=torch.as_tensor(loss_positions, device=device),
        targets=torch.as_tensor(np.concatenate(targets).astype(np.int64), device=device),
        attn_kwargs=packed_attention.packed_kwargs(
            np.asarray(segments), device, tuple(prefixes) if share_prompt else None
        ),
        num_tokens=int(row.shape[0]),
        num_loss_tokens=int(loss_positions.shape[0]),
    )
    ref = None
    if reference is not None:
        if reference.shape != (n_pairs, 2):
            raise ValueError(f"reference log-probs {reference.shape} for {n_pairs} pairs")
        ref = torch.as_tensor(reference, dtype=torch.float32, device=device)
    return PairBatch(lm, torch.as_tensor(np.concatenate(side), device=device), n_pairs, ref)


def dpo_loss(
    policy: torch.Tensor, reference: torch.Tensor, *, beta: float, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses and the implicit rewards ``beta * (pi - ref)`` of each side.

    `policy` and `reference` are `[pairs, 2]` summed log-probs (chosen, rejected).
    """
    z = beta * ((policy[:, 0] - policy[:, 1]) - (reference[:, 0] - reference[:, 1]))
    losses = -(1 - label_smoothing) * logsigmoid(z) - label_smoothing * logsigmoid(-z)
    rewards = beta * (policy - reference).detach()
    return losses, rewards[:, 0], rewards[:, 1]


class PreferenceLM(PackedCausalLM):
    """`forward(batch) -> (summed DPO loss, summed STATS)` over the batch's pairs.

    A `PackedCausalLM` itself, so its parameters, checkpoints and exports are named as SFT's.
    """

    def __init__(
        self,
        causal_lm: nn.Module,
        *,
        chunk_rows: int,
        compute_dtype: torch.dtype | None,
        beta: float,
        label_smoothing: float = 0.0,
        sft_weight: float = 0.0,
    ) -> None:
        super().__init__(causal_lm, chunk_rows=chunk_rows, compute_dtype=compute_dtype)
        self.beta = beta
        self.label_smoothing = label_smoothing
        self.sft_weight = sft_weight

    def log_probs(self, batch: PairBatch) -> torch.Tensor:
        """Summed completion log-probs, `[pairs, 2]` (chosen, rejected)."""
        hidden = self.hidden_states(batch.lm).index_select(0, batch.lm.loss_positions)
        if hidden.device.type == "cpu":
            host_memory.release_freed_heap()
        rows = linear_log_probs(
            hidden,
            self.base().lm_head.weight,
            batch.lm.targets,
            chunk_rows=self.chunk_rows,
            compute_dtype=self.compute_dtype,
        )
        sums = rows.new_zeros(2 * batch.num_pairs).index_add(0, batch.side, rows)
        return sums.view(batch.num_pairs, 2)

    @torch.no_grad()
    def reference_log_probs(self, batch: PairBatch) -> torch.Tensor:
        if batch.reference is not None:
            return batch.reference
        model: Any = self.causal_lm
        if not hasattr(model, "disable_adapter"):
            raise ValueError(
                "full fine-tuning needs precomputed reference log-probs (dpo.reference="
                "precomputed); only a LoRA model can serve as its own reference"
            )
        with model.disable_adapter():
            return self.log_probs(batch)

    def forward(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        reference = self.reference_log_probs(batch)
        policy = self.log_probs(batch)
        losses, chosen, rejected = dpo_loss(
            policy, reference, beta=self.beta, label_smoothing=self.label_smoothing
        )
        if self.sft_weight:
            tokens = torch.bincount(batch.side, minlength=2 * batch.num_pairs).view(-1, 2)
            losses = losses - self.sft_weight * policy[:, 0] / tokens[:, 0].clamp(min=1)
        p = policy.detach()
        stats = torch.stack(
            [
                chosen.sum(),
                rejected.sum(),
                (chosen - rejected).sum(),
                (chosen > rejected).float().sum(),
                p[:, 0].sum(),
                p[:, 1].sum(),
            ]
        )
        return losses.sum(), stats
