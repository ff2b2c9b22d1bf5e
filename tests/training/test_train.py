"""The trainer learns: loss falls, every trainable parameter moves, LoRA touches adapters only."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from training import train
from training.config import load_config
from training.train import cosine_with_warmup


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_full_finetune_loss_falls_and_every_parameter_changes(
    tiny_config: Any, tiny_model_dir: Path
) -> None:
    result = train.main(tiny_config(max_steps=12, checkpoint__resume="never"))
    assert result.steps == 12
    assert result.final_loss < result.first_loss * 0.8
    assert result.checkpoint_path is not None
    trained = load_file(str(Path(result.checkpoint_path) / "model.safetensors"))
    initial = load_file(str(tiny_model_dir / "model.safetensors"))
    assert len(trained) == len(initial)
    for name, before in initial.items():
        after = trained["causal_lm." + name]
        assert not torch.equal(before, after), f"{name} did not change"
    rows = [
        json.loads(x) for x in (Path(result.output_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(r["real_token_fraction"] == 1.0 and 0 < r["loss_token_fraction"] < 1 for r in rows)
    assert rows[0]["lr"] < rows[1]["lr"]  # warm-up


def test_lora_trains_only_adapters(tiny_config: Any) -> None:
    result = train.main(
        tiny_config(max_steps=8, lora__enabled=True, lora__r=4, lora__alpha=8, optim__lr=1e-2)
    )
    assert result.final_loss < result.first_loss
    weights = _weights(Path(result.checkpoint_path or ""))
    assert weights
    assert all("lora_" in k for k in weights)
    # all seven linear projections of both layers carry adapters; lm_head does not.
    assert len(weights) == 2 * 7 * 2
    assert not any("lm_head" in k for k in weights)
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


def test_cpt_on_raw_text_jsonl(tiny_config: Any, tmp_path: Path) -> None:
    data = tmp_path / "text.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"the weather in Paris is {i} celsius. " * 30}) + "\n"
            for i in range(30)
        )
    )
    result = train.main(
        tiny_config(max_steps=6, data__path=str(data), data__mode="cpt", data__pack_length=256)
    )
    assert result.final_loss < result.first_loss
    # CPT takes loss on every next token: the fraction is (T - #seqs) / T.
    assert result.metrics["loss_token_fraction"] > 0.95


def test_unpacked_jsonl_is_packed_on_the_fly(tiny_config: Any, jsonl_file: Path) -> None:
    result = train.main(
        tiny_config(max_steps=3, data__path=str(jsonl_file), checkpoint__enabled=False)
    )
    assert result.checkpoint_path is None  # checkpointing off: nothing written
    assert not (Path(result.output_dir) / "checkpoints").exists()
    assert result.steps == 3
    assert result.final_loss < result.first_loss


def test_grad_accum_split_does_not_change_the_step(tiny_config: Any) -> None:
    """Token-weighted normalisation: 2 micro-batches of 1 pack == 1 micro-batch of 2 packs."""
    a = train.main(tiny_config(max_steps=2, optim__grad_accum=2, output_dir="a"))
    b = train.main(
        tiny_config(max_steps=2, optim__grad_accum=1, data__packs_per_micro_batch=2, output_dir="b")
    )
    # Same packs per step either way (the permutation does not depend on the split).
    assert a.losses == pytest.approx(b.losses, rel=1e-5)


def test_cosine_schedule_warms_up_then_decays() -> None:
    f = cosine_with_warmup(4, 20, 0.1)
    values = [f(s) for s in range(21)]
    assert values[0] < values[3] < values[4] == 1.0
    assert values[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values[4:]))


def test_config_rejects_unknown_keys_and_impossible_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name_or_path: m, lora_r: 3}\ndata: {path: d}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(cfg)
    cfg.write_text("model: {name_or_path: m}\ndata: {path: d}\nmax_steps: 0\n")
    with pytest.raises(ValueError, match="max_steps"):
        load_config(cfg)
    cfg.write_text("model: {name_or_path: m}\ndata: {path: d}\nprecision: fp16\n")
    with pytest.raises(ValueError, match="not one of"):
        load_config(cfg)


def test_bf16_without_cuda_fails_fast(tiny_config: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="bf16 needs CUDA"):
        train.main(tiny_config(precision="bf16"))


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    for name in ["tiny-cpu.yaml", "qwen3-4b-lora.yaml", "qwen3-4b-full.yaml"]:
        cfg = load_config(root / name)
        assert cfg.max_steps > 0


def test_gradient_checkpointing_changes_memory_not_numbers(
    tiny_config: Any, packed_dir: Path
) -> None:
    plain = train.main(tiny_config(max_steps=2, output_dir="plain"))
    ckpt = train.main(
        tiny_config(
            max_steps=2, output_dir="gc", model__gradient_checkpointing=True,
            data__eval_path=str(packed_dir), eval_every=2,
        )
    )  # fmt: skip
    assert ckpt.losses == pytest.approx(plain.losses, rel=1e-5)
    assert 0 < ckpt.metrics["eval_loss"] < ckpt.first_loss
