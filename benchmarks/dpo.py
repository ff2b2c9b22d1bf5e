"""Benchmark: this trainer's DPO vs TRL `DPOTrainer`, with the gain split by ablation.

    python -m benchmarks.dpo [--quick] [--pairs-per-step 4] [--steps 2] [--rounds 1]

One run, each measurement in a fresh child process (peak RSS is its own):

- **Data**: the `schema-heavy` mix of `benchmarks.train_data` (tool schemas in the system turn,
  short answers), turned into preference pairs by `training.synthetic_preference` (one labelled
  mistake per pair) and tokenised by `training.prepare --task preference`. Every variant reads
  the same pairs in the same order, `--pairs-per-step` pairs per optimizer step (one
  micro-batch): our packs hold exactly that many pairs, TRL's batch size is that many pairs.
- **Model**: shape R of `benchmarks.train` (h1024 x 2 layers, tied embeddings) at Qwen3's real
  vocabulary (151,936), LoRA r=16 on every linear layer of both, the same beta, gradient
  checkpointing on for both (TRL's default), fp32 on the CPU. TRL's reference is its documented
  LoRA setup: `ref_model=None`, `peft_config`, the adapters disabled for a second forward.
- **Check before timing**: with the same adapter weights (LoRA B drawn at random, so policy and
  reference differ) both compute the DPO loss and every pair's log-probs on the first batch;
  the run stops if they differ by more than `LOSS_TOLERANCE` / `LOGP_TOLERANCE`.
- **Variants**: ours as shipped; ours without prompt sharing (prompt+chosen and prompt+rejected
  as separate segments); ours with a frozen copy of the model as reference (what a trainer
  without adapters-off or precomputed log-probs keeps); TRL. Memory: each child restarts its
  peak-RSS count once its model and trainer are built (so loading never sets the peak), and
  reports the peak above its floor: the same trainer with every weight read once (they load
  memory-mapped), gradients written and one AdamW step, but no forward.

Prints markdown tables; timings stay out of tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import flops
from benchmarks import train_data as data
from benchmarks.common import not_a_run, train_with_step_clock
from benchmarks.train import SHAPES, _fill_and_step, measure
from training.tiny import QWEN3_VOCAB_SIZE

BETA = 0.1
LORA: dict[str, Any] = {"r": 16, "alpha": 32, "dropout": 0.0}
LOSS_TOLERANCE = 1e-4  # absolute, on a loss near log 2
LOGP_TOLERANCE = 2e-3  # absolute, on a completion's summed log-prob (tens of tokens, fp32)
VARIANTS = {  # a ladder from TRL to ours, one change a rung, then the reference ablation
    "trl": "TRL DPOTrainer (LoRA, adapters-off reference, padded 2B rows)",
    "ours_unshared_full_head": "ours, TRL's layout (prompt twice), logits at every position",
    "ours_unshared": "+ logits only at completion tokens",
    "ours": "+ prompt computed once (ours as shipped)",
    "ours_copy_ref": "ours with a frozen model copy as the reference instead of adapters off",
}
FLOORS = {"floor_ours": "ours", "floor_trl": "trl"}


# -- data ---------------------------------------------------------------------------------------


def build(workdir: Path, *, n: int, vocab: int, shape: str) -> dict[str, Any]:
    """Model, pairs (prepare's JSONL rows) and our fixed-count packs under `workdir`."""
    from training import prepare
    from training.synthetic_preference import preference_pairs
    from training.tiny import build_tokenizer, save_tiny

    tok = build_tokenizer()
    save_tiny(workdir / "model", replace(SHAPES[shape].tiny, vocab_size=vocab))
    mix = data.MIXES["schema-heavy"]
    convs = data.conversations(mix, n, tok, max_length=4096)
    raw = workdir / "pairs.jsonl"
    pairs = preference_pairs(convs, seed=0)
    raw.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    stats = prepare.main(
        prepare.PrepareArgs(
            input=raw,
            output=workdir / "prepared",
            tokenizer=str(workdir / "model"),
            task="preference",
            max_length=8192,
            pack=False,
            quiet=True,
        ),
        tokenizer=tok,
    )
    return {"mix": mix.describe(), **{k: stats[k] for k in ("train_pairs", "quarantined")}}


def read_pairs(workdir: Path) -> list[Any]:
    from training.data.preference import PairExample

    rows = (workdir / "prepared" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return [PairExample.from_json(json.loads(r)) for r in rows]


def write_fixed_packs(workdir: Path, per_step: int) -> tuple[Path, int]:
    """Packs of exactly `per_step` pairs each, in file order (the equal budget: pairs per step)."""
    import numpy as np

    from training.data.packing import Pack, write_packs
    from training.data.preference import PREFERENCE, pair_segments

    pairs = read_pairs(workdir)
    packs = []
    for start in range(0, len(pairs) - per_step + 1, per_step):
        parts = [pair_segments(p) for p in pairs[start : start + per_step]]
        packs.append(
            Pack(
                np.concatenate([i for i, _, _ in parts]),
                np.concatenate([lab for _, lab, _ in parts]),
                np.asarray([n for *_, lens in parts for n in lens], dtype=np.int32),
            )
        )
    length = max(p.num_tokens for p in packs)
    out = workdir / f"packs-{per_step}"
    write_packs(out, packs, pack_length=length, metadata={"kind": PREFERENCE})
    return out, length


def trl_pairs(workdir: Path) -> list[Any]:
    return [
        {"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids}
        for p in read_pairs(workdir)
    ]


def work_per_step(workdir: Path, a: argparse.Namespace, vocab: int) -> dict[str, dict[str, float]]:
    """Tokens, attention pairs and LM-head rows each trainer computes in one policy pass per step,
    and their FLOPs by `benchmarks.flops` (the reference pass repeats the forward third)."""
    t = SHAPES[a.shape].tiny
    body = flops.Body(
        t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
        t.head_dim, t.intermediate_size, vocab,
    )  # fmt: skip
    pairs = read_pairs(workdir)[: a.pairs_per_step * (a.warmup + a.steps)]
    steps = [pairs[i : i + a.pairs_per_step] for i in range(0, len(pairs), a.pairs_per_step)]
    out: dict[str, dict[str, float]] = {}
    for name in ("ours", "ours_unshared", "ours_unshared_full_head", "trl"):
        tokens = pairs_sq = rows = 0.0
        for step in steps:
            for p in step:
                n_p, n_c, n_r = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
                if name == "ours":
                    tokens += n_p + n_c + n_r
                    pairs_sq += flops.causal_pairs([n_p + n_c]) + n_r * (2 * n_p + n_r + 1)
                elif name.startswith("ours_unshared"):
                    tokens += 2 * n_p + n_c + n_r
                    pairs_sq += flops.causal_pairs([n_p + n_c, n_p + n_r])
                if name == "ours_unshared_full_head":
                    rows += 2 * n_p + n_c + n_r
                elif name != "trl":
                    rows += n_c + n_r
            if name == "trl":  # 2B rows padded to the longest; on CPU the head sees every one
                longest = max(len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids))
                              for p in step)  # fmt: skip
                tokens += 2 * len(step) * longest
                pairs_sq += 2 * len(step) * flops.causal_pairs([longest])
                rows += 2 * len(step) * longest
        k = len(steps)
        out[name] = {
            "tokens": tokens / k,
            "head_rows": rows / k,
            "gflop": flops.model_flops(
                body, sum_len=round(tokens), sum_len_sq=round(pairs_sq), loss_tokens=round(rows)
            ) / k / 1e9,
        }  # fmt: skip
    return out


# -- children ----------------------------------------------------------------------------------


def _reset_peak() -> None:
    """Restart the peak-RSS count at the current RSS (Linux `clear_refs` 5), once the model and
    the trainer are built: the load's transient then never masks what training itself takes."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def _floor(model: Any, params: list[Any], optimizer: Any) -> dict[str, Any]:
    """Every weight read once (safetensors loads memory-mapped: a frozen weight's pages are
    resident only once touched, and every forward touches them all), gradients written and one
    optimizer step: what any step keeps, without a forward."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.sum()
    _fill_and_step(params, optimizer)
    return {"peak_mb": _peak_mb()}


def _peak_mb() -> float:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024


def _lora_config() -> Any:
    from peft import LoraConfig

    from training.config import ALL_LINEAR

    return LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        target_modules=list(ALL_LINEAR), task_type="CAUSAL_LM",
    )  # fmt: skip


def _ours_config(a: argparse.Namespace, packs: Path, length: int, **dpo: Any) -> Any:
    from training.config import validate_config

    return validate_config(
        {
            "output_dir": str(Path(tempfile.mkdtemp(dir=a.workdir))),
            "max_steps": a.warmup + a.steps, "progress_bar": False, "objective": "dpo",
            "dpo": {"beta": BETA, **dpo},
            "model": {"name_or_path": str(Path(a.workdir) / "model"),
                      "gradient_checkpointing": True},
            "lora": {"enabled": True, **LORA},
            "data": {"path": str(packs), "pack_length": length},
            "optim": {"lr": 1e-4, "grad_accum": 1},
            "checkpoint": {"resume": "never", "enabled": False},
            "mlflow": {"tracking_uri": "", "log_system_metrics": False},
        }
    )  # fmt: skip


def _in_file_order() -> None:
    import numpy as np

    from training.data import stream

    def in_file_order(self: Any, epoch: int) -> Any:  # the same pairs, in order, for everyone
        return np.arange(self.per_rank * self.world_size)[self.rank :: self.world_size]

    stream.PackLoader._epoch_order = in_file_order  # type: ignore[method-assign]


def _full_head() -> None:
    """The ablation rung: log-probs projected at every position of the row, then the loss rows
    picked (as TRL's CPU head does), so the head costs what full logits cost."""
    import torch

    from training.model.loss import linear_log_probs
    from training.model.preference import PreferenceLM

    def every_position(self: Any, batch: Any) -> torch.Tensor:
        hidden = self.hidden_states(batch.lm)
        targets = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
        targets[batch.lm.loss_positions] = batch.lm.targets  # unshared: positions are unique
        rows = linear_log_probs(
            hidden, self.base().lm_head.weight, targets, chunk_rows=self.chunk_rows
        ).index_select(0, batch.lm.loss_positions)
        sums = rows.new_zeros(2 * batch.num_pairs).index_add(0, batch.side, rows)
        return sums.view(batch.num_pairs, 2)

    PreferenceLM.log_probs = every_position  # type: ignore[method-assign]


def _copy_reference(recipe: Any, model_dir: Path) -> None:
    """The ablation: reference log-probs from a frozen copy of the model (what a trainer without
    adapters-off or precomputed log-probs keeps in memory) instead of the adapters switched off."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.model import packed_attention
    from training.model.preference import PreferenceLM

    packed_attention.register()
    module = recipe.module
    copy = PreferenceLM(
        AutoModelForCausalLM.from_pretrained(
            model_dir, attn_implementation=packed_attention.PACKED_SDPA
        ).eval(),
        chunk_rows=module.chunk_rows, compute_dtype=None, beta=module.beta,
    )  # fmt: skip
    copy.requires_grad_(False)
    module.reference_log_probs = torch.no_grad()(copy.log_probs)


def _run_ours(a: argparse.Namespace, *, floor: bool) -> dict[str, Any]:
    from training import train

    _in_file_order()
    packs = Path(a.workdir) / f"packs-{a.pairs_per_step}"
    length = json.loads((packs / "manifest.json").read_text())["pack_length"]
    share = {"share_prompt": not a.child.startswith("ours_unshared")}
    if a.child == "ours_unshared_full_head":
        _full_head()
    recipe = train.Recipe(_ours_config(a, packs, length, **share))
    recipe.setup()
    if floor:
        _reset_peak()
        result = _floor(recipe.module, recipe.params, recipe.optimizer)
        recipe.cleanup("FINISHED")
        return result
    if a.child == "ours_copy_ref":
        _copy_reference(recipe, Path(a.workdir) / "model")
    _reset_peak()
    try:
        recipe.train()
    finally:
        recipe.cleanup("FINISHED")
    rows = [json.loads(x) for x in (Path(recipe.cfg.output_dir) / "metrics.jsonl").open()]
    timed = rows[a.warmup :]
    return {
        "seconds": sum(r["step_time_s"] for r in timed),
        "pairs": sum(round(r["pairs_per_s"] * r["step_time_s"]) for r in timed),
        "loss_tokens": sum(round(r["loss_tokens_per_s"] * r["step_time_s"]) for r in timed),
        "peak_mb": _peak_mb(),
    }


def _trl(a: argparse.Namespace, pairs: list[Any], steps: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.dpo_trl import trl_trainer

    model_dir = Path(a.workdir) / "model"
    return trl_trainer(
        AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        AutoTokenizer.from_pretrained(model_dir),
        pairs, peft_config=_lora_config(), beta=BETA, label_smoothing=0.0,
        pairs_per_step=a.pairs_per_step, steps=steps, gradient_checkpointing=True, lr=1e-4,
        output_dir=str(Path(tempfile.mkdtemp(dir=a.workdir))),
    )  # fmt: skip


def _run_trl(a: argparse.Namespace, *, floor: bool) -> dict[str, Any]:
    pairs = trl_pairs(Path(a.workdir))
    trainer = _trl(a, pairs, a.warmup + a.steps)
    _reset_peak()
    if floor:
        trainer.create_optimizer()
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        return _floor(trainer.model, params, trainer.optimizer)
    stamps = train_with_step_clock(trainer)
    timed = pairs[a.warmup * a.pairs_per_step : (a.warmup + a.steps) * a.pairs_per_step]
    return {
        "seconds": stamps[-1] - stamps[a.warmup],
        "pairs": len(timed),
        "loss_tokens": sum(len(p["chosen_ids"]) + len(p["rejected_ids"]) for p in timed),
        "peak_mb": _peak_mb(),
    }


def _check(a: argparse.Namespace) -> dict[str, Any]:
    """Both trainers' DPO loss and log-probs on the first batch, with the same adapter weights."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from benchmarks.dpo_trl import trl_first_batch_loss
    from training.data.packing import PackedDataset
    from training.model import packed_attention
    from training.model.preference import PreferenceLM, make_pair_batch

    pairs = trl_pairs(Path(a.workdir))
    trainer = _trl(a, pairs[: a.pairs_per_step], 1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:  # nonzero adapters: the policy is no longer the reference
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    theirs = trl_first_batch_loss(trainer, pairs)
    packed_attention.register()
    base = AutoModelForCausalLM.from_pretrained(
        Path(a.workdir) / "model", attn_implementation=packed_attention.PACKED_SDPA
    )
    peft = get_peft_model(base, _lora_config())
    peft.load_state_dict(trainer.model.state_dict(), strict=True)
    module = PreferenceLM(peft, chunk_rows=2048, compute_dtype=None, beta=BETA).eval()
    pack = PackedDataset(Path(a.workdir) / f"packs-{a.pairs_per_step}")[0]
    batch = make_pair_batch(pack.input_ids, pack.labels, pack.seq_lens, torch.device("cpu"))
    with torch.no_grad():
        loss, _ = module(batch)
        policy, reference = module.log_probs(batch), module.reference_log_probs(batch)
    trl_policy = torch.tensor([theirs["chosen_logps"], theirs["rejected_logps"]]).T
    trl_ref = torch.tensor([theirs["ref_chosen_logps"], theirs["ref_rejected_logps"]]).T
    return {
        "ours_loss": float(loss) / batch.num_pairs,
        "trl_loss": theirs["loss"],
        "loss_diff": abs(float(loss) / batch.num_pairs - theirs["loss"]),
        "policy_logp_diff": float((policy - trl_policy).abs().max()),
        "reference_logp_diff": float((reference - trl_ref).abs().max()),
        "pairs": batch.num_pairs,
    }


def child(a: argparse.Namespace) -> None:
    if a.child == "check":
        result = _check(a)
    else:
        variant = FLOORS.get(a.child, a.child)
        run = _run_trl if variant == "trl" else _run_ours
        result = run(a, floor=a.child in FLOORS)
    print("RESULT " + json.dumps({"peak_mb": _peak_mb(), **result}), flush=True)


# -- parent ------------------------------------------------------------------------------------


def _command(a: argparse.Namespace, variant: str) -> list[str]:
    return [
        sys.executable, "-m", "benchmarks.dpo", "--child", variant, "--workdir", str(a.workdir),
        "--steps", str(a.steps), "--warmup", str(a.warmup), "--shape", a.shape,
        "--pairs-per-step", str(a.pairs_per_step),
    ]  # fmt: skip


def collect(a: argparse.Namespace) -> dict[str, Any]:
    saved: dict[str, Any] = {
        "args": {k: v for k, v in vars(a).items() if k not in ("workdir", "save", "report")}
    }
    with tempfile.TemporaryDirectory() as tmp:
        a.workdir = Path(tmp)
        saved["data"] = build(a.workdir, n=a.pairs, vocab=a.vocab, shape=a.shape)
        _, saved["pack_length"] = write_fixed_packs(a.workdir, a.pairs_per_step)
        saved["work"] = work_per_step(a.workdir, a, a.vocab)
        check = measure(_command(a, "check"))
        saved["check"] = check
        print(f"  first-batch check: {json.dumps(check)}", flush=True)
        if check["loss_diff"] > LOSS_TOLERANCE or check["policy_logp_diff"] > LOGP_TOLERANCE:
            raise SystemExit("ours and TRL disagree on the first batch; not timing anything")
        runs: dict[str, list[dict[str, Any]]] = {}
        order = [*FLOORS, *VARIANTS]
        for r in range(a.rounds):
            for variant in order if r % 2 == 0 else order[::-1]:  # alternate against drift
                runs.setdefault(variant, []).append(measure(_command(a, variant)))
                print(f"  {variant}: {json.dumps(runs[variant][-1])}", flush=True)
        saved["runs"] = runs
    return saved


def _median(runs: list[dict[str, Any]], fn: Any) -> float:
    return statistics.median(fn(r) for r in runs)


def report(saved: dict[str, Any]) -> str:
    runs, work, check = saved["runs"], saved["work"], saved["check"]
    floor = {v: _median(runs[f], lambda r: r["peak_mb"]) for f, v in FLOORS.items()}

    def pairs_s(v: str) -> float:
        return _median(runs[v], lambda r: r["pairs"] / r["seconds"])

    def tokens_s(v: str) -> float:
        return _median(runs[v], lambda r: r["loss_tokens"] / r["seconds"])

    def above(v: str) -> float:
        own = floor["trl" if v == "trl" else "ours"]
        return _median(runs[v], lambda r: r["peak_mb"] - own)

    a = saved["args"]
    lines = [
        f"DPO, shape {a['shape']} at vocabulary {a['vocab']:,}, {a['pairs_per_step']} pairs per "
        f"step, {a['steps']} timed steps after {a['warmup']}, {a['rounds']} round(s); "
        f"{saved['data']['mix']}; pairs of {saved['data']['train_pairs']}.",
        f"First batch ({check['pairs']} pairs, LoRA B random): loss ours {check['ours_loss']:.6f}"
        f", TRL {check['trl_loss']:.6f} (|diff| {check['loss_diff']:.1e} <= {LOSS_TOLERANCE}); "
        f"max |log-prob diff| policy {check['policy_logp_diff']:.1e}, reference "
        f"{check['reference_logp_diff']:.1e} (<= {LOGP_TOLERANCE}).",
        "",
        "| variant | pairs/s | loss tokens/s | peak MB above floor | speed vs TRL | memory vs TRL"
        " |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v, label in VARIANTS.items():
        lines.append(
            f"| {label} | {pairs_s(v):.3f} | {tokens_s(v):.1f} | {above(v):.0f} | "
            f"{pairs_s(v) / pairs_s('trl'):.2f}x | {above(v) / above('trl'):.2f}x |"
        )
    speed = pairs_s("ours") / pairs_s("trl")
    rungs = list(VARIANTS)[:4]
    shares = []
    for before, after in itertools.pairwise(rungs):
        gain = pairs_s(after) / pairs_s(before)
        shares.append(f"{VARIANTS[after].lstrip('+ ')} {gain:.2f}x "
                      f"({math.log(gain) / math.log(speed):.0%})")  # fmt: skip
    copy_gain = pairs_s("ours") / pairs_s("ours_copy_ref")
    lines += [
        "",
        f"Shares of the {speed:.2f}x over TRL (log scale, rung by rung): "
        + "; ".join(shares)
        + ". The first rung is not split further: it holds TRL's padding (computed tokens "
        f"below), the extra outputs TRL's head computes for its logs, and the two loops. No-copy "
        f"reference: {copy_gain:.2f}x the speed of a frozen copy (TRL's LoRA path has no copy "
        "either).",
        f"Memory: the frozen copy adds {above('ours_copy_ref') - above('ours'):.0f} MB; prompt "
        f"sharing saves {above('ours_unshared') - above('ours'):.0f} MB; logits only at "
        f"completion tokens save {above('ours_unshared_full_head') - above('ours_unshared'):.0f}"
        " MB.",
        "",
        "| per step, policy pass | tokens | LM-head rows | GFLOP (benchmarks.flops) |",
        "|---|---:|---:|---:|",
    ]
    for v in ("trl", "ours_unshared_full_head", "ours_unshared", "ours"):
        w = work[v]
        lines.append(
            f"| {VARIANTS[v]} | {w['tokens']:.0f} | {w['head_rows']:.0f} | {w['gflop']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 step, 2 pairs a step: a sanity run")
    p.add_argument("--pairs-per-step", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per run")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    p.add_argument("--rounds", type=int, default=1, help="runs per variant (median)")
    p.add_argument("--pairs", type=int, default=64, help="pairs generated")
    p.add_argument("--vocab", type=int, default=QWEN3_VOCAB_SIZE, help="model vocabulary")
    p.add_argument("--shape", default="R", choices=sorted(SHAPES))
    p.add_argument("--save", type=Path, default=Path("runs/bench-dpo.json"))
    p.add_argument("--report", type=Path, help="print the tables of a saved run and stop")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not_a_run(a, child, report):
        return 0
    if a.quick:
        a.steps, a.warmup, a.pairs_per_step, a.pairs = 1, 1, 2, 16
    saved = collect(a)
    a.save.parent.mkdir(parents=True, exist_ok=True)
    a.save.write_text(json.dumps(saved, indent=1, default=str), encoding="utf-8")
    print()
    print(report(saved))
    print(f"\n(results saved to {a.save}; `--report {a.save}` prints these tables again)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
