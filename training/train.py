"""Fine-tune Qwen3 (LoRA or full) or continue its pre-training on packed data.

    python -m training.train --config training/configs/tiny-cpu.yaml [--set optim.lr=1e-4 ...]
    torchrun --nproc-per-node 8 -m training.train --config training/configs/qwen3-4b-lora.yaml

Features: contamination-free packing (positions restart per sequence, attention per segment or
FlashAttention varlen), logits and cross-entropy only at loss-bearing positions, bf16 autocast
on CUDA, gradient checkpointing and accumulation, warm-up + cosine, DDP (LoRA) / FSDP2 (full),
atomic checkpoints with exact resume, MLflow tracking, metrics.jsonl and a progress bar on rank 0;
s3:// data and model paths are downloaded once per node first (`training.loop.inputs`).

Loss normalisation: the step's loss is (sum of token losses over every micro-batch and rank) /
(loss tokens in the whole step). A mean of per-micro-batch means would weight a token in a
short-answer pack more than one in a long-answer pack, and would change with grad_accum and
world size; this way the gradient is the same however the step's tokens are split.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.cli import command_parser
from training.config import (
    TrainConfig,
    TrainConfigError,
    changed_settings,
    dump_config,
    load_config,
    settable_keys,
)
from training.data import stream
from training.data.preference import PREFERENCE
from training.loop import checkpoint, distributed, inputs, reference
from training.loop.tracking import Tracker
from training.model.modeling import MicroBatch, PackedCausalLM, load_causal_lm, make_micro_batch
from training.model.preference import STATS, PairBatch, PreferenceLM, make_pair_batch

Batch = MicroBatch | PairBatch


class CannotResumeError(ValueError):
    """The checkpoint belongs to another run (other data or settings); the message says why."""


@dataclass
class TrainResult:
    """What a caller (tests, the e2e pipeline) needs from a finished run."""

    first_loss: float
    final_loss: float
    losses: list[float]
    steps: int
    checkpoint_path: str | None
    run_id: str | None
    output_dir: str
    metrics: dict[str, float] = field(default_factory=dict)


def cosine_with_warmup(warmup: int, total: int, min_ratio: float) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class Recipe:
    """setup / train / save_checkpoint / cleanup, as torchtune recipes are laid out."""

    def __init__(self, config: TrainConfig) -> None:
        self.cfg = config
        self.out = Path(config.output_dir)
        self.step = 0
        self.losses: list[float] = []
        self.last_checkpoint: str | None = None
        self.last_metrics: dict[str, float] = {}

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        device_kind = cfg.device
        if device_kind == "auto":
            device_kind = "cuda" if torch.cuda.is_available() else "cpu"
        if device_kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("device=cuda but CUDA is not available")
        if cfg.precision == "bf16" and device_kind != "cuda":
            raise ValueError("precision=bf16 needs CUDA (CPU runs train in fp32)")
        self.bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device_kind == "cuda")
        # torch counts the machine's cores; a container or `taskset` may allow fewer.
        torch.set_num_threads(cfg.num_threads or min(torch.get_num_threads(), _usable_cpus()))
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        self.world = distributed.init(device_kind)
        self.strategy = distributed.resolve_strategy(
            cfg.distributed.strategy, world=self.world, lora=cfg.lora.enabled
        )
        # s3:// inputs are downloaded once per node (LOCAL_RANK 0; the node's other ranks wait).
        # `self.staged` names the local copies and is used only to open them: `cfg` keeps the
        # URIs for all it records (config copy, MLflow params, the checkpoint's settings,
        # data_path and base_model), so resuming on another node or staging dir compares equal.
        self.staged = inputs.stage_inputs(cfg, self.world)
        seed_everything(cfg.seed)
        self.ckpt_root = cfg.checkpoint.dir or str(self.out / "checkpoints")
        self.staging = self.out / "checkpoint-staging"

        model, self.tokenizer = load_causal_lm(self.staged, self.world.device, bf16=self.bf16)
        chunk_rows = cfg.model.loss_chunk_rows
        compute_dtype = torch.bfloat16 if self.bf16 else None
        self.dpo = cfg.objective == "dpo"
        kind = PREFERENCE if self.dpo else stream.SEQUENCES
        source = stream.open_source(
            self.staged.data.path,
            pack_length=cfg.data.pack_length,
            tokenizer=self.tokenizer,
            kind=kind,
        )
        self.eval_source = (
            stream.open_source(
                self.staged.data.eval_path,
                pack_length=cfg.data.pack_length,
                tokenizer=self.tokenizer,
                kind=kind,
            )
            if cfg.data.eval_path
            else None
        )
        self.data_fingerprint = stream.fingerprint(source)
        self.references: dict[str, reference.ReferenceTable] = {}
        if self.dpo:
            self.module: PackedCausalLM = PreferenceLM(
                model,
                chunk_rows=chunk_rows,
                compute_dtype=compute_dtype,
                beta=cfg.dpo.beta,
                label_smoothing=cfg.dpo.label_smoothing,
                sft_weight=cfg.dpo.sft_weight,
            )
            if cfg.reference == "precomputed":  # before training changes the weights
                self._precompute_references(source)
        else:
            self.module = PackedCausalLM(model, chunk_rows=chunk_rows, compute_dtype=compute_dtype)
        self.model = distributed.wrap(
            self.module,
            strategy=self.strategy,
            world=self.world,
            reshard_after_forward=cfg.distributed.fsdp_reshard_after_forward,
        )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=cfg.optim.lr,
            betas=cfg.optim.betas,
            eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay,
            # CPU: the fused kernel updates each parameter in one pass; the per-tensor loop
            # allocates denominators and updates as big as the largest parameter (the embedding
            # and lm_head, 155 MB each at Qwen3's vocabulary), a transient at every step.
            foreach=self.world.device.type == "cuda",
            fused=(self.world.device.type == "cpu" and self.strategy != "fsdp2") or None,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            cosine_with_warmup(cfg.optim.warmup_steps, cfg.max_steps, cfg.optim.min_lr_ratio),
        )
        self.loader = stream.PackLoader(
            source,
            seed=cfg.seed,
            rank=self.world.rank,
            world_size=self.world.size,
            packs_per_micro_batch=cfg.data.packs_per_micro_batch,
        )
        run_id = self._resume()
        self.tracker = Tracker(cfg.mlflow, enabled=self.world.is_main)
        self.run_id = self.tracker.start(run_id=run_id, params=cfg.to_dict())
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
            if run_id is None:
                self.tracker.log_text(dump_config(cfg), "config.yaml")

    def _precompute_references(self, source: stream.PackSource) -> None:
        """Full-fine-tuning DPO: the initial model's log-probs of every train and eval pair."""
        cfg = self.cfg
        module = self.module
        assert isinstance(module, PreferenceLM)  # noqa: S101

        @torch.no_grad()
        def log_probs(pack: Any) -> torch.Tensor:
            batch = self._pair_batch(pack.input_ids, pack.labels, pack.seq_lens, ())
            with self._autocast():
                return module.log_probs(batch)

        module.eval()
        sources = {"train": (source, self.data_fingerprint), "eval": (self.eval_source, None)}
        for split, (src, fingerprint) in sources.items():
            if src is None:
                continue
            key = reference.reference_key(
                self.staged.model.name_or_path,
                (fingerprint or stream.fingerprint(src))["sha256"],
                bf16=self.bf16,
                share_prompt=cfg.dpo.share_prompt,
            )
            # The configured path: an s3:// input's node-local copy is no place for a table every
            # node reads, so its table goes under the output folder (reference_dir's fallback).
            path = cfg.data.path if split == "train" else cfg.data.eval_path
            where = reference.reference_dir(path, str(self.out), key)
            self.references[split] = reference.compute_or_load(src, log_probs, where, self.world)
        module.train()

    def _pair_batch(
        self, ids: Any, labels: Any, seq_lens: Any, indices: tuple[int, ...], split: str = "train"
    ) -> PairBatch:
        table = self.references.get(split)
        return make_pair_batch(
            ids,
            labels,
            seq_lens,
            self.world.device,
            share_prompt=self.cfg.dpo.share_prompt,
            reference=table.lookup(indices) if table is not None and indices else None,
        )

    def _batch(self, rows: stream.Rows, split: str = "train") -> Batch:
        if self.dpo:
            return self._pair_batch(rows.input_ids, rows.labels, rows.seq_lens, rows.indices, split)
        return make_micro_batch(
            rows.input_ids,
            rows.labels,
            rows.seq_lens,
            self.world.device,
            all_tokens=self.cfg.data.mode == "cpt",
        )

    def _forward(self, model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed loss (and, for DPO, summed STATS) of one micro-batch."""
        with self._autocast():
            out = model(batch)
        if isinstance(out, tuple):
            return out[0], out[1]
        return out, None

    @staticmethod
    def _count(batch: Batch) -> int:
        """What the step's loss is a mean over: loss tokens (SFT) or pairs (DPO)."""
        return batch.num_pairs if isinstance(batch, PairBatch) else batch.num_loss_tokens

    def _resume(self) -> str | None:
        """Restore everything from the chosen checkpoint; returns its MLflow run id."""
        mode = self.cfg.checkpoint.resume
        if mode == "never":
            return None
        path = checkpoint.latest(self.ckpt_root) if mode == "auto" else mode
        if path is None:
            return None
        ckpt = checkpoint.load(path, staging=self.staging / f"rank{self.world.rank}")
        self._check_resumable(path, ckpt.state)
        distributed.load_full_state(
            self.model, self.optimizer, ckpt.weights, ckpt.optimizer, strategy=self.strategy
        )
        self.scheduler.load_state_dict(ckpt.scheduler)
        if self.cfg.checkpoint.resume_with_changed_settings:
            self._apply_optim_settings()
        self.loader.load_state_dict(ckpt.state["data"][self.world.rank])
        checkpoint.set_rng_state(ckpt.rng[self.world.rank])
        self.step = ckpt.step
        if self.world.is_main:
            print(
                f"resuming from {path} (step {self.step} of {self.cfg.max_steps})",
                file=sys.stderr,
                flush=True,
            )
        self.losses = list(ckpt.state.get("losses", []))
        self.last_checkpoint = path
        run_id: str | None = ckpt.state.get("mlflow_run_id")
        return run_id

    def _check_resumable(self, path: str, state: dict[str, Any]) -> None:
        """Refuse a checkpoint of another run: different data content, or changed settings
        (unless `checkpoint.resume_with_changed_settings`), naming every difference."""
        ours = self.data_fingerprint
        theirs = state.get("data_fingerprint")
        if theirs != ours:
            diff = (
                "; ".join(
                    f"{k} {theirs.get(k)!r} -> {ours.get(k)!r}"
                    for k in ours
                    if theirs.get(k) != ours.get(k)
                )
                if isinstance(theirs, dict)
                else "the checkpoint records no data fingerprint"
            )
            raise CannotResumeError(
                f"{path} was trained on different data than {self.cfg.data.path} holds "
                f"(checkpoint -> now: {diff}; it read {state.get('data_path', '?')}); resuming "
                "would not continue that run. Use a new output_dir or checkpoint.resume=never."
            )
        before = state.get("settings")
        changed = (
            changed_settings(before, self.cfg.resume_settings())
            if isinstance(before, dict)
            else (
                []
                if state.get("fingerprint") == self.cfg.fingerprint()
                else ["(the checkpoint records only a fingerprint of its settings)"]
            )
        )
        if not changed:
            return
        listing = "\n  ".join(changed)
        if not self.cfg.checkpoint.resume_with_changed_settings:
            raise CannotResumeError(
                f"{path} was written with other settings; resuming would not continue that run:"
                f"\n  {listing}\nUse a new output_dir, checkpoint.resume=never, or "
                "checkpoint.resume_with_changed_settings=true to continue with the new values."
            )
        if self.world.is_main:
            print(
                f"resuming {path} with changed settings (new values apply from here):\n  {listing}",
                file=sys.stderr,
                flush=True,
            )

    def _apply_optim_settings(self) -> None:
        """After a restore, put this config's optimizer settings and schedule in force."""
        o = self.cfg.optim
        self.scheduler.base_lrs = [o.lr for _ in self.optimizer.param_groups]
        factor = cosine_with_warmup(o.warmup_steps, self.cfg.max_steps, o.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group.update(
                betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, initial_lr=o.lr,
                lr=o.lr * factor(self.scheduler.last_epoch),
            )  # fmt: skip

    # -- train -----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _micro_batches(self) -> list[Batch]:
        return [self._batch(self.loader.next()) for _ in range(self.cfg.optim.grad_accum)]

    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        batches = self._micro_batches()
        local_loss_tokens = sum(b.num_loss_tokens for b in batches)
        local_tokens = sum(b.num_tokens for b in batches)
        loss_tokens = distributed.all_reduce_sum(float(local_loss_tokens), self.world)
        count = distributed.all_reduce_sum(float(sum(self._count(b) for b in batches)), self.world)
        # DDP and FSDP average gradients over ranks; scale so the result is sum / count.
        scale = self.world.size / max(count, 1.0)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.world.device)
        stats_sum = torch.zeros(len(STATS), dtype=torch.float64, device=self.world.device)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = (
                self.model.no_sync()  # type: ignore[operator]
                if self.strategy == "ddp" and not last
                else contextlib.nullcontext()
            )
            with sync:
                if self.strategy == "fsdp2":
                    self.model.set_requires_gradient_sync(last)  # type: ignore[operator]
                loss, stats = self._forward(self.model, batch)
                (loss * scale).backward()
            loss_sum += loss.detach().double()
            if stats is not None:
                stats_sum += stats.double()
        max_norm = self.cfg.optim.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(
            self.params, max_norm if max_norm > 0 else float("inf")
        )
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # DTensor
        lr = float(self.optimizer.param_groups[0]["lr"])  # what the scheduler set this step
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        total_loss = distributed.all_reduce_sum(float(loss_sum.item()), self.world)
        tokens = distributed.all_reduce_sum(float(local_tokens), self.world)
        elapsed = time.perf_counter() - t0
        self.step += 1
        loss_value = total_loss / max(count, 1.0)
        self.losses.append(loss_value)
        metrics = {
            "loss": loss_value,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": tokens / elapsed,
            "loss_tokens_per_s": loss_tokens / elapsed,
            "loss_token_fraction": loss_tokens / max(tokens, 1.0),
            "step_time_s": elapsed,
        }
        if self.dpo:
            metrics["pairs_per_s"] = count / elapsed
            metrics.update(self._stats(stats_sum, count))
        return metrics

    def _stats(self, sums: torch.Tensor, count: float, prefix: str = "") -> dict[str, float]:
        """Per-pair means of the DPO STATS, summed over ranks."""
        totals = [distributed.all_reduce_sum(float(v), self.world) for v in sums.tolist()]
        return {f"{prefix}{k}": v / max(count, 1.0) for k, v in zip(STATS, totals, strict=True)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss over the whole eval set (each rank a shard): token-weighted for SFT, a mean over
        pairs (with the reward statistics) for DPO."""
        if self.eval_source is None:
            raise ValueError("evaluate() needs data.eval_path")
        self.model.eval()
        total = count = 0.0
        stats_sum = torch.zeros(len(STATS), dtype=torch.float64)
        for i in range(self.world.rank, len(self.eval_source), self.world.size):
            p = self.eval_source[i]
            rows = stream.Rows(p.input_ids, p.labels, p.seq_lens, (i,))
            b = self._batch(rows, "eval")
            # The unwrapped module: FSDP2 shards in place, and DDP needs no hooks without grads.
            loss, stats = self._forward(self.module, b)
            total += float(loss.item())
            count += self._count(b)
            if stats is not None:
                stats_sum += stats.double().cpu()
        self.model.train()
        total = distributed.all_reduce_sum(total, self.world)
        count = distributed.all_reduce_sum(count, self.world)
        out = {"eval_loss": total / max(count, 1.0)}
        if self.dpo:
            out.update(self._stats(stats_sum, count, prefix="eval_"))
        return out

    def train(self) -> None:
        cfg = self.cfg
        bar = None
        if cfg.progress_bar and self.world.is_main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_steps, initial=self.step, desc="train", dynamic_ncols=True)
        metrics_file = self.out / "metrics.jsonl"
        while self.step < cfg.max_steps:
            m = self.train_step()
            self.last_metrics = m
            if self.world.is_main:
                with metrics_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": self.step, **m}) + "\n")
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    self.tracker.log_metrics(m, step=self.step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{m['tokens_per_s']:.0f}")
            if cfg.eval_every and self.eval_source is not None and self.step % cfg.eval_every == 0:
                ev = self.evaluate()
                self.last_metrics.update(ev)
                if self.world.is_main:
                    self.tracker.log_metrics(ev, step=self.step)
            every = cfg.checkpoint.every_n_steps
            due = (every and self.step % every == 0) or self.step == cfg.max_steps
            if cfg.checkpoint.enabled and due:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        if self.eval_source is not None and "eval_loss" not in self.last_metrics:
            ev = self.evaluate()
            self.last_metrics.update(ev)
            if self.world.is_main:
                self.tracker.log_metrics(ev, step=self.step)

    # -- save / cleanup --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Collective: every rank contributes its RNG and data position; rank 0 writes."""
        weights, optim_state = distributed.full_state(
            self.model, self.optimizer, strategy=self.strategy
        )
        rngs = distributed.all_gather_object(checkpoint.rng_state(), self.world)
        data = distributed.all_gather_object(self.loader.state_dict(), self.world)
        path = None
        if self.world.is_main:
            path = checkpoint.save(
                self.ckpt_root,
                step=self.step,
                weights=weights,
                optimizer=optim_state,
                scheduler=self.scheduler.state_dict(),
                rng=rngs,
                state={
                    "data": data,
                    "fingerprint": self.cfg.fingerprint(),
                    "settings": self.cfg.resume_settings(),
                    "data_fingerprint": self.data_fingerprint,
                    "data_path": self.cfg.data.path,
                    "mlflow_run_id": self.run_id,
                    "losses": self.losses,
                    "base_model": self.cfg.model.name_or_path,
                    "lora": self.cfg.lora.enabled
                    and {
                        "r": self.cfg.lora.r,
                        "alpha": self.cfg.lora.alpha,
                        "target_modules": list(self.cfg.lora.target_modules),
                    },
                },
                keep_last=self.cfg.checkpoint.keep_last,
                staging=self.staging,
            )
        self.last_checkpoint = distributed.broadcast_object(path, self.world)
        distributed.barrier(self.world)

    def cleanup(self, status: str = "FINISHED") -> None:
        if getattr(self, "tracker", None) is not None:
            self.tracker.end(status)
        # The model, its parameters and the optimizer state hold the process group (FSDP2's
        # mesh and DTensors, DDP's reducer): free them while the interpreter is whole, so no
        # gloo object outlives the group into interpreter shutdown.
        for name in ("model", "module", "params", "optimizer", "scheduler"):
            self.__dict__.pop(name, None)
        gc.collect()
        distributed.cleanup(graceful=status == "FINISHED")

    def result(self) -> TrainResult:
        return TrainResult(
            first_loss=self.losses[0] if self.losses else float("nan"),
            final_loss=self.losses[-1] if self.losses else float("nan"),
            losses=list(self.losses),
            steps=self.step,
            checkpoint_path=self.last_checkpoint,
            run_id=self.run_id,
            output_dir=str(self.out),
            metrics=dict(self.last_metrics),
        )


def main(config: TrainConfig) -> TrainResult:
    """Train to `config.max_steps` (resuming from a checkpoint if one exists); return the result."""
    recipe = Recipe(config)
    status = "FAILED"
    try:
        recipe.setup()
        recipe.train()
        status = "FINISHED"
        return recipe.result()
    finally:
        recipe.cleanup(status)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = command_parser("training.train", __doc__)
    parser.epilog = "keys --set accepts (default: description):\n" + "\n".join(
        f"  {line}" for line in settable_keys()
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML file (TrainConfig)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="dotted override, YAML-typed, e.g. --set optim.lr=1e-4 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return load_config(args.config, args.set)
    except TrainConfigError as e:
        parser.exit(2, f"{e}\n")


def cli(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        result = main(config)
    except (CannotResumeError, checkpoint.CheckpointError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, inputs.StagingError) as e:  # a missing input: which, no traceback
        print(f"train failed: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"final_loss": result.final_loss, "checkpoint": result.checkpoint_path}))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
