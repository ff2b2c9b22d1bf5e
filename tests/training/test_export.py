"""Export merges LoRA into the base, reloads with plain transformers and generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import moto
import numpy as np
import pytest
import torch

from training import export, train
from training.model import packed_attention
from training.model.modeling import PackedCausalLM, load_causal_lm


def _trained(tiny_config: Any, **kw: Any) -> tuple[Any, Any]:
    cfg = tiny_config(max_steps=3, optim__lr=2e-2, **kw)
    return cfg, train.main(cfg)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_export_reloads_with_the_trained_logits(
    tiny_config: Any, tmp_path: Path, lora: bool
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, result = _trained(tiny_config, lora__enabled=lora, lora__r=4)
    out = tmp_path / "export"
    exported = export.main(result.checkpoint_path, str(out))
    assert exported.merged_lora is lora
    for name in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json"):  # fmt: skip
        assert (out / name).is_file(), name
    gen = json.loads((out / "generation_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(out)
    assert gen["temperature"] == 0.6
    assert gen["top_p"] == 0.95
    assert gen["top_k"] == 20
    assert set(gen["eos_token_id"]) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id,
                                         tok.convert_tokens_to_ids("<|endoftext|>")}  # fmt: skip
    assert not any("lora" in k for k in load_file(str(out / "model.safetensors")))

    # The in-memory trained model (adapters unmerged) vs the exported, merged one.
    model, _ = load_causal_lm(cfg, torch.device("cpu"), bf16=False)
    trained = PackedCausalLM(model, chunk_rows=64, compute_dtype=None)
    loaded = trained.load_state_dict(
        load_file(str(Path(result.checkpoint_path) / "model.safetensors")), strict=False
    )
    assert not loaded.unexpected_keys
    trained.eval()
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "weather in Paris?"}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )["input_ids"]  # fmt: skip
    with torch.no_grad():
        # packed_sdpa needs segment bounds, even for a row holding one sequence.
        one = packed_attention.packed_kwargs(np.array([ids.shape[1]]), torch.device("cpu"))
        want = trained.base()(input_ids=ids, **one).logits
        got = reloaded(input_ids=ids).logits
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        untrained = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path)(input_ids=ids)
        assert not torch.allclose(got, untrained.logits, atol=1e-3)  # the training is in there
        generated = reloaded.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4 or tok.eos_token_id in generated[0].tolist()


def test_export_to_s3(tiny_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    _, result = _trained(tiny_config, lora__enabled=True, lora__r=4)
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        export.main(result.checkpoint_path, "s3://models/qwen3-tools/v1")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]}
    assert {"qwen3-tools/v1/model.safetensors", "qwen3-tools/v1/chat_template.jinja",
            "qwen3-tools/v1/generation_config.json"} <= keys  # fmt: skip
