"""DPO: preference data in the formats people have, shared-prompt rows that equal separate runs, the
loss, and training with a reference that costs no second model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SHORT, build_tiny_config

from training import prepare, synthetic, train
from training.config import TrainConfigError
from training.data import stream
from training.data.packing import IGNORE_INDEX
from training.data.preference import (
    PREFERENCE,
    PairExample,
    encode_pairs,
    pack_pairs,
    parse_preference,
)
from training.model.loss import linear_log_probs
from training.model.modeling import PackedCausalLM
from training.model.preference import PreferenceLM, dpo_loss, make_pair_batch
from training.synthetic_preference import preference_pairs

DPO_PACK = 1024  # about two short pairs (prompt once) per pack


def _pairs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return preference_pairs(synthetic.generate(n, seed, **SHORT), seed)


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


def _prepare(tokenizer_dir: Path, records: list[Any], out: Path, **kw: Any) -> dict[str, Any]:
    args = prepare.PrepareArgs(
        input=_write(out.parent / f"{out.name}.jsonl", records),
        output=out,
        tokenizer=str(tokenizer_dir),
        task="preference",
        max_length=kw.pop("max_length", DPO_PACK),
        quiet=True,
        **kw,
    )
    return prepare.main(args)


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """120 synthetic pairs (every mistake kind) prepared and packed for DPO."""
    out = tmp_path_factory.mktemp("pairs") / "prepared"
    _prepare(tiny_model_dir, _pairs(120), out)
    return out


def _dpo_config(model_dir: Path, data: Path, out: Path, **overrides: Any) -> Any:
    base = {
        "objective": "dpo",
        "data__pack_length": DPO_PACK,
        "optim__lr": 5e-3,
        "optim__grad_accum": 1,
        "lora__dropout": 0.0,
    }
    return build_tiny_config(model_dir, data, out, **{**base, **overrides})


# --- data -----------------------------------------------------------------------------------


def test_both_formats_read_as_the_same_pair_with_loss_only_on_the_completions(
    tiny_tokenizer: Any,
) -> None:
    explicit = _pairs(4)[0]
    whole = {
        "chosen": explicit["prompt"] + explicit["chosen"],
        "rejected": explicit["prompt"] + explicit["rejected"],
        "tools": explicit["tools"],
    }
    records = [parse_preference(json.dumps(r), i) for i, r in enumerate([explicit, whole], 1)]
    a, b = encode_pairs(tiny_tokenizer, records, max_length=4096)  # type: ignore[arg-type]
    assert isinstance(a, PairExample)
    assert isinstance(b, PairExample)
    assert (a.prompt_ids, a.chosen_ids, a.rejected_ids) == (
        b.prompt_ids,
        b.chosen_ids,
        b.rejected_ids,
    )
    prompt = tiny_tokenizer.decode(a.prompt_ids)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<tools>" in prompt
    for ids, labels in ((a.chosen_ids, a.chosen_labels), (a.rejected_ids, a.rejected_labels)):
        assert labels == ids  # every completion token is the assistant's output
        assert tiny_tokenizer.decode(ids).endswith("<|im_end|>")


def test_bad_pairs_are_quarantined_with_line_and_reason(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    good = _pairs(40)
    call = next(p for p in good if p["chosen"][0].get("tool_calls"))
    name = call["chosen"][0]["tool_calls"][0]["function"]["name"]

    def chosen_call(arguments: str, tool: str = name) -> dict[str, Any]:
        msg = {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": tool, "arguments": arguments}}]}  # fmt: skip
        return {**call, "chosen": [msg]}

    hallucinating = {**call, "rejected": [chosen_call("{}", "no_such_tool")["chosen"][0]]}
    other_system = [{"role": "system", "content": "Another prompt."}, *call["prompt"][1:]]
    bad = [
        {**call, "rejected": call["chosen"]},  # 41: identical_completions
        {
            "chosen": call["prompt"] + call["chosen"],
            "rejected": other_system + call["rejected"],
            "tools": call["tools"],
        },
        chosen_call("{}", "no_such_tool"),  # 43: unknown_tool
        chosen_call(json.dumps({"city": 7})),  # 44: invalid_arguments
        {**call, "prompt": [*call["prompt"][:1], {"role": "user", "content": "x " * 900}]},  # 45
        "{not json",  # 46: malformed_json
        {"prompt": call["prompt"], "chosen": call["chosen"]},  # 47: malformed_record
        hallucinating,  # 48: kept, a rejected call may name a tool that does not exist
    ]
    stats = _prepare(tiny_model_dir, good + bad, tmp_path / "out", max_bad_fraction=1.0)
    quarantined = [
        json.loads(line)
        for line in (tmp_path / "out" / prepare.QUARANTINE).read_text().splitlines()
    ]
    assert [(q["line"], q["kind"]) for q in quarantined] == [
        (41, "identical_completions"),
        (42, "prefix_mismatch"),
        (43, "unknown_tool"),
        (44, "invalid_arguments"),
        (45, "too_long"),
        (46, "malformed_json"),
        (47, "malformed_record"),
    ]
    assert all(q["reason"].startswith(f"line {q['line']}:") and q["record"] for q in quarantined)
    assert stats["train_pairs"] == 41
    assert stats["quarantined"] == 7
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["kind"] == PREFERENCE
    assert manifest["num_pairs"] == 41


def test_a_trainer_refuses_data_of_the_other_kind(pair_dir: Path, packed_dir: Path) -> None:
    with pytest.raises(ValueError, match="objective: dpo"):
        stream.open_source(pair_dir, pack_length=DPO_PACK)
    with pytest.raises(ValueError, match="--task preference"):
        stream.open_source(packed_dir, pack_length=768, kind=PREFERENCE)


# --- the model ------------------------------------------------------------------------------


def _lm(model_dir: Path) -> PackedCausalLM:
    from transformers import AutoModelForCausalLM

    from training.model import packed_attention

    packed_attention.register()
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="packed_sdpa")
    return PackedCausalLM(model, chunk_rows=64, compute_dtype=None)


def _full_logps(lm: PackedCausalLM, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """Reference: prompt + completion alone, one causal sequence, logits at every position."""
    from training.model.packed_attention import packed_kwargs

    ids = torch.tensor([prompt + completion])
    one = packed_kwargs(np.asarray([ids.shape[1]]), torch.device("cpu"))
    logits = lm.base()(input_ids=ids, use_cache=False, **one).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None]).sum()


def test_shared_prompt_rows_give_the_log_probs_and_gradients_of_separate_runs(
    tiny_model_dir: Path, pair_dir: Path
) -> None:
    source = stream.open_source(pair_dir, pack_length=DPO_PACK, kind=PREFERENCE)
    pack = next(source[i] for i in range(len(source)) if len(source[i].seq_lens) >= 6)
    lm = _lm(tiny_model_dir)
    module = PreferenceLM(lm.causal_lm, chunk_rows=64, compute_dtype=None, beta=0.1)
    grads = []
    sums = []
    for share in (True, False):
        lm.zero_grad()
        batch = make_pair_batch(
            pack.input_ids, pack.labels, pack.seq_lens, torch.device("cpu"), share_prompt=share
        )
        logps = module.log_probs(batch)
        (logps * torch.tensor([1.0, -0.5])).sum().backward()
        sums.append(logps.detach())
        grads.append([p.grad.clone() for p in lm.parameters() if p.grad is not None])
    with torch.no_grad():
        separate, at = [], 0
        for k in range(len(pack.seq_lens) // 3):
            p, c, r = (int(x) for x in pack.seq_lens[3 * k : 3 * k + 3])
            ids = pack.input_ids.tolist()
            prompt = ids[at : at + p]
            chosen, rejected = ids[at + p : at + p + c], ids[at + p + c : at + p + c + r]
            separate.append([_full_logps(lm, prompt, chosen), _full_logps(lm, prompt, rejected)])
            at += p + c + r
    torch.testing.assert_close(sums[0], torch.tensor(separate), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(sums[0], sums[1], rtol=1e-5, atol=1e-4)
    for shared, unshared in zip(*grads, strict=True):
        torch.testing.assert_close(shared, unshared, rtol=1e-4, atol=1e-5)


def test_rejected_never_sees_chosen(tiny_model_dir: Path, pair_dir: Path) -> None:
    source = stream.open_source(pair_dir, pack_length=DPO_PACK, kind=PREFERENCE)
    pack = source[0]
    lm = _lm(tiny_model_dir)
    module = PreferenceLM(lm.causal_lm, chunk_rows=64, compute_dtype=None, beta=0.1)
    p, c, _ = (int(x) for x in pack.seq_lens[:3])
    changed = pack.input_ids.copy()
    changed[p : p + c - 1] = (changed[p : p + c - 1] + 7) % 1000  # other chosen tokens
    with torch.no_grad():
        before, after = (
            module.log_probs(make_pair_batch(ids, pack.labels, pack.seq_lens, torch.device("cpu")))
            for ids in (pack.input_ids, changed)
        )
    torch.testing.assert_close(before[:, 1], after[:, 1], rtol=0, atol=0)  # rejected identical
    assert not torch.allclose(before[0, 0], after[0, 0])  # while chosen did change


def test_linear_log_probs_match_log_softmax_in_values_and_gradients() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(11, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    upstream = torch.randn(11, dtype=torch.float64)
    got = linear_log_probs(hidden, weight, targets, chunk_rows=4)
    (got.double() * upstream).sum().backward()
    g_h, g_w = hidden.grad.clone(), weight.grad.clone()  # type: ignore[union-attr]
    hidden.grad = weight.grad = None
    want = torch.log_softmax(hidden @ weight.T, -1).gather(1, targets[:, None])[:, 0]
    (want * upstream).sum().backward()
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_h, hidden.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_w, weight.grad, rtol=1e-6, atol=1e-6)


def test_dpo_loss_is_the_sigmoid_form_with_label_smoothing() -> None:
    policy = torch.tensor([[-10.0, -14.0], [-8.0, -7.0]])
    ref = torch.tensor([[-11.0, -12.0], [-8.0, -8.0]])
    losses, chosen, rejected = dpo_loss(policy, ref, beta=0.5, label_smoothing=0.2)
    z = torch.tensor([0.5 * ((-10 + 14) - (-11 + 12)), 0.5 * ((-8 + 7) - 0.0)])
    expected = -0.8 * torch.log(torch.sigmoid(z)) - 0.2 * torch.log(torch.sigmoid(-z))
    torch.testing.assert_close(losses, expected)
    torch.testing.assert_close(chosen, torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(rejected, torch.tensor([-1.0, 0.5]))
    same, *_ = dpo_loss(policy, policy, beta=0.1)
    torch.testing.assert_close(same, torch.full((2,), math.log(2)))


def test_pack_pairs_keeps_each_pair_whole_with_its_prompt_once() -> None:
    pairs = [
        PairExample([1, 2, 3], [4, 5], [4, 5], [6], [6], 1),
        PairExample([7, 8], [9], [9], [10, 11], [IGNORE_INDEX, 11], 2),
    ]
    (pack,) = pack_pairs(pairs, 16)
    assert pack.seq_lens.tolist() == [3, 2, 1, 2, 1, 2]
    assert pack.input_ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert pack.labels.tolist()[:3] == [IGNORE_INDEX] * 3


# --- training -------------------------------------------------------------------------------


def test_lora_dpo_uses_its_own_weights_with_adapters_off_as_reference(
    tiny_model_dir: Path, pair_dir: Path, tmp_path: Path
) -> None:
    cfg = _dpo_config(tiny_model_dir, pair_dir, tmp_path / "run", max_steps=12, lora__enabled=True)
    assert cfg.reference == "adapters_disabled"
    result = train.main(cfg)
    assert result.first_loss == pytest.approx(math.log(2), abs=1e-5)  # policy == reference
    assert sum(result.losses[-4:]) / 4 < math.log(2) - 0.05, result.losses
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["rewards/margins"] > 0
    assert rows[-1]["pairs_per_s"] > 0
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen"} <= set(
        rows[-1]
    )
    assert not (pair_dir / "reference").exists()  # nothing precomputed for LoRA


def test_full_finetuning_dpo_precomputes_the_reference_once_with_the_data(
    tiny_model_dir: Path, pair_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(pair_dir, data)
    first = train.main(_dpo_config(tiny_model_dir, data, tmp_path / "a", max_steps=3))
    assert "reference log-probs: 1 of 1 chunks to compute" in capfd.readouterr().err
    assert first.first_loss == pytest.approx(math.log(2), abs=1e-5)
    stored = list((data / "reference").glob("*/packs-*.safetensors"))
    assert len(stored) == 1
    again = train.main(_dpo_config(tiny_model_dir, data, tmp_path / "b", max_steps=3))
    assert "chunks to compute" not in capfd.readouterr().err  # read back, not recomputed
    assert again.losses == first.losses


def test_dpo_resumes_exactly(tiny_model_dir: Path, pair_dir: Path, tmp_path: Path) -> None:
    common = {"max_steps": 6, "deterministic": True, "checkpoint__every_n_steps": 3,
              "lora__enabled": True, "lora__r": 4}  # fmt: skip
    whole = train.main(_dpo_config(tiny_model_dir, pair_dir, tmp_path / "whole", **common))
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "step-000003",
                    resumed_dir / "checkpoints" / "step-000003")  # fmt: skip
    resumed = train.main(_dpo_config(tiny_model_dir, pair_dir, resumed_dir, **common))
    assert resumed.losses[3:] == pytest.approx(whole.losses[3:], rel=1e-9, abs=0)


def test_dpo_settings_that_cannot_work_are_rejected_before_loading(
    tiny_model_dir: Path, pair_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainConfigError, match=r"dpo\.reference: .*needs lora\.enabled"):
        _dpo_config(tiny_model_dir, pair_dir, tmp_path, dpo__reference="adapters_disabled")
    with pytest.raises(TrainConfigError, match=r"model\.attn_implementation: .*packed_sdpa"):
        _dpo_config(
            tiny_model_dir, pair_dir, tmp_path, model__attn_implementation="flash_attention_2"
        )
    with pytest.raises(TrainConfigError, match=r"dpo\.beta"):
        _dpo_config(tiny_model_dir, pair_dir, tmp_path, dpo__beta=0)


CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("name", ["tiny-cpu-dpo.yaml", "qwen3-4b-dpo-lora.yaml"])
def test_shipped_dpo_configs_use_the_adapters_as_their_reference(name: str) -> None:
    from training.config import load_config

    cfg = load_config(CONFIGS / name)
    assert cfg.objective == "dpo"
    assert cfg.lora.enabled
    assert cfg.reference == "adapters_disabled"
    assert cfg.lora.dropout == 0.0  # policy == reference at step 0
    assert cfg.dpo.share_prompt
    assert not cfg.model.attn_implementation.startswith("flash")


def test_a_dpo_job_renders_like_an_sft_one(tmp_path: Path) -> None:
    import yaml

    from training.job.cli import main, parse_args

    out = tmp_path / "job.yaml"
    config = str(CONFIGS / "qwen3-4b-dpo-lora.yaml")
    argv = ["render", "--name", "qwen3-dpo", "--image", "repo/training:abc", "--config", config]
    assert main(parse_args([*argv, "--nodes", "2", "--output", str(out)])) == 0
    job = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert job["kind"] == "HyperPodPyTorchJob"
    container = job["spec"]["replicaSpecs"][0]["template"]["spec"]["containers"][0]
    assert config in container["args"]
    assert job["spec"]["replicaSpecs"][0]["replicas"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (CONFIGS / "tiny-cpu-dpo.yaml").read_text().replace("reference: auto", "reference: x")
    )
    assert main(parse_args(["render", "--name", "j", "--image", "i:1", "--config", str(bad)])) == 2


@pytest.mark.parametrize(("strategy", "lora"), [("ddp", True), ("fsdp2", False)])
def test_torchrun_two_processes_match_one(
    tiny_model_dir: Path, pair_dir: Path, tmp_path: Path, strategy: str, lora: bool
) -> None:
    """Ranks split the step's pairs and the loss is the mean over all of them; with full
    fine-tuning the ranks also split the reference pass and share its table."""
    import os
    import subprocess
    import sys

    from training.config import dump_config

    data = tmp_path / "data"
    shutil.copytree(pair_dir, data)
    common = {"max_steps": 3, "lora__enabled": lora, "lora__r": 4}
    single = train.main(
        _dpo_config(tiny_model_dir, data, tmp_path / "single", optim__grad_accum=2, **common)
    )
    shutil.rmtree(data / "reference", ignore_errors=True)  # the 2 ranks compute it afresh
    cfg = _dpo_config(
        tiny_model_dir, data, tmp_path / "dist", distributed__strategy=strategy, **common
    )
    path = tmp_path / "dist.yaml"
    path.write_text(dump_config(cfg))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "training.train", "--config", str(path)],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(x) for x in (tmp_path / "dist" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == pytest.approx(single.losses, rel=1e-4)
    assert next(r["rewards/margins"] for r in rows) == 0.0


def test_an_interrupted_reference_pass_resumes_from_the_chunks_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.data.packing import Pack
    from training.loop import distributed, reference

    monkeypatch.setattr(reference, "CHUNK_PACKS", 2)
    packs = [
        Pack(np.zeros(3, np.int32), np.zeros(3, np.int32), np.ones(3, np.int32)) for _ in range(5)
    ]  # one pair each: 3 chunks of at most 2 packs
    seen: list[int] = []

    def log_probs(pack: Pack) -> torch.Tensor:
        seen.append(len(seen))
        return torch.tensor([[float(len(seen)), -1.0]])

    world = distributed.World(rank=0, size=1, local_rank=0, device=torch.device("cpu"))
    first = reference.compute_or_load(packs, log_probs, tmp_path / "ref", world)
    assert len(seen) == 5
    (tmp_path / "ref" / reference.DONE).unlink()  # as if cut off before the last chunk
    (tmp_path / "ref" / "packs-00000004.safetensors").unlink()
    again = reference.compute_or_load(packs, log_probs, tmp_path / "ref", world)
    assert len(seen) == 6  # only the missing chunk's one pack was recomputed
    assert again.lookup((0, 1, 2, 3)).tolist() == first.lookup((0, 1, 2, 3)).tolist()
    assert again.lookup((4,)).tolist() == [[6.0, -1.0]]


def test_ranking_pairs_scores_as_training_does_and_leaves_the_model_generating(
    tiny_model_dir: Path, tiny_tokenizer: Any
) -> None:
    from transformers import AutoModelForCausalLM

    from training.preference_eval import rank_pairs

    records = [parse_preference(json.dumps(r), 1) for r in _pairs(1)]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # sdpa, as for generation
    ranked = rank_pairs(model, tiny_tokenizer, records)  # type: ignore[arg-type]
    (pair,) = encode_pairs(tiny_tokenizer, records, max_length=4096)  # type: ignore[arg-type]
    assert isinstance(pair, PairExample)
    lm = _lm(tiny_model_dir)
    with torch.no_grad():
        chosen = _full_logps(lm, pair.prompt_ids, pair.chosen_ids)
        rejected = _full_logps(lm, pair.prompt_ids, pair.rejected_ids)
    assert ranked["pairs"] == 1
    assert ranked["preference_margin"] == pytest.approx(float(chosen - rejected), abs=1e-3)
    assert ranked["preference_accuracy"] == float(chosen > rejected)
    mistake = records[0].record["meta"]["mistake"]  # type: ignore[union-attr]
    assert ranked["by_mistake"][mistake]["pairs"] == 1
    assert model.config._attn_implementation == "sdpa"  # switched back for generation
    ids = tiny_tokenizer("hi", return_tensors="pt")["input_ids"]
    assert (
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False).shape[1]
        == ids.shape[1] + 2
    )


def test_dpo_with_checkpointing_and_its_export_print_no_deprecation_warning(
    tiny_model_dir: Path, pair_dir: Path, tmp_path: Path
) -> None:
    import warnings

    from training import export

    cfg = _dpo_config(
        tiny_model_dir, pair_dir, tmp_path / "run", max_steps=1, lora__enabled=True,
        model__gradient_checkpointing=True,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train.main(cfg)
        export.main(result.checkpoint_path, str(tmp_path / "export"))
    assert [str(w.message) for w in caught if "deprecated" in str(w.message)] == []
