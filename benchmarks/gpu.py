"""Benchmark on one GPU: this trainer vs TRL `SFTTrainer` at Qwen3-4B's real shape, in bf16.

    python -m benchmarks.gpu [--steps 3] [--warmup 1] [--mixes ...] [--modes lora,full]
                             [--out runs/bench-gpu.md]
    python -m benchmarks.gpu --dry-run    # a tiny Qwen3 on the CPU in fp32: the same code paths

What it runs, each case in a fresh child process (so `torch.cuda.max_memory_allocated` is the
case's own and one case's out-of-memory stops only that case):

- **Model**: `Qwen3ForCausalLM` built from Qwen3-4B's configuration (`QWEN3_4B_CONFIG`) with
  random weights (no hub access), saved once in bf16; both trainers load that folder.
- **Data**: the mixes of `bench-train` (`benchmarks.train_data`), tokenised and masked by
  `training.prepare` with the tiny tokenizer of `training.tiny` (the real Qwen3 chat template).
  Its 2,048 ids are spread over Qwen3's 151,936-row vocabulary (`spread_ids`), so embedding and
  LM-head rows across the whole table are touched. Ours reads prepare's packs; TRL reads
  prepare's unpacked examples (`benchmarks.train._trl_dataset`) and packs or pads them itself.
- **Ours as shipped**: `training/configs/qwen3-4b-{lora,full}.yaml`, with only paths, steps,
  checkpointing and tracking overridden (`our_config`): bf16 autocast, FlashAttention-2 varlen
  when `flash_attn` imports (else SDPA per sequence segment), gradient checkpointing, the packs
  per micro-batch and accumulation the config states.
- **TRL at its fastest documented set-up**: padding-free BFD packing (`packing=True`) with
  `attn_implementation="flash_attention_2"` when `flash_attn` imports, else its padded set-up
  (SDPA) with as many real tokens per step as ours; with and without `use_liger_kernel` when
  `liger_kernel` imports, on the first mix. Optimizer, learning rate, LoRA settings, checkpointing
  and the micro-batch layout come from the same config as ours; precision is held equal (full
  fine-tuning: fp32 master weights and AdamW state, bf16 autocast; LoRA: a bf16 base with fp32
  adapters).
- **Same loss first**: before training, each side computes the loss of the same batch (the
  first pack of the mix) with the same weights; TRL's must equal ours within `LOSS_TOLERANCE`
  and both must count the same loss-bearing tokens.
- **Numbers**: tokens/s and loss-bearing tokens/s over the measured steps (warm-up excluded),
  MFU as useful FLOPs (`useful_flops`) per second over the card's dense bf16 matmul peak
  measured in the same run, and peak `torch.cuda.max_memory_allocated`.

`--time-budget` (default 540 s) skips the cases that would not fit, in order of importance, so
the run ends within 10 minutes; skipped cases are named in the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import flops
from benchmarks import train_data as data
from benchmarks.common import train_with_step_clock
from benchmarks.train import measure
from training.data.packing import IGNORE_INDEX

CONFIGS = {
    "lora": Path(__file__).resolve().parents[1] / "training" / "configs" / "qwen3-4b-lora.yaml",
    "full": Path(__file__).resolve().parents[1] / "training" / "configs" / "qwen3-4b-full.yaml",
}
# Qwen/Qwen3-4B's config.json (transformers 4.51.0), as quoted in full by kohya-ss/musubi-tuner
# (src/musubi_tuner/zimage/zimage_utils.py: Z-Image's text encoder is Qwen3-4B); its model card
# gives 36 layers, 32 query and 8 KV heads and 4.0B parameters, which this builds (4,022,468,096).
# Not the hub page itself (no hub here). Qwen3-4B-Instruct-2507 differs: rope_theta 5e6,
# max_position_embeddings 262,144.
QWEN3_4B_CONFIG: dict[str, Any] = {
    "hidden_size": 2560,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 9728,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "rope_theta": 1_000_000.0,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "attention_bias": False,
    "initializer_range": 0.02,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
# --dry-run: a Qwen3 small enough to train on two CPU cores in a second, with a vocabulary four
# times the tokenizer's so `spread_ids` still spreads.
DRY_RUN_CONFIG: dict[str, Any] = {
    **QWEN3_4B_CONFIG,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 192,
    "vocab_size": 8192,
    "max_position_embeddings": 8192,
    "bos_token_id": None,  # Qwen3's ids are past this vocabulary
    "eos_token_id": None,
}
DRY_RUN_PACK_LENGTH = 2048
# The first batch's mean loss, TRL's against ours. Random weights put every token's loss near
# ln(151,936) + 0.5 = 12.4, its logits ~ N(0, 1) (hidden RMS 1 x sqrt(2560) x initializer 0.02).
# bf16's unit roundoff is 2^-8, so rounding the target's logit and the softmax-weighted logits
# moves one token's loss by at most ~2 x 2^-8 x |logit| ~ 0.008; 0.01 holds even were every loss
# token off that much the same way, and random-signed errors average to ~1e-3 or less over the
# batch's hundreds of loss tokens. Where the two sides' kernels differ (Liger's RMSNorm and
# SwiGLU, padded SDPA against varlen FlashAttention) they round differently at the same
# precision. What the check catches: unequal loss-token counts (a mask or shift difference), and
# a normalisation, precision or wiring error, which moves the mean by percents; random weights
# make the loss blind to context, so not attention across conversations (training/model's fp32
# tests are). fp32 (the dry run): summation order only, 1e-4.
LOSS_TOLERANCE = {"bf16": 1e-2, "fp32": 1e-4}
VERSIONED = ("torch", "transformers", "trl", "peft", "accelerate", "flash-attn", "liger-kernel")
MATMUL_N = 8192  # the bf16 peak's square matmul: 1.1 TFLOP a call, compute bound on any card


# -- model and data ------------------------------------------------------------------------------
def body(config: dict[str, Any]) -> flops.Body:
    return flops.Body(
        config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
        config["num_key_value_heads"], config["head_dim"], config["intermediate_size"],
        config["vocab_size"],
    )  # fmt: skip


def useful_flops(
    b: flops.Body, *, lora: bool, tokens: int, sum_len_sq: int, loss_tokens: int
) -> float:
    """`flops.model_flops`'s useful work (the same for every trainer). LoRA computes no gradient
    for its frozen weights: each frozen projection and the LM head cost forward + input gradient,
    4 FLOPs a MAC instead of 6; attention has no weights and keeps 6; adapters (r 16) are under
    1.5% and not counted."""
    if not lora:
        return flops.model_flops(b, sum_len=tokens, sum_len_sq=sum_len_sq, loss_tokens=loss_tokens)
    attention = b.layers * b.heads * b.head_dim * sum_len_sq
    weights = b.linear_macs_per_token() * tokens + b.hidden * b.vocab * loss_tokens
    return 4.0 * weights + 6.0 * attention


def spread_ids(ids: np.ndarray, factor: int) -> np.ndarray:
    """Token ids (and labels; -100 stays) multiplied by `factor`: the tokenizer's ids spread over
    the model's vocabulary, one to one, so that no row of the real table is out of reach."""
    out = np.asarray(ids, dtype=np.int64).copy()
    keep = out != IGNORE_INDEX
    out[keep] *= factor
    return out


def build_model(config: dict[str, Any], out: Path, *, device: str, seed: int = 0) -> None:
    """A randomly initialised Qwen3 of `config`, saved in bf16 on CUDA (fp32 on the CPU)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it lives: 4B parameters, seconds on a GPU
        model = Qwen3ForCausalLM._from_config(Qwen3Config(**config, use_cache=False), dtype=dtype)
    model.save_pretrained(out)
    del model


def build_data(
    workdir: Path, mixes: list[str], n: int, *, pack_length: int, factor: int
) -> dict[str, dict[str, Any]]:
    """For each mix: conversations, prepare's packs and examples, ids spread by `factor`."""
    from transformers import AutoTokenizer

    from training.data.packing import Pack, PackedDataset, write_packs

    tok_dir = workdir / "model"
    tok = AutoTokenizer.from_pretrained(tok_dir)
    stats = {}
    for name in mixes:
        mixdir = workdir / name
        (mixdir / "tiny").mkdir(parents=True)
        convs = data.conversations(data.MIXES[name], n, tok, max_length=pack_length)
        raw = mixdir / "conversations.jsonl"
        raw.write_text("".join(json.dumps(c.to_record()) + "\n" for c in convs), encoding="utf-8")
        data.prepare(raw, tok_dir, mixdir / "tiny", max_length=pack_length)
        packs = PackedDataset(mixdir / "tiny" / "packs")
        fixed = {"format_version", "pack_length", "num_packs", "num_sequences", "num_tokens"}
        fixed |= {"num_loss_tokens", "fill", "shards"}
        write_packs(
            mixdir / "packs",
            [
                Pack(spread_ids(p.input_ids, factor).astype(np.int32),
                     spread_ids(p.labels, factor).astype(np.int32), p.seq_lens)
                for p in packs
            ],
            pack_length=packs.pack_length,
            metadata={k: v for k, v in packs.manifest.items() if k not in fixed},
        )  # fmt: skip
        ex = data.read_examples(mixdir / "tiny" / "examples")
        (mixdir / "examples").mkdir()
        with (mixdir / "examples" / "train.jsonl").open("w", encoding="utf-8") as f:
            for ids, labels in zip(ex.input_ids, ex.labels, strict=True):
                row = {
                    "input_ids": spread_ids(np.asarray(ids), factor).tolist(),
                    "labels": spread_ids(np.asarray(labels), factor).tolist(),
                }
                f.write(json.dumps(row) + "\n")
        stats[name] = {**ex.stats(), "lengths": [len(x) for x in ex.input_ids]}
    return stats


def plan_padded(mixdir: Path, *, packs_per_step: int, accum: int, steps: int) -> int:
    """TRL's padded fallback: conversations in `padded-order.json` (read by
    `benchmarks.train._trl_dataset`), each step's real tokens within 1% of our step's; returns
    the conversations per micro-batch."""
    ex = data.read_examples(mixdir / "examples")
    targets = data.our_step_tokens(mixdir / "packs", packs_per_step, steps)
    mean_len = statistics.mean(len(x) for x in ex.input_ids)
    per_micro = max(1, round(statistics.mean(targets) / accum / mean_len))
    order = data.padded_plan(ex, targets, per_micro * accum)
    (mixdir / "padded-order.json").write_text(json.dumps(order), encoding="utf-8")
    return per_micro


# -- settings shared by both sides ---------------------------------------------------------------
def our_config(
    mode: str, *, workdir: Path, mix: str, output_dir: Path, max_steps: int, dry_run: bool
) -> Any:
    """The shipped config of `mode` with only paths, steps (no learning-rate warm-up),
    checkpointing and tracking changed (and, for the dry run, the CPU, fp32 and one pack a step)."""
    from training.config import load_config

    overrides = [
        f"output_dir={output_dir}", f"max_steps={max_steps}", "log_every=1", "eval_every=0",
        "progress_bar=false", f"model.name_or_path={workdir / 'model'}",
        f"data.path={workdir / mix / 'packs'}", 'data.eval_path=""',
        "checkpoint.enabled=false", "checkpoint.resume=never", 'checkpoint.dir=""',
        'mlflow.tracking_uri=""', "mlflow.log_system_metrics=false",
        "distributed.strategy=auto",  # one process: no DDP or FSDP2 wrapper
        "optim.warmup_steps=0",  # a few steps cannot hold the config's 50; speed is the same
    ]  # fmt: skip
    if dry_run:
        overrides += [
            "device=cpu", "precision=fp32", f"data.pack_length={DRY_RUN_PACK_LENGTH}",
            "data.packs_per_micro_batch=1", "optim.grad_accum=1",
        ]  # fmt: skip
    return load_config(CONFIGS[mode], overrides)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def _counts(seen: list[tuple[int, int, list[int]]], first: int, last: int) -> dict[str, Any]:
    """Computed tokens (pads included), loss tokens, real tokens and attention pairs."""
    mine = seen[first:last]
    return {
        "computed_tokens": sum(c for c, _, _ in mine),
        "loss_tokens": sum(n for _, n, _ in mine),
        "real_tokens": sum(sum(lens) for _, _, lens in mine),
        "sum_len_sq": sum(flops.causal_pairs(lens) for _, _, lens in mine),
        "micro_batches": len(mine),
    }


# -- children ------------------------------------------------------------------------------------
def run_ours(a: argparse.Namespace) -> dict[str, Any]:
    from training.data import stream

    # The packs in file order, as TRL reads its own; restored after, since the dry run shares
    # its process with other tests.
    shuffled = stream.PackLoader._epoch_order
    try:
        return _run_ours(a)
    finally:
        stream.PackLoader._epoch_order = shuffled  # type: ignore[method-assign]


def _run_ours(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from benchmarks.dpo import _in_file_order
    from training import train
    from training.data import stream
    from training.model.loss import shift_targets

    _in_file_order()
    cfg = our_config(
        a.mode, workdir=Path(a.workdir), mix=a.mix, max_steps=a.warmup + a.steps,
        output_dir=Path(tempfile.mkdtemp(dir=a.workdir)), dry_run=a.dry_run,
    )  # fmt: skip
    recipe = train.Recipe(cfg)
    try:
        recipe.setup()
        pack = recipe.loader.source[0]
        batch = recipe._batch(stream.Rows(pack.input_ids, pack.labels, pack.seq_lens))
        recipe.model.eval()
        with torch.no_grad():
            loss, _ = recipe._forward(recipe.model, batch)
        recipe.model.train()
        check = {"check_loss": float(loss) / batch.num_loss_tokens,
                 "check_loss_tokens": batch.num_loss_tokens}  # fmt: skip
        seen: list[tuple[int, int, list[int]]] = []
        read = recipe.loader.next

        def counting() -> Any:
            rows = read()
            targets = shift_targets(rows.labels.astype(np.int64), rows.seq_lens)
            lens = [int(n) for n in rows.seq_lens]
            seen.append((int(rows.input_ids.shape[0]), int((targets != IGNORE_INDEX).sum()), lens))
            return rows

        recipe.loader.next = counting  # type: ignore[method-assign]
        step = recipe.train_step
        stamps = [time.perf_counter()]

        def timed_step() -> dict[str, float]:
            m = step()
            _sync()
            stamps.append(time.perf_counter())
            return m

        recipe.train_step = timed_step  # type: ignore[method-assign]
        recipe.train()
        accum = cfg.optim.grad_accum
        impl = recipe.module.base().config._attn_implementation
    finally:
        recipe.cleanup("FINISHED")
    return {
        **check,
        "seconds": stamps[-1] - stamps[a.warmup],  # the end of the warm-up to the last step's
        **_counts(seen, a.warmup * accum, (a.warmup + a.steps) * accum),
        "setup": (
            f"as shipped ({CONFIGS[a.mode].name}): {impl}, "
            f"{cfg.data.packs_per_micro_batch} x {cfg.data.pack_length}-token packs a micro-batch "
            f"x {accum}, checkpointing {'on' if cfg.model.gradient_checkpointing else 'off'}"
        ),
        "peak_gib": _peak_gib(),
    }


def run_trl(a: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from benchmarks.train import _trl_dataset
    from training.data.packing import PackedDataset

    workdir, packed = Path(a.workdir), a.trl_setup == "padding-free"
    cfg = our_config(
        a.mode, workdir=workdir, mix=a.mix, max_steps=a.warmup + a.steps,
        output_dir=workdir / "unused", dry_run=a.dry_run,
    )  # fmt: skip
    cuda, lora = not a.dry_run, cfg.lora.enabled
    model_dir = workdir / "model"
    impl = "flash_attention_2" if packed else "sdpa"
    # The precision of ours: LoRA freezes a bf16 base; full fine-tuning keeps fp32 weights.
    dtype = torch.bfloat16 if (cuda and lora) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=impl)
    ds, _ = _trl_dataset(workdir / a.mix, packed=packed)
    accum = cfg.optim.grad_accum
    batch = cfg.data.packs_per_micro_batch if packed else a.trl_batch
    o = cfg.optim
    args = SFTConfig(
        output_dir=str(workdir / f"trl-{os.getpid()}"), max_steps=a.warmup + a.steps,
        per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
        learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.betas[0],
        adam_beta2=o.betas[1], adam_epsilon=o.eps, max_grad_norm=o.max_grad_norm,
        logging_steps=a.warmup + a.steps, save_strategy="no", report_to=[], disable_tqdm=True,
        use_cpu=not cuda, bf16=cuda, dataloader_num_workers=0, seed=cfg.seed,
        max_length=cfg.data.pack_length, packing=packed, padding_free=packed,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        train_sampling_strategy="sequential",  # file order, as ours
        use_liger_kernel=a.liger,
    )  # fmt: skip
    peft_config = (
        LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM",
        )
        if lora
        else None
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds, peft_config=peft_config,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )  # fmt: skip
    collate = trainer.data_collator
    pack = PackedDataset(workdir / a.mix / "packs")[0]
    check: dict[str, Any] = {}

    class FirstBatch(TrainerCallback):
        """The check batch's loss once `train()` has set the model up (accelerate's autocast,
        Liger's kernels) and before the first step."""

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            check.update(trl_first_batch_loss(trainer, collate, pack, packed=packed))

    seen: list[tuple[int, int, list[int]]] = []

    def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
        b = collate(features)
        lab = b["labels"]
        if "attention_mask" in b:
            lens = [int(x) for x in b["attention_mask"].sum(dim=1)]
        else:  # padding-free: cu_seq_lens are the sequence bounds
            lens = [int(x) for x in b["cu_seq_lens_q"].diff()]
        seen.append((int(lab.numel()), int((lab[..., 1:] != -100).sum()), lens))
        return dict(b)

    trainer.add_callback(FirstBatch())
    trainer.data_collator = counting
    stamps = train_with_step_clock(trainer, _sync)
    if packed:
        setup = (
            f"padding-free BFD packing, {impl}, {batch} x {cfg.data.pack_length}-token packs a "
            f"micro-batch x {accum}"
        )
    else:
        setup = f"padded, {impl}, {batch} conversations a micro-batch x {accum}"
    setup += ", Liger kernels" if a.liger else ""
    return {
        **check,
        "seconds": stamps[-1] - stamps[a.warmup],
        **_counts(seen, a.warmup * accum, (a.warmup + a.steps) * accum),
        "setup": f"{setup}, checkpointing {'on' if args.gradient_checkpointing else 'off'}",
        "peak_gib": _peak_gib(),
    }


def trl_first_batch_loss(trainer: Any, collate: Any, pack: Any, *, packed: bool) -> dict[str, Any]:
    """TRL's loss on one pack, collated by its own collator (one padding-free row, or the pack's
    conversations as padded rows), through `compute_loss` as its training step calls it."""
    import torch

    if packed:
        features = [{"input_ids": pack.input_ids.tolist(), "labels": pack.labels.tolist(),
                     "seq_lengths": pack.seq_lens.tolist()}]  # fmt: skip
    else:
        bounds = np.cumsum(pack.seq_lens)[:-1]
        features = [
            {"input_ids": ids.tolist(), "labels": lab.tolist()}
            for ids, lab in zip(
                np.split(pack.input_ids, bounds), np.split(pack.labels, bounds), strict=True
            )
        ]
    inputs = trainer._prepare_inputs(collate(features))
    model = trainer.model
    model.eval()
    with torch.no_grad(), trainer.accelerator.autocast():
        loss = trainer.compute_loss(model, inputs)
    model.train()
    for logged in trainer._metrics.values():  # the check is not a training step
        logged.clear()
    return {
        "check_loss": float(loss),
        "check_loss_tokens": int((inputs["labels"][..., 1:] != -100).sum()),
    }


def setup_device(a: argparse.Namespace) -> dict[str, Any]:
    """The card, its bf16 matmul peak, what is importable, and the model folder."""
    import torch

    out: dict[str, Any] = {
        "flash_attn": importlib.util.find_spec("flash_attn") is not None,
        "liger": importlib.util.find_spec("liger_kernel") is not None,
        "versions": versions(),
    }
    if a.dry_run:
        build_model(DRY_RUN_CONFIG, Path(a.workdir) / "model", device="cpu")
        return {**out, "device": None, "peak_tflops": None}
    props = torch.cuda.get_device_properties(0)
    out["device"] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch_cuda": torch.version.cuda,
        "driver_cuda": _driver_cuda(),
        "driver": _nvidia_driver(),
        "cudnn": torch.backends.cudnn.version(),
    }
    out["peak_tflops"] = bf16_matmul_peak()
    build_model(QWEN3_4B_CONFIG, Path(a.workdir) / "model", device="cuda")
    return out


def bf16_matmul_peak(n: int = MATMUL_N, calls: int = 20, rounds: int = 5) -> float:
    """Best dense bf16 TFLOP/s of `torch.mm` on an n x n x n product, timed with CUDA events."""
    import torch

    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    y = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    z = torch.empty_like(x)
    for _ in range(calls):  # clocks up, kernel chosen
        torch.mm(x, y, out=z)
    best = math.inf
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            torch.mm(x, y, out=z)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / calls)
    return 2 * n**3 / best / 1e12


def _driver_cuda() -> str:
    import torch

    get = getattr(torch._C, "_cuda_getDriverVersion", None)
    if get is None:
        return "unknown"
    v = int(get())
    return f"{v // 1000}.{v % 1000 // 10}"


def _nvidia_driver() -> str:
    """torch reports the CUDA version the driver supports, not the driver's own; NVML does."""
    try:
        import pynvml  # type: ignore[import-not-found]  # nvidia-ml-py, in the training image

        pynvml.nvmlInit()
        return str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:  # optional: absent, or no NVML on this machine
        return "not read (nvidia-ml-py absent)"


def versions() -> dict[str, str]:
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def run_child(a: argparse.Namespace) -> dict[str, Any]:
    """One child's work, as a JSON-ready dict; out of memory is a result, not a crash."""
    import torch

    work = {"setup": setup_device, "ours": run_ours, "trl": run_trl}[a.child]
    try:
        return work(a)
    except torch.OutOfMemoryError as e:
        return {"error": f"out of memory ({str(e).splitlines()[0][:120]})", "peak_gib": _peak_gib()}


# -- parent ------------------------------------------------------------------------------------
@dataclass
class Case:
    mix: str
    mode: str  # lora | full
    side: str  # ours | trl
    liger: bool = False
    skip: str = ""  # why it does not run
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.side == "ours":
            return "ours"
        return "TRL SFTTrainer + Liger" if self.liger else "TRL SFTTrainer"


def plan_cases(mixes: list[str], modes: list[str], *, liger: bool, dry_run: bool) -> list[Case]:
    """In order of importance (the time budget drops from the end): the first mix with every
    variant, then ours and TRL on the other mixes."""
    if dry_run:
        why = "needs CUDA (Triton kernels)" if liger else "not installed"
    else:
        why = "" if liger else "not installed"
    cases = []
    for i, mix in enumerate(mixes):
        for mode in modes:
            cases += [Case(mix, mode, "ours"), Case(mix, mode, "trl")]
            if i == 0:
                cases.append(Case(mix, mode, "trl", liger=True, skip=why))
    return cases


def _command(a: argparse.Namespace, case: Case, trl_setup: str, trl_batch: int) -> list[str]:
    cmd = [
        sys.executable, "-m", "benchmarks.gpu", "--child", case.side, "--mode", case.mode,
        "--mix", case.mix, "--workdir", str(a.workdir), "--steps", str(a.steps),
        "--warmup", str(a.warmup), "--trl-setup", trl_setup, "--trl-batch", str(trl_batch),
    ]  # fmt: skip
    return cmd + (["--liger"] if case.liger else []) + (["--dry-run"] if a.dry_run else [])


def _child_args(a: argparse.Namespace, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(a), "liger": False, "trl_batch": 0, **kw})


def _run(a: argparse.Namespace, cmd: list[str], **kw: Any) -> dict[str, Any]:
    """A child in its own process; the dry run calls the same function in this one."""
    if a.dry_run:
        return dict(json.loads(json.dumps(run_child(_child_args(a, **kw)))))
    return measure(cmd)


def collect(a: argparse.Namespace) -> dict[str, Any]:
    from training.tiny import build_tokenizer

    started = time.perf_counter()
    saved: dict[str, Any] = {"args": {k: str(v) for k, v in vars(a).items()}, "notes": []}
    note = saved["notes"].append
    tok = build_tokenizer()
    tok.save_pretrained(a.workdir / "model")
    t0 = time.perf_counter()
    setup_cmd = [sys.executable, "-m", "benchmarks.gpu", "--child", "setup",
                 "--workdir", str(a.workdir)]  # fmt: skip
    dev = _run(a, setup_cmd, child="setup")
    saved["device"] = dev
    print(f"  model built and saved, device read ({time.perf_counter() - t0:.0f}s)", flush=True)
    config = DRY_RUN_CONFIG if a.dry_run else QWEN3_4B_CONFIG
    cfg = our_config(
        "lora", workdir=a.workdir, mix="", output_dir=a.workdir, max_steps=1, dry_run=a.dry_run
    )
    pack_length = cfg.data.pack_length
    trl_setup = "padding-free" if dev["flash_attn"] and not a.dry_run else "padded"
    if a.dry_run:
        note("dry run, no CUDA: the bf16 matmul peak is not measured (MFU n/a), nor GPU memory "
             "(n/a); FlashAttention 2 needs CUDA, so ours runs SDPA per segment and TRL its "
             "padded set-up; Liger's Triton kernels need CUDA.")  # fmt: skip
    else:  # the same allocator for both; less fragmentation for full FT on an 80 GB card
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        note(
            f"every case runs with PYTORCH_CUDA_ALLOC_CONF={os.environ['PYTORCH_CUDA_ALLOC_CONF']}"
        )
    if not a.dry_run and not dev["flash_attn"]:
        note("flash_attn is not installed: ours runs SDPA per sequence segment; TRL runs its "
             "padded set-up (SDPA), since its padding-free mode is documented for "
             "FlashAttention only.")  # fmt: skip
    t0 = time.perf_counter()
    saved["stats"] = build_data(
        a.workdir, a.mixes, a.conversations, pack_length=pack_length,
        factor=config["vocab_size"] // len(tok),
    )  # fmt: skip
    print(f"  data for {len(a.mixes)} mixes ({time.perf_counter() - t0:.0f}s)", flush=True)
    layouts = {}
    for mode in a.modes:
        c = our_config(
            mode, workdir=a.workdir, mix="", output_dir=a.workdir, max_steps=1, dry_run=a.dry_run
        )
        layouts[mode] = (c.data.packs_per_micro_batch, c.optim.grad_accum)
    cases = plan_cases(a.mixes, a.modes, liger=dev["liger"], dry_run=a.dry_run)
    durations: list[float] = []
    for case in cases:
        if case.skip:
            continue
        micro, accum = layouts[case.mode]
        trl_batch = 0
        if case.side == "trl" and trl_setup == "padded":
            try:
                trl_batch = plan_padded(
                    a.workdir / case.mix, packs_per_step=micro * accum, accum=accum,
                    steps=a.warmup + a.steps,
                )  # fmt: skip
            except ValueError as e:  # no set of conversations matches our steps' tokens
                case.result = {"error": f"padded plan: {e}"}
                continue
        left = a.time_budget - (time.perf_counter() - started)
        if durations and max(durations) > left:
            case.skip = f"time budget ({a.time_budget:.0f} s) spent"
            continue
        t0 = time.perf_counter()
        cmd = _command(a, case, trl_setup, trl_batch)
        try:
            case.result = _run(
                a, cmd, child=case.side, mode=case.mode, mix=case.mix, liger=case.liger,
                trl_setup=trl_setup, trl_batch=trl_batch,
            )  # fmt: skip
        except RuntimeError as e:  # a child that crashed: its row says so, the rest still run
            lines = str(e).strip().splitlines()
            case.result = {"error": f"{lines[0][:80]} ... {lines[-1][-160:]}"}
        durations.append(time.perf_counter() - t0)
        print(f"  {case.mix}/{case.mode}/{case.label}: {_brief(case.result)} "
              f"({durations[-1]:.0f}s)", flush=True)  # fmt: skip
    saved["cases"] = [vars(c) for c in cases]
    saved["trl_setup"] = trl_setup
    saved["pack_length"] = pack_length
    saved["seconds"] = time.perf_counter() - started
    return saved


def _brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    return f"{r['real_tokens'] / r['seconds']:,.0f} tok/s, first-batch loss {r['check_loss']:.4f}"


def check_losses(cases: list[Case], precision: str) -> tuple[bool, list[str]]:
    """Every TRL row against ours on the same mix and mode; False when one fails."""
    ok, lines = True, []
    ours = {(c.mix, c.mode): c.result for c in cases if c.side == "ours"}
    tol = LOSS_TOLERANCE[precision]
    for c in cases:
        if c.side != "trl" or "check_loss" not in c.result:
            continue
        mine = ours.get((c.mix, c.mode), {})
        if "check_loss" not in mine:
            lines.append(f"{c.mix}/{c.mode}/{c.label}: ours did not run; not compared")
            continue
        diff = abs(c.result["check_loss"] - mine["check_loss"])
        same_tokens = c.result["check_loss_tokens"] == mine["check_loss_tokens"]
        passed = same_tokens and diff <= tol  # NaN fails here
        ok &= passed
        lines.append(
            f"{c.mix}/{c.mode}/{c.label}: loss {c.result['check_loss']:.6f} vs ours "
            f"{mine['check_loss']:.6f}, |diff| {diff:.1e} (<= {tol:g}), loss tokens "
            f"{c.result['check_loss_tokens']:,} vs {mine['check_loss_tokens']:,}: "
            f"{'passed' if passed else 'FAILED'}"
        )
    return ok, lines


def report(saved: dict[str, Any]) -> tuple[str, bool]:
    """The markdown written to --out; and whether every case ran and every check passed."""
    a, dev = saved["args"], saved["device"]
    dry = a["dry_run"] == "True"
    cases = [Case(**c) for c in saved["cases"]]
    precision = "fp32" if dry else "bf16"
    config = DRY_RUN_CONFIG if dry else QWEN3_4B_CONFIG
    b = body(config)
    peak = dev["peak_tflops"]
    out = ["# bench-gpu: this trainer vs TRL SFTTrainer on one GPU", ""]
    if dev["device"]:
        d = dev["device"]
        out.append(
            f"Device: {d['name']} (compute capability {d['capability']}, {d['memory_gib']} GiB); "
            f"torch CUDA {d['torch_cuda']}, the driver's CUDA {d['driver_cuda']}, driver "
            f"{d['driver']}, cuDNN {d['cudnn']}. Dense bf16 matmul peak measured in this run "
            f"({MATMUL_N}^3 torch.mm, best of 5 x 20 calls): {peak:,.0f} TFLOP/s."
        )
    else:
        out.append("Device: CPU (dry run; no GPU numbers).")
    v = dev["versions"]
    out += [
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in v),
        (
            f"Model: Qwen3 {'(dry-run shape)' if dry else '4B'} with random weights: hidden "
            f"{config['hidden_size']} x {config['num_hidden_layers']} layers, "
            f"{config['num_attention_heads']} heads ({config['num_key_value_heads']} KV) of "
            f"{config['head_dim']}, MLP {config['intermediate_size']}, vocabulary "
            f"{config['vocab_size']:,}, tied embeddings, rope_theta {config['rope_theta']:g}, "
            f"max positions {config['max_position_embeddings']:,}; {precision}"
            + (
                ""
                if dry
                else " autocast (full: fp32 master weights and AdamW state on both "
                "sides; LoRA: bf16 base, fp32 adapters on both sides)"
            )
        ),
        f"Steps: {a['warmup']} warm-up + {a['steps']} measured per case; packs of "
        f"{saved['pack_length']} tokens; {a['conversations']} conversations a mix; run took "
        f"{saved['seconds']:.0f} s.",
        "",
        *[f"Note: {n}" for n in saved["notes"]],
        "",
        "| mix | conversations | mean tokens | spread | loss-bearing share | attention / linear |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {m} | {st['conversations']} | {st['mean_tokens']:.0f} | {st['spread']:.0%} "
            f"| {st['loss_fraction']:.1%} | {b.attention_to_linear(st['lengths']):.1%} |"
            for m, st in saved["stats"].items()
        ],
        "",
        "| mix | mode | trainer | set-up | real tok/step | computed / real | tokens/s "
        "| loss tok/s | MFU | peak GiB | first-batch loss |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    complete = True
    for c in cases:
        r = c.result
        head = f"| {c.mix} | {c.mode} | {c.label} |"
        if c.skip or "error" in r:
            complete &= bool(c.skip)
            why = c.skip or f"failed: {r['error']}"
            if "peak_gib" in r and r["peak_gib"] is not None:
                why += f" (peak {r['peak_gib']:.1f} GiB)"
            out.append(f"{head} {why} |  |  |  |  |  |  |  |")
            continue
        steps = int(a["steps"])
        work = useful_flops(
            b, lora=c.mode == "lora", tokens=r["real_tokens"], sum_len_sq=r["sum_len_sq"],
            loss_tokens=r["loss_tokens"],
        )  # fmt: skip
        mfu = f"{work / r['seconds'] / 1e12 / peak:.1%}" if peak else "n/a"
        mem = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        out.append(
            f"{head} {r['setup']} | {r['real_tokens'] / steps:,.0f} "
            f"| {r['computed_tokens'] / r['real_tokens']:.3f} "
            f"| {r['real_tokens'] / r['seconds']:,.0f} | {r['loss_tokens'] / r['seconds']:,.0f} "
            f"| {mfu} | {mem} | {r['check_loss']:.4f} |"
        )
    ok, lines = check_losses(cases, precision)
    out += [
        "",
        f"Same-loss check (the first pack of each mix through both trainers, same weights; "
        f"tolerance {LOSS_TOLERANCE[precision]:g} on the mean loss, loss-token counts equal):",
        *[f"- {line}" for line in lines],
        f"same-loss check: {'passed' if ok and lines else 'FAILED'}",
    ]
    return "\n".join(out) + "\n", ok and bool(lines) and complete


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="measured optimizer steps per case")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    p.add_argument("--mixes", default=",".join(data.MIXES), help="the first gets every variant")
    p.add_argument("--modes", default="lora,full", help="lora, full or both")
    p.add_argument("--conversations", type=int, default=300, help="conversations a mix")
    p.add_argument(
        "--time-budget",
        type=float,
        default=540.0,
        help="seconds; cases that would not fit are skipped (named in the table)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench-gpu.md"))
    p.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny Qwen3, CPU, fp32, in one process: checks the code, not the speed",
    )
    for hidden in ("--child", "--mode", "--mix", "--trl-setup"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--trl-batch", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--liger", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(run_child(a)), flush=True)
        return 0
    a.mixes, a.modes = a.mixes.split(","), a.modes.split(",")
    if a.warmup < 1 or a.steps < 1:
        p.error("--warmup and --steps need at least 1 (the first step holds the set-up)")
    if bad := (set(a.mixes) - set(data.MIXES)) | (set(a.modes) - set(CONFIGS)):
        p.error(f"unknown {sorted(bad)}; mixes {tuple(data.MIXES)}, modes {tuple(CONFIGS)}")
    if not a.dry_run:
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA device: run on a GPU machine, or pass --dry-run")
    with tempfile.TemporaryDirectory() as tmp:
        a.workdir = Path(a.workdir or tmp).resolve()
        saved = collect(a)
    text, ok = report(saved)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"(written to {a.out})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
