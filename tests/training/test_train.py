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
from training.config import TrainConfigError, dump_config, load_config
from training.data.packing import pack_sequences
from training.model.modeling import PackedCausalLM, load_causal_lm, make_micro_batch
from training.train import cosine_with_warmup

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


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
    assert all(0 < r["loss_token_fraction"] < 1 for r in rows)
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


def test_a_bad_config_gets_one_file_field_reason_line_per_problem(tmp_path: Path) -> None:
    """The same `file: field.path: reason` lines as the business-unit configs in config/."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name_or_path: m, lora_r: 3}\ndata: {path: d}\nmax_steps: 0\n"
        "precision: fp16\noptim: {lr: fast, grad_accum: '2'}\nlora: {enabled: 1}\n"
    )
    with pytest.raises(TrainConfigError) as err:
        load_config(cfg)
    assert str(err.value).splitlines() == [
        f"{cfg}: max_steps: Input should be greater than or equal to 1",
        f"{cfg}: precision: Input should be 'auto', 'fp32' or 'bf16'",
        f"{cfg}: model.lora_r: unknown field (not in the schema)",
        f"{cfg}: lora.enabled: Input should be a valid boolean",
        f"{cfg}: optim.lr: Input should be a valid number",
        f"{cfg}: optim.grad_accum: Input should be a valid integer",
    ]
    cfg.write_text("model: {name_or_path: m}\ndata: {path: d}\nmax_steps: 3\n")
    with pytest.raises(TrainConfigError, match=r"optim\.warmup_steps: 5 warm-up steps exceed"):
        load_config(cfg, ["optim.warmup_steps=5"])
    cfg.write_text("model: {name_or_path: m}\n")
    with pytest.raises(TrainConfigError, match=r"c\.yaml: data: Field required"):
        load_config(cfg)


def test_train_cli_reports_config_errors_and_applies_set_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name_or_path: m}\ndata: {path: d, pack_lenght: 8}\n")
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--config", str(bad)])
    assert exit_info.value.code == 2
    assert f"{bad}: data.pack_lenght: unknown field (not in the schema)" in capsys.readouterr().err
    cfg = train.parse_args(
        ["--config", str(CONFIGS / "tiny-cpu.yaml"), "--set", "optim.lr=1e-4",
         "--set", "lora.enabled=true", "--set", "optim.betas=[0.9, 0.95]"]
    )  # fmt: skip
    assert (cfg.optim.lr, cfg.lora.enabled, cfg.optim.betas) == (1e-4, True, (0.9, 0.95))


def test_bf16_without_cuda_fails_fast(tiny_config: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="bf16 needs CUDA"):
        train.main(tiny_config(precision="bf16"))


@pytest.mark.parametrize(
    ("name", "gpus", "lora", "strategy"),
    [
        ("tiny-cpu.yaml", 1, False, "auto"),
        ("qwen3-4b-lora.yaml", 8, True, "ddp"),
        ("qwen3-4b-full.yaml", 8, False, "fsdp2"),
    ],
)
def test_shipped_configs_load_round_trip_and_keep_their_stated_batch(
    name: str, gpus: int, lora: bool, strategy: str
) -> None:
    cfg = load_config(CONFIGS / name)
    assert (cfg.lora.enabled, cfg.distributed.strategy) == (lora, strategy)
    # The comments' tokens per optimizer step: 4,096 (tiny) and 262k per 8-GPU node (4B).
    d = cfg.data
    tokens = d.pack_length * d.packs_per_micro_batch * cfg.optim.grad_accum * gpus
    assert tokens == (4096 if gpus == 1 else 262_144)


def test_a_config_survives_dump_and_load(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "qwen3-4b-full.yaml")
    path = tmp_path / "again.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert load_config(path).fingerprint() == cfg.fingerprint()


def _saved_activation_bytes(config: Any, pack: Any) -> int:
    """Bytes autograd keeps for backward after one forward, parameters excluded."""
    model, _ = load_causal_lm(config, torch.device("cpu"), bf16=False)
    module = PackedCausalLM(model, chunk_rows=128, compute_dtype=None)
    batch = make_micro_batch(pack.input_ids, pack.labels, pack.seq_lens, torch.device("cpu"))
    saved: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        module(batch)
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    return sum(n for ptr, n in saved.items() if ptr not in params)


def test_gradient_checkpointing_saves_activations_and_keeps_the_numbers(
    tiny_config: Any, packed_dir: Path, sequences: Any
) -> None:
    (pack,) = pack_sequences(sequences(4, seed=5), 4096)
    plain_cfg = tiny_config(max_steps=2, output_dir="plain")
    gc_cfg = tiny_config(
        max_steps=2, output_dir="gc", model__gradient_checkpointing=True,
        data__eval_path=str(packed_dir), eval_every=2,
    )  # fmt: skip
    # Only each decoder layer's input survives the forward (measured: ~16 MB -> ~1.2 MB here).
    assert _saved_activation_bytes(gc_cfg, pack) < _saved_activation_bytes(plain_cfg, pack) / 4
    plain = train.main(plain_cfg)
    ckpt = train.main(gc_cfg)
    assert ckpt.losses == pytest.approx(plain.losses, rel=1e-5)
    assert 0 < ckpt.metrics["eval_loss"] < ckpt.first_loss
