"""The trained module: a Qwen3 causal LM (optionally LoRA-wrapped) whose forward takes one packed
row and returns the summed loss over loss-bearing positions only.

Wrapping the whole model in one `nn.Module` matters for distribution: DDP and FSDP2 hook the
wrapper's forward, so the root parameters (embeddings, final norm, lm_head) are gathered even
though the loss uses `lm_head.weight` directly instead of calling `lm_head` on every position.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.data.packing import IGNORE_INDEX
from training.loop import host_memory
from training.loop.checkpoint import refusing_pickles
from training.model import packed_attention
from training.model.dirs import local_dir
from training.model.loss import linear_cross_entropy_sum, shift_targets


@dataclass
class MicroBatch:
    """One packed row on the device, plus the positions that carry loss and their targets."""

    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T], restarting at 0 per sequence
    loss_positions: torch.Tensor  # [N] indices into T
    targets: torch.Tensor  # [N] next-token ids
    attn_kwargs: dict[str, Any]
    num_tokens: int
    num_loss_tokens: int


def make_micro_batch(
    input_ids: np.ndarray,
    labels: np.ndarray,
    seq_lens: np.ndarray,
    device: torch.device,
    *,
    all_tokens: bool = False,
) -> MicroBatch:
    """`all_tokens=True` (continued pre-training): loss on every next token of each sequence."""
    labels = input_ids if all_tokens else labels
    targets = shift_targets(labels.astype(np.int64), seq_lens)
    where = np.nonzero(targets != IGNORE_INDEX)[0]
    pos = np.concatenate([np.arange(n) for n in seq_lens]).astype(np.int64)
    return MicroBatch(
        input_ids=torch.as_tensor(input_ids.astype(np.int64), device=device)[None],
        position_ids=torch.as_tensor(pos, device=device)[None],
        loss_positions=torch.as_tensor(where, device=device),
        targets=torch.as_tensor(targets[where], device=device),
        attn_kwargs=packed_attention.packed_kwargs(seq_lens, device),
        num_tokens=int(input_ids.shape[0]),
        num_loss_tokens=int(where.shape[0]),
    )


class PackedCausalLM(nn.Module):
    """`forward(batch) -> summed CE` over `batch.loss_positions`; logits exist only there."""

    def __init__(
        self, causal_lm: nn.Module, *, chunk_rows: int, compute_dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.causal_lm = causal_lm
        self.chunk_rows = chunk_rows
        self.compute_dtype = compute_dtype

    def base(self) -> Any:
        """The `*ForCausalLM` underneath any peft wrapper (LoRA layers live inside it)."""
        m: Any = self.causal_lm
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def hidden_states(self, batch: MicroBatch) -> torch.Tensor:
        out = self.base().model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=None,
            use_cache=False,
            **batch.attn_kwargs,
        )
        hidden: torch.Tensor = out.last_hidden_state[0]
        return hidden

    def forward(self, batch: MicroBatch) -> torch.Tensor:
        hidden = self.hidden_states(batch).index_select(0, batch.loss_positions)
        if hidden.device.type == "cpu":
            host_memory.release_freed_heap()  # before the step's largest blocks are allocated
        return linear_cross_entropy_sum(
            hidden,
            self.base().lm_head.weight,
            batch.targets,
            chunk_rows=self.chunk_rows,
            compute_dtype=self.compute_dtype,
        )


def load_causal_lm(config: TrainConfig, device: torch.device, *, bf16: bool) -> tuple[Any, Any]:
    """Load tokenizer + model with packed attention, LoRA and checkpointing as configured.

    Full fine-tuning keeps fp32 master weights (bf16 autocast does the math); LoRA loads the
    frozen base in bf16 on GPU because only the adapters need fp32.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    packed_attention.register()
    requested: str = config.model.attn_implementation
    if config.objective == "dpo" and config.dpo.share_prompt and requested == "auto":
        requested = packed_attention.PACKED_SDPA  # the only one that reads prompt prefixes
    impl = packed_attention.resolve_attn_implementation(requested, device)
    path = local_dir(config.model.name_or_path, what="model.name_or_path")
    tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if (bf16 and config.lora.enabled) else torch.float32
    with refusing_pickles(path):
        model: Any = AutoModelForCausalLM.from_pretrained(
            path, attn_implementation=impl, dtype=dtype
        )
    model.config.use_cache = False
    if config.lora.enabled:
        model = with_lora(
            model,
            r=config.lora.r,
            alpha=config.lora.alpha,
            dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
        )
        for p in model.parameters():  # adapters train in fp32 even over a bf16 base
            if p.requires_grad:
                p.data = p.data.float()
    if config.model.gradient_checkpointing:
        # transformers 5.23's name; `gradient_checkpointing_enable` is its deprecated alias.
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    model.to(device)
    model.train()
    return model, tokenizer


@contextmanager
def quiet_peft_probe() -> Iterator[None]:
    """While peft wraps or loads a model: peft 0.21 probes ``model.is_gradient_checkpointing``
    (``PeftModel.__init__``), a property transformers 5.23 deprecates with a FutureWarning on
    every read. The probe is peft's, not ours, so only that one warning is filtered, only here;
    our own calls use the current ``activation_checkpointing_*`` names."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def with_lora(
    model: Any, *, r: int, alpha: int, dropout: float, target_modules: Sequence[str]
) -> Any:
    """`model` wrapped by peft with LoRA adapters on `target_modules` (train and export)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    with quiet_peft_probe():
        return get_peft_model(model, config)
