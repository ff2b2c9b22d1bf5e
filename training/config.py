"""Typed training configuration: one YAML file maps onto `TrainConfig`, every field documented.

`load_config(path, overrides=["optim.lr=1e-4", ...])` reads YAML, applies dotted overrides (YAML
typed, so `5` is an int and `true` a bool) and validates with pydantic, like the business-unit
configs in `config/`: unknown keys and wrong types are errors, reported the same way, one
`file: field.path: reason` line each (`core.base.validation_errors`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from core.base import ConfigError, FieldProblemError, StrictModel, validation_errors

AttnImpl = Literal["auto", "packed_sdpa", "flash_attention_2", "flash_attention_3"]
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _yaml_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string; a numeric string is still a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # pydantic reports it
    return value


Float = Annotated[float, BeforeValidator(_yaml_number)]
Count = Annotated[int, Field(ge=1)]


class _Section(StrictModel):
    """Strict types (`"5"` is not an int, `1` is not a bool); frozen; unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelConfig(_Section):
    name_or_path: str = Field(
        min_length=1,
        description="Hugging Face model directory (weights + tokenizer): a local or FSx path, or "
        "an s3://bucket/prefix/ staged to a node-local copy first (data.staging_dir).",
    )
    attn_implementation: AttnImpl = Field(
        default="auto",
        description="Attention over packs. `auto`: FlashAttention varlen on CUDA when installed, "
        "else `packed_sdpa` (SDPA per sequence segment; never crosses a boundary).",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute decoder layers in backward to save activations."
    )
    loss_chunk_rows: Count = Field(
        default=128,
        description="Loss-bearing rows per lm_head chunk: peak logits memory is rows x vocab x 4 "
        "bytes (128 x 151,936 = 78 MB).",
    )


class LoraConfig(_Section):
    enabled: bool = Field(default=False, description="LoRA (peft) instead of full fine-tuning.")
    r: Count = Field(default=16, description="Adapter rank.")
    alpha: Count = Field(default=32, description="Scaling numerator: updates scale by alpha/r.")
    dropout: Float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_LINEAR),
        min_length=1,
        description="Default: every linear layer of the decoder body; lm_head stays frozen.",
    )


class DataConfig(_Section):
    path: str = Field(
        min_length=1,
        description="A packed directory (`training.prepare` output, manifest.json) or a JSONL "
        "file with `input_ids`/`labels` (prepare --no-pack) or `text` (continued pre-training); "
        "local, FSx, or s3://bucket/prefix/ (or an s3:// JSONL object) staged to "
        "data.staging_dir.",
    )
    mode: Literal["sft", "cpt"] = Field(
        default="sft",
        description="`sft`: loss where labels != -100; `cpt`: loss on every token (raw text).",
    )
    pack_length: Count = Field(
        default=4096,
        description="Token budget per pack. JSONL input is packed to it; a packed directory must "
        "have been prepared with it (`prepare --max-length`), or training refuses to start.",
    )
    packs_per_micro_batch: Count = Field(
        default=1, description="Packs laid end to end into one [1, T] row per forward pass."
    )
    eval_path: str = Field(
        default="", description="Optional held-out data in the same format (s3:// too)."
    )
    staging_dir: str = Field(
        default="",
        description="Node-local folder where s3:// inputs (data.path, data.eval_path, "
        "model.name_or_path) are downloaded, by one process per node, and reused while their S3 "
        "listing (keys, ETags, sizes) is unchanged; empty: $TMPDIR/training-inputs. Must not be "
        "shared between nodes.",
    )


class OptimConfig(_Section):
    lr: Float = Field(default=2e-4, gt=0.0, description="Peak learning rate (AdamW).")
    weight_decay: Float = Field(default=0.0, ge=0.0, description="Decoupled weight decay.")
    betas: Annotated[tuple[Float, Float], Strict(False)] = Field(
        default=(0.9, 0.999), description="AdamW betas."
    )
    eps: Float = Field(default=1e-8, gt=0.0, description="AdamW epsilon.")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up optimizer steps.")
    min_lr_ratio: Float = Field(
        default=0.0, ge=0.0, le=1.0, description="Cosine decays to lr x this at max_steps."
    )
    max_grad_norm: Float = Field(
        default=1.0, ge=0.0, description="Clip the global grad norm (0 disables)."
    )
    grad_accum: Count = Field(default=1, description="Micro-batches per optimizer step.")


class CheckpointConfig(_Section):
    dir: str = Field(
        default="",
        description="Local/FSx directory or s3://bucket/prefix; empty: OUTPUT_DIR/checkpoints.",
    )
    enabled: bool = Field(default=True, description="false: never save (benchmarks, throwaway).")
    every_n_steps: int = Field(default=0, ge=0, description="Save every N steps (0: only at end).")
    keep_last: Count = Field(default=3, description="Keep the newest K checkpoints.")
    resume: str = Field(
        default="auto",
        min_length=1,
        description="`auto`: resume from the latest checkpoint if any; `never`; or a path.",
    )
    resume_with_changed_settings: bool = Field(
        default=False,
        description="true: resume although seed, max_steps, model, LoRA, data layout or optimizer "
        "settings differ from the checkpoint's; the new values apply from the resumed step. "
        "Different data content is refused either way.",
    )


class MlflowConfig(_Section):
    tracking_uri: str = Field(
        default="",
        description="Overrides MLFLOW_TRACKING_URI; http(s)://, file path or SageMaker ARN.",
    )
    experiment: str = Field(default="qwen3-tool-calling", description="Experiment name.")
    run_name: str = Field(default="", description="Run name; empty lets MLflow pick.")
    log_system_metrics: bool = Field(
        default=True, description="CPU/GPU/memory metrics via psutil (and pynvml on GPU)."
    )


class DistributedConfig(_Section):
    strategy: Literal["auto", "none", "ddp", "fsdp2"] = Field(
        default="auto",
        description="`auto`: none for one process, ddp for LoRA, fsdp2 for full fine-tuning "
        "under torchrun.",
    )
    fsdp_reshard_after_forward: bool = Field(
        default=True, description="FSDP2: free gathered weights after forward (ZeRO-3)."
    )


class DpoConfig(_Section):
    beta: Float = Field(
        default=0.1,
        gt=0.0,
        description="DPO temperature: how far the policy may move from the reference.",
    )
    label_smoothing: Float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        description="Conservative DPO: the share of pairs assumed mislabelled.",
    )
    sft_weight: Float = Field(
        default=0.0,
        ge=0.0,
        description="RPO (Pang et al., 2024): add this x the chosen completion's mean token NLL "
        "to each pair's loss, so the model keeps producing the chosen answer while it learns to "
        "prefer it (DPO alone can lower both completions' likelihood).",
    )
    reference: Literal["auto", "adapters_disabled", "precomputed"] = Field(
        default="auto",
        description="Where reference log-probs come from without a second model: "
        "`adapters_disabled` (LoRA: the same weights, adapters off), `precomputed` (one pass "
        "before training, stored with the data); `auto` picks the first for LoRA, else the "
        "second.",
    )
    share_prompt: bool = Field(
        default=True,
        description="Compute each pair's prompt once (chosen and rejected share it in one row); "
        "false lays out prompt+chosen and prompt+rejected separately (needed for FlashAttention).",
    )


# Settings a resumed run must share with the checkpoint: they decide which packs come next, the
# optimizer's trajectory and the schedule's shape (a new max_steps reshapes the cosine mid-run, a
# new lr would be overridden by the restored optimizer state). Logging, checkpoint cadence,
# evaluation, tracking, threads, the data *path* and where s3:// inputs are staged may change (data
# content is fingerprinted separately, see `training.data.stream.fingerprint`).
RESUME_SETTINGS = (
    "seed", "max_steps", "model.name_or_path", "lora", "data", "optim", "objective", "dpo",
)  # fmt: skip
_NOT_RESUME_SETTINGS = ("data.path", "data.eval_path", "data.staging_dir")


class TrainConfig(_Section):
    output_dir: str = Field(
        default="runs/train", description="Metrics, default checkpoints, config copy."
    )
    seed: int = Field(default=0, description="Seeds python, numpy, torch and the data order.")
    max_steps: Count = Field(default=100, description="Optimizer steps to run.")
    log_every: Count = Field(default=1, description="Log metrics every N steps.")
    eval_every: int = Field(
        default=0, ge=0, description="Evaluate loss on eval_path every N steps (0: at the end)."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="`auto`: bf16 autocast on CUDA, fp32 on CPU; `bf16` without CUDA fails.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Device.")
    num_threads: int = Field(
        default=0,
        ge=0,
        description="torch CPU threads (0: torch's default, capped at the CPUs this process "
        "may use).",
    )
    deterministic: bool = Field(
        default=False, description="torch.use_deterministic_algorithms (exact resume tests)."
    )
    progress_bar: bool = Field(default=True, description="tqdm bar on rank 0.")
    objective: Literal["sft", "dpo"] = Field(
        default="sft",
        description="`sft`: next-token cross-entropy (data.mode picks supervised or "
        "pre-training); `dpo`: preference alignment on `prepare --task preference` data.",
    )
    model: ModelConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)

    @model_validator(mode="after")
    def _fits_the_run(self) -> TrainConfig:
        if self.optim.warmup_steps > self.max_steps:
            raise FieldProblemError(
                "optim.warmup_steps",
                f"{self.optim.warmup_steps} warm-up steps exceed max_steps ({self.max_steps})",
            )
        if self.objective == "dpo" and self.data.mode != "sft":
            raise FieldProblemError("data.mode", "objective dpo trains on pairs, not on cpt text")
        if self.dpo.reference == "adapters_disabled" and not self.lora.enabled:
            raise FieldProblemError(
                "dpo.reference",
                "adapters_disabled needs lora.enabled (full fine-tuning has no adapters to turn "
                "off; use precomputed)",
            )
        if (
            self.objective == "dpo"
            and self.dpo.share_prompt
            and self.model.attn_implementation.startswith("flash")
        ):
            raise FieldProblemError(
                "model.attn_implementation",
                "dpo.share_prompt needs packed_sdpa (FlashAttention varlen cannot let rejected "
                "see the prompt but not chosen); set dpo.share_prompt=false or attn auto",
            )
        return self

    @property
    def reference(self) -> str:
        """The DPO reference source after `auto` is resolved."""
        if self.dpo.reference != "auto":
            return self.dpo.reference
        return "adapters_disabled" if self.lora.enabled else "precomputed"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def resume_settings(self) -> dict[str, Any]:
        """The `RESUME_SETTINGS`, flattened to dotted keys (what a checkpoint records)."""
        flat = _flatten(self.to_dict())
        return {
            k: v
            for k, v in flat.items()
            if any(k == s or k.startswith(s + ".") for s in RESUME_SETTINGS)
            and k not in _NOT_RESUME_SETTINGS
        }

    def fingerprint(self) -> str:
        """Hash of `resume_settings()`."""
        blob = json.dumps(self.resume_settings(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def settable_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """One line per key ``--set`` accepts (``dotted.key (default): description``), from the
    schema itself, so ``train --help`` can never list a key the config does not have."""
    lines = []
    for name, field in (model or TrainConfig).model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            lines += settable_keys(kind, f"{prefix}{name}.")
            continue
        required = field.is_required()
        default = "required" if required else repr(field.get_default(call_default_factory=True))
        lines.append(f"{prefix}{name} ({default}): {field.description or ''}".rstrip(": "))
    return lines


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`key: old -> new` for each resume setting that differs (sorted by key)."""
    return [
        f"{k}: {before.get(k, '<unset>')!r} -> {after.get(k, '<unset>')!r}"
        for k in sorted(set(before) | set(after))
        if before.get(k, "<unset>") != after.get(k, "<unset>")
    ]


class TrainConfigError(ValueError):
    """Every problem with a training config, one `file: field.path: reason` line each."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML) to a nested mapping."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value")
        node = data
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def validate_config(data: Any, file: str = "<config>") -> TrainConfig:
    """`data` (parsed YAML) as a `TrainConfig`, or `TrainConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise TrainConfigError([ConfigError(file, "<root>", "expected a mapping of fields")])
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise TrainConfigError(validation_errors(file, err)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    file = str(path) if path is not None else "<overrides>"
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as err:
            reason = f"cannot read: {err.strerror}"
            raise TrainConfigError([ConfigError(file, "<file>", reason)]) from None
        except yaml.YAMLError as err:
            reason = f"not valid YAML: {err}".replace("\n", " ")
            raise TrainConfigError([ConfigError(file, "<yaml>", reason)]) from None
    if isinstance(data, dict):
        try:
            apply_overrides(data, list(overrides or []))
        except ValueError as err:
            raise TrainConfigError([ConfigError(file, "<override>", str(err))]) from None
    return validate_config(data, file)


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
