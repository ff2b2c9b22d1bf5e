"""TRL's `DPOTrainer` as the reference DPO for benchmarks: built on pre-tokenised pairs, LoRA,
fp32 on CPU, and its loss read on one batch without a step.

What TRL 1.16.0 does per optimizer step in this setup (lines in the installed `trl/` package; a
bare `:N` is in `trainer/dpo_trainer.py`):

- **Data**: its `_prepare_dataset` always extracts a prompt and tokenises text columns
  (`:1048-1132`); id columns alone fail in `extract_prompt` (KeyError 'chosen'). So this module
  feeds `prompt_ids`/`chosen_ids`/`rejected_ids` through a subclass whose `_prepare_dataset`
  returns the dataset as given; everything after that is TRL's own code.
- **Batch**: `DataCollatorForPreference` (`:146-207`) builds 2B rows, every prompt+chosen row
  then every prompt+rejected row (the prompt is duplicated), right-padded to the longest row;
  `completion_mask` is 1 on every chosen/rejected token. No padding-free path
  (`padding_free=True` falls back to padding, `:732-739`), `max_length=None` here: no truncation.
- **Policy forward**: one forward with gradients over the 2B rows (`:1299`) through TRL's fused,
  chunked LM head (`trainer/utils.py:1548-1698`): per-token log-probs without the
  `[rows, T, V]` logits, in tiles of 4096 tokens x 32768 vocabulary, the backward recomputing
  each tile. On CPU (no Triton) the head projects every position of every row, prompt and padding
  included, and masks afterwards (`trainer/utils.py:1640-1660`); only CUDA/XPU with Triton
  project completion positions alone. The head also computes entropy, mean logit and top-1 flags
  for the logs (`:957-960`), in the reference forward too (the same patched model).
- **Reference**: with a PEFT model and no `ref_model`, a second forward over the same 2B rows
  under `torch.no_grad`, adapters disabled (`:1327-1336`, `trainer/utils.py:1442-1444`), with
  gradient checkpointing switched off for it and back on after (`models/utils.py:397-414`; each
  re-enable adds one more input-embedding hook: transformers removes them only for its own PEFT
  mixin).
- **Loss** (`loss_type="sigmoid"`): sequence log-probs are sums over completion tokens
  (`:1304`, `:1341`), and the loss is the mean over pairs of
  `-logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))` (`:1388`, `:1528`). `label_smoothing`
  does not enter it (only `robust`, `exo_pair`, `aot*` read it), so this module refuses a non-zero
  value rather than compare against a loss that silently ignores it.
- **Logs** (`:1536-1601`): `entropy`, `num_tokens`, `logits/chosen|rejected`,
  `mean_token_accuracy`, `rewards/chosen|rejected|accuracies|margins` (rewards are
  `beta * (pi - ref)`), `logps/chosen|rejected` (batch means of the summed log-probs).
- Then Trainer's backward, grad-norm clip, AdamW and LR scheduler, as configured below.

The LoRA adapter is given as `peft_config` (TRL's documented way to train a new adapter; a
`PeftModel` passed in is treated as an adapter to continue, and TRL copies it into a frozen "ref"
adapter that the reference forward then runs, `:666-694`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from peft import LoraConfig
    from trl import DPOTrainer


class Pair(TypedDict):
    """One preference pair, already tokenised: the prompt ends with `<|im_start|>assistant\\n`,
    each completion with `<|im_end|>`."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def _example(p: Pair) -> dict[str, list[int]]:
    """A pair in the columns TRL's collator reads (`dpo_trainer.py:147-150`)."""
    return {
        "prompt_ids": list(p["prompt_ids"]),
        "chosen_ids": list(p["chosen_ids"]),
        "rejected_ids": list(p["rejected_ids"]),
    }


def trl_trainer(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    *,
    peft_config: LoraConfig,
    beta: float,
    label_smoothing: float,
    pairs_per_step: int,
    steps: int,
    gradient_checkpointing: bool,
    lr: float,
    output_dir: str,
    seed: int = 0,
) -> DPOTrainer:
    """TRL's `DPOTrainer` on `model` (a plain causal LM; TRL wraps it with `peft_config`), with
    `ref_model=None` (reference = adapters disabled), fp32 on CPU, `pairs` read in order,
    `pairs_per_step` pairs per optimizer step (one micro-batch), nothing saved, reported or
    evaluated. Optimizer settings mirror our trainer's: AdamW (fused), no weight decay, clip 1.0,
    cosine to 0 with no warm-up. `trainer.train()` runs `steps` optimizer steps."""
    import datasets
    from trl import DPOConfig, DPOTrainer

    if label_smoothing != 0.0:
        raise ValueError(
            "TRL 1.16.0's sigmoid DPO loss does not use label_smoothing "
            "(trl/trainer/dpo_trainer.py:1387-1388); compare with label_smoothing=0"
        )

    class PreTokenisedDPOTrainer(DPOTrainer):
        """Takes id columns as they are: 1.16.0 would re-tokenise text and fails on ids."""

        def _prepare_dataset(self, dataset: Any, *_: Any) -> Any:
            return dataset

    args = DPOConfig(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=pairs_per_step,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",  # the optimizer our trainer uses on CPU
        loss_type=["sigmoid"],
        beta=beta,
        label_smoothing=label_smoothing,
        max_length=None,  # no truncation; pairs come pre-checked by prepare
        precompute_ref_log_probs=False,  # the per-step reference forward is what we compare
        activation_checkpointing=gradient_checkpointing,  # `gradient_checkpointing` mirrors it
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        train_sampling_strategy="sequential",
        seed=seed,
    )
    return PreTokenisedDPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=datasets.Dataset.from_list([_example(p) for p in pairs]),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def trl_first_batch_loss(trainer: DPOTrainer, pairs: Sequence[Pair]) -> dict[str, Any]:
    """TRL's DPO loss on the first micro-batch of `pairs`, by TRL's collator and `compute_loss`
    (through its `prediction_step`: no gradients, no optimizer step), with each pair's summed
    policy and reference log-probs as TRL's two forwards produced them, and TRL's logged metrics
    for that batch. `loss_check` recomputes the loss from those log-probs."""
    import torch
    from torch.nn.functional import logsigmoid

    n = int(trainer.args.per_device_train_batch_size)
    batch = trainer.data_collator([_example(p) for p in pairs[:n]])
    seq_len = batch["completion_mask"].shape[1] - 1
    per_call: list[torch.Tensor] = []  # summed log-probs, [chosen rows; rejected rows] per forward

    def grab(_module: Any, _args: Any, out: Any) -> None:
        per_call.append(out.log_probs[:, -seq_len:].detach().sum(dim=1))  # as dpo_trainer.py:1304

    model: Any = trainer.model
    was_training = model.training
    handle = model.register_forward_hook(grab)
    trainer._metrics["eval"].clear()
    model.eval()  # dropout is already off (disable_dropout); eval only routes TRL's logs to "eval"
    try:
        loss, _, _ = trainer.prediction_step(model, batch, prediction_loss_only=True)
    finally:
        handle.remove()
        model.train(was_training)
    metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    trainer._metrics["eval"].clear()
    if len(per_call) != 2:
        raise RuntimeError(f"expected TRL's policy and reference forwards, saw {len(per_call)}")
    chosen, rejected = per_call[0].chunk(2)
    ref_chosen, ref_rejected = per_call[1].chunk(2)
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    chosen_tokens, rejected_tokens = batch["completion_mask"].sum(dim=1).chunk(2)
    return {
        "loss": float(loss),
        "loss_check": float(-logsigmoid(trainer.beta * margin).mean()),
        "log2": math.log(2.0),
        "chosen_logps": chosen.tolist(),
        "rejected_logps": rejected.tolist(),
        "ref_chosen_logps": ref_chosen.tolist(),
        "ref_rejected_logps": ref_rejected.tolist(),
        "chosen_tokens": chosen_tokens.tolist(),
        "rejected_tokens": rejected_tokens.tolist(),
        "metrics": metrics,
    }
