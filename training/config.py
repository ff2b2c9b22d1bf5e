"""Typed training configuration: one YAML file maps onto `TrainConfig`, every field documented.

`load_config(path, overrides=["optim.lr=1e-4", ...])` reads YAML, applies dotted overrides (YAML
typed, so `5` is an int and `true` a bool) and validates; unknown keys are errors, not typos
silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

AttnImpl = Literal["auto", "packed_sdpa", "flash_attention_2", "flash_attention_3"]
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ModelConfig:
    name_or_path: str = field(
        default="",
        metadata=_help("Hugging Face model directory (weights + tokenizer); local or FSx path."),
    )
    attn_implementation: AttnImpl = field(
        default="auto",
        metadata=_help(
            "Attention over packs. `auto`: FlashAttention varlen on CUDA when installed, else "
            "`packed_sdpa` (SDPA per sequence segment; never crosses a boundary)."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=_help("Recompute decoder layers in backward to save activations.")
    )
    loss_chunk_rows: int = field(
        default=128,
        metadata=_help(
            "Loss-bearing rows per lm_head chunk: peak logits memory is rows x vocab x 4 bytes"
            " (128 x 151,936 = 78 MB)."
        ),
    )


@dataclass
class LoraConfig:
    enabled: bool = field(default=False, metadata=_help("LoRA (peft) instead of full fine-tuning."))
    r: int = field(default=16, metadata=_help("Adapter rank."))
    alpha: int = field(default=32, metadata=_help("Scaling numerator: updates scale by alpha/r."))
    dropout: float = field(default=0.05, metadata=_help("Dropout on the adapter input."))
    target_modules: list[str] = field(
        default_factory=lambda: list(ALL_LINEAR),
        metadata=_help("Default: every linear layer of the decoder body; lm_head stays frozen."),
    )


@dataclass
class DataConfig:
    path: str = field(
        default="",
        metadata=_help(
            "A packed directory (`training.prepare` output, manifest.json) or a JSONL file with "
            "`input_ids`/`labels` (prepare --no-pack) or `text` (continued pre-training)."
        ),
    )
    mode: Literal["sft", "cpt"] = field(
        default="sft",
        metadata=_help("`sft`: loss where labels != -100; `cpt`: loss on every token (raw text)."),
    )
    pack_length: int = field(
        default=4096,
        metadata=_help("Token budget per pack for JSONL input (a packed dir carries its own)."),
    )
    packs_per_micro_batch: int = field(
        default=1,
        metadata=_help("Packs laid end to end into one [1, T] row per forward pass."),
    )
    eval_path: str = field(default="", metadata=_help("Optional held-out data in the same format."))


@dataclass
class OptimConfig:
    lr: float = field(default=2e-4, metadata=_help("Peak learning rate (AdamW)."))
    weight_decay: float = field(default=0.0, metadata=_help("Decoupled weight decay."))
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=_help("AdamW betas."))
    eps: float = field(default=1e-8, metadata=_help("AdamW epsilon."))
    warmup_steps: int = field(default=0, metadata=_help("Linear warm-up optimizer steps."))
    min_lr_ratio: float = field(
        default=0.0, metadata=_help("Cosine decays to lr x this at max_steps.")
    )
    max_grad_norm: float = field(
        default=1.0, metadata=_help("Clip the global grad norm (0 disables).")
    )
    grad_accum: int = field(default=1, metadata=_help("Micro-batches per optimizer step."))


@dataclass
class CheckpointConfig:
    dir: str = field(
        default="",
        metadata=_help("Local/FSx directory or s3://bucket/prefix; empty: OUTPUT_DIR/checkpoints."),
    )
    enabled: bool = field(
        default=True, metadata=_help("false: never save (benchmarks, throwaway runs).")
    )
    every_n_steps: int = field(default=0, metadata=_help("Save every N steps (0: only at end)."))
    keep_last: int = field(default=3, metadata=_help("Keep the newest K checkpoints."))
    resume: str = field(
        default="auto",
        metadata=_help("`auto`: resume from the latest checkpoint if any; `never`; or a path."),
    )


@dataclass
class MlflowConfig:
    tracking_uri: str = field(
        default="",
        metadata=_help("Overrides MLFLOW_TRACKING_URI; http(s)://, file path or SageMaker ARN."),
    )
    experiment: str = field(default="qwen3-tool-calling", metadata=_help("Experiment name."))
    run_name: str = field(default="", metadata=_help("Run name; empty lets MLflow pick."))
    log_system_metrics: bool = field(
        default=True, metadata=_help("CPU/GPU/memory metrics via psutil (and pynvml on GPU).")
    )


@dataclass
class DistributedConfig:
    strategy: Literal["auto", "none", "ddp", "fsdp2"] = field(
        default="auto",
        metadata=_help(
            "`auto`: none for one process, ddp for LoRA, fsdp2 for full fine-tuning under torchrun."
        ),
    )
    fsdp_reshard_after_forward: bool = field(
        default=True, metadata=_help("FSDP2: free gathered weights after forward (ZeRO-3).")
    )


@dataclass
class TrainConfig:
    output_dir: str = field(
        default="runs/train", metadata=_help("Metrics, default checkpoints, config copy.")
    )
    seed: int = field(default=0, metadata=_help("Seeds python, numpy, torch and the data order."))
    max_steps: int = field(default=100, metadata=_help("Optimizer steps to run."))
    log_every: int = field(default=1, metadata=_help("Log metrics every N steps."))
    eval_every: int = field(default=0, metadata=_help("Evaluate loss on eval_path every N steps."))
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto",
        metadata=_help("`auto`: bf16 autocast on CUDA, fp32 on CPU; `bf16` without CUDA fails."),
    )
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=_help("Device."))
    num_threads: int = field(default=0, metadata=_help("torch CPU threads (0: torch default)."))
    deterministic: bool = field(
        default=False, metadata=_help("torch.use_deterministic_algorithms (exact resume tests).")
    )
    progress_bar: bool = field(default=True, metadata=_help("tqdm bar on rank 0."))
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def validate(self) -> None:
        """Fail fast on settings the recipe cannot honour."""
        if not self.model.name_or_path:
            raise ValueError("model.name_or_path is required")
        if not self.data.path:
            raise ValueError("data.path is required")
        for name, value in [
            ("max_steps", self.max_steps),
            ("optim.grad_accum", self.optim.grad_accum),
            ("data.packs_per_micro_batch", self.data.packs_per_micro_batch),
            ("data.pack_length", self.data.pack_length),
            ("model.loss_chunk_rows", self.model.loss_chunk_rows),
            ("log_every", self.log_every),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.optim.warmup_steps > self.max_steps:
            raise ValueError("optim.warmup_steps exceeds max_steps")
        if self.checkpoint.keep_last < 1:
            raise ValueError("checkpoint.keep_last must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Hash of the settings a resumed run must share (model, LoRA, data, seed, batch shape).

        Step count, logging, checkpoint cadence and tracking may change between attempts.
        """
        d = self.to_dict()
        keep = {
            "seed": d["seed"],
            "model": {k: v for k, v in d["model"].items() if k == "name_or_path"},
            "lora": d["lora"],
            "data": {k: v for k, v in d["data"].items() if k != "eval_path"},
            "grad_accum": d["optim"]["grad_accum"],
        }
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


T = TypeVar("T")


def _coerce(tp: Any, value: Any, where: str) -> Any:  # noqa: PLR0911 - one branch per type
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{where}: {value!r} is not one of {get_args(tp)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {value!r}")
        return [_coerce(get_args(tp)[0], v, where) for v in value]
    if origin is tuple:
        return tuple(_coerce(a, v, where) for a, v in zip(get_args(tp), value, strict=True))
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        return float(value)  # YAML reads `1e-4` (no dot) as a string
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise TypeError(f"{where}: expected {tp.__name__}, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise TypeError(f"{where}: expected int, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML) to a nested mapping."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    config = from_dict(TrainConfig, apply_overrides(data, list(overrides or [])))
    config.validate()
    return config


def dump_config(config: TrainConfig) -> str:
    d = config.to_dict()
    d["optim"]["betas"] = list(d["optim"]["betas"])
    return yaml.safe_dump(d, sort_keys=False)
