"""Export a training checkpoint as a standalone Hugging Face model for LMI/vLLM to load.

    python -m training.export --run-dir runs/tiny-train --output runs/tiny-export
    python -m training.export --checkpoint s3://b/ckpt/step-000200 \
        --base-model /fsx/models/Qwen3-4B --output s3://b/models/qwen3-4b-tools/v1 \
        [--mlflow-run-id RUN]

LoRA adapters are merged into the base weights (`merge_and_unload`), so serving needs no peft.
The output holds safetensors weights, config.json, the tokenizer with its chat template
(`chat_template.jinja`, which vLLM's Hermes tool parser relies on) and generation_config.json with
Qwen3's recommended sampling. LMI's `serving.properties` belongs to `inference/`, not here.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core import cli as core_cli
from training.file_modes import honour_umask
from training.loop import checkpoint, inputs
from training.model.dirs import local_dir
from training.model.modeling import with_lora

# Qwen3's recommended sampling for thinking mode (the model card); greedy decoding loops.
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20}
_PREFIX = "causal_lm."  # PackedCausalLM's attribute holding the HF model


@dataclass
class ExportResult:
    output: str  # where the model now lives (local path or s3 URI)
    local_dir: str  # a local copy (a temp dir that is removed for s3 outputs unless kept)
    merged_lora: bool
    step: int


def _strip(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix(_PREFIX): v for k, v in weights.items()}


def merged_model(
    ckpt: str, base_model: str | None = None, *, staging: Path
) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's weights applied to the base model, LoRA merged; returns (model, state)."""
    from transformers import AutoModelForCausalLM

    weights, state = checkpoint.read_weights(ckpt, staging=staging)
    base = base_model or state.get("base_model")
    if not base:
        raise ValueError(f"{ckpt}: no base model recorded; pass --base-model")
    base_dir = _base_dir(base)
    with checkpoint.refusing_pickles(base_dir):
        model: Any = AutoModelForCausalLM.from_pretrained(
            base_dir, dtype="auto", attn_implementation="sdpa"
        )
    lora = state.get("lora")
    weights = _strip(weights)
    if lora:
        peft_model = with_lora(
            model,
            r=lora["r"],
            alpha=lora["alpha"],
            dropout=0.0,
            target_modules=lora["target_modules"],
        )
        result = peft_model.load_state_dict(
            {k: v.to(next(peft_model.parameters()).dtype) for k, v in weights.items()}, strict=False
        )
        if result.unexpected_keys:
            raise ValueError(f"adapter keys not in the model: {result.unexpected_keys[:3]}")
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing:
            raise ValueError(f"checkpoint lacks adapter weights: {missing[:3]}")
        model = peft_model.merge_and_unload()
    else:
        model.load_state_dict(weights, strict=True)
    model.eval()
    return model, state


def _base_dir(base: str) -> str:
    """The base model's local folder: an s3:// one (what a run on S3 inputs records as its
    `base_model`) is staged as the trainer stages it, reusing a copy already on this machine."""
    if checkpoint.is_s3(base):
        return str(inputs.stage(base, inputs.staging_root("")))
    return local_dir(base, what="base model")


def _generation_config(tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return GenerationConfig(
        **GENERATION_DEFAULTS,
        eos_token_id=eos,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )


def _upload(local: Path, uri: str) -> None:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        key = "/".join(x for x in (prefix.strip("/"), f.relative_to(local).as_posix()) if x)
        client.upload_file(str(f), bucket, key)


def main(
    checkpoint_path: str,
    output: str,
    *,
    base_model: str | None = None,
    mlflow_run_id: str | None = None,
    tracking_uri: str = "",
) -> ExportResult:
    """Merge, write the serving layout to `output` (local or s3://), optionally log to MLflow."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        model, state = merged_model(checkpoint_path, base_model, staging=Path(tmp))
        base = base_model or state["base_model"]
        to_s3 = output.startswith("s3://")
        local = Path(tempfile.mkdtemp(prefix="export-")) if to_s3 else Path(output)
        local.mkdir(parents=True, exist_ok=True)
        model.config.use_cache = True
        model.save_pretrained(local)
        tokenizer = AutoTokenizer.from_pretrained(_base_dir(base))
        tokenizer.save_pretrained(local)
        if not (local / "chat_template.jinja").is_file():
            (local / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
        _generation_config(tokenizer).save_pretrained(local)
        honour_umask(local)
    if to_s3:
        _upload(local, output)
    if mlflow_run_id:
        from training.loop.tracking import log_to_run

        log_to_run(mlflow_run_id, tracking_uri=tracking_uri, artifacts=local, artifact_path="model")
    if to_s3:
        shutil.rmtree(local, ignore_errors=True)
    return ExportResult(
        output=output, local_dir=str(local), merged_lora=bool(state.get("lora")), step=state["step"]
    )


@dataclass(frozen=True, kw_only=True)
class ExportArgs:
    """``python -m training.export``'s options: a checkpoint, or a run whose latest to take."""

    checkpoint: str | None = field(default=None, metadata={"cli": False})
    run_dir: str | None = field(default=None, metadata={"cli": False})
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "a local folder or an s3:// prefix (staged to $TMPDIR/training-inputs); "
            "defaults to the base recorded in the checkpoint"
        },
    )
    output: str = field(metadata={"help": "local directory or s3://bucket/prefix"})
    mlflow_run_id: str | None = field(
        default=None, metadata={"help": "log the exported model as artifacts of this run"}
    )


def parse_args(argv: Sequence[str] | None = None) -> ExportArgs:
    """The source is one of two exclusive options, which the parser's group enforces."""
    parser = core_cli.command_parser("training.export", __doc__)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a step-NNNNNN directory or s3 URI")
    src.add_argument("--run-dir", help="a training output_dir: exports its latest checkpoint")
    core_cli.add_arguments(parser, ExportArgs)
    return ExportArgs(**vars(parser.parse_args(argv)))


def cli(argv: Sequence[str] | None = None) -> int:
    """The command: `main` on the chosen checkpoint, its failure as one line and exit 2."""
    a = parse_args(argv)
    ckpt = a.checkpoint or checkpoint.latest(str(Path(a.run_dir or "") / "checkpoints"))
    if ckpt is None:
        raise SystemExit(f"{a.run_dir}: no checkpoint found")
    try:
        result = main(ckpt, a.output, base_model=a.base_model, mlflow_run_id=a.mlflow_run_id)
    except (FileNotFoundError, ValueError) as e:  # ValueError: checkpoint.CheckpointError too
        print(f"export failed: {e}", file=sys.stderr)
        return 2
    print(result.output)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
