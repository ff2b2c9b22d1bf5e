"""Benchmark: this trainer vs TRL `SFTTrainer`, with the speed-up split into its causes.

    python -m benchmarks.train [--quick] [--shapes R,A,B] [--mixes ...] [--steps 2] [--rounds 1]

What it runs, in one process tree, each measurement in a fresh child (peak RSS is its own):

- **Data** from `benchmarks.train_data`: mixes with a set length, spread, loss-bearing share and
  tools per conversation, tokenised and masked by `training.prepare` for every variant. TRL gets
  prepare's token ids and masks as a pre-tokenised dataset, and the benchmark checks that the
  labels TRL's collator builds equal prepare's and that both count the same loss tokens.
- **Budgets**: every variant processes the same real tokens per optimizer step (within 1%): our
  packs in file order, and for padded variants a fixed number of conversations per step chosen
  to match. TRL reads them in order (`train_sampling_strategy="sequential"`); our loader's
  shuffle is switched off the same way. TRL padded is tried at several micro-batch sizes.
- **Shapes**: R is the headline, built so its attention-to-linear FLOP ratio at the data's
  lengths is within 2x of Qwen3-4B's, and its LM head-to-body ratio close to it; A is a narrow,
  deep body where attention is a quarter of the linear work; B is A with Qwen3's vocabulary.
  Embeddings are tied, as in Qwen3-4B.
- **The ladder** from TRL padded to ours, one change a rung, each on the same batches:
  our trainer on TRL's padded batches with logits at every position; logits only at
  loss-bearing rows; packs instead of padding (one causal attention over the whole pack); and
  attention within each conversation (ours as shipped).
- **Floors**: each variant's own start-up (same imports, same data handling, model, gradients
  and one AdamW step, no forward); memory is reported above that floor.
- **Utilisation**: model FLOP/s (`benchmarks.flops`) over this machine's fp32 matmul peak,
  measured in the same run at the body's own GEMM sizes.

Timings stay out of tests; this prints markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from benchmarks import flops
from benchmarks import train_data as data
from benchmarks.common import not_a_run, table_head, train_with_step_clock
from training.tiny import QWEN3_VOCAB_SIZE, TinyShape

MICRO_TOKENS = 2048  # our pack length and TRL's packing max_length


@dataclass(frozen=True)
class Shape:
    label: str
    tiny: TinyShape


_NARROW = TinyShape(
    hidden_size=256, num_hidden_layers=8, intermediate_size=768, num_attention_heads=4,
    num_key_value_heads=2, head_dim=64, tie_word_embeddings=True,
)  # fmt: skip
SHAPES = {
    "R": Shape(
        "R (h1024 x 2, 2k vocab)",
        TinyShape(
            hidden_size=1024,
            num_hidden_layers=2,
            intermediate_size=3840,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=128,
            tie_word_embeddings=True,
        ),
    ),
    "A": Shape("A (h256 x 8, 2k vocab)", _NARROW),
    "B": Shape("B (h256 x 8, 151,936 vocab)", replace(_NARROW, vocab_size=QWEN3_VOCAB_SIZE)),
}
# Rungs of the ladder, in order; each changes one thing from the one before.
LADDER = {
    "trl_padded": "TRL SFTTrainer, padded micro-batches (its fastest size here)",
    "ours_padded_full_head": "our trainer, the same padded batches, logits at every position",
    "ours_padded": "+ logits only at loss-bearing rows",
    "ours_no_segments": "+ packs instead of padding (one causal attention per pack)",
    "ours": "+ attention within each conversation (as shipped)",
}
OURS = {
    "ours": {},
    "ours_no_segments": {"segments": False},
    "ours_padded": {"padded": True},
    "ours_padded_full_head": {"padded": True, "full_head": True},
}
TRL = ("trl_padded", "trl_packed")
FLOORS = {"floor_ours": "ours", "floor_trl_padded": "trl_padded", "floor_trl_packed": "trl_packed"}


def body(shape: Shape, vocab: int) -> flops.Body:
    t = shape.tiny
    return flops.Body(
        t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
        t.head_dim, t.intermediate_size, t.vocab_size or vocab,
    )  # fmt: skip


# -- children: one variant, one shape, one mix, one process ------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fill_and_step(params: list[Any], optimizer: Any) -> None:
    """Gradients written (so resident) and one optimizer step: the state every step keeps."""
    import torch

    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    optimizer.step()


def _run_ours(a: argparse.Namespace, *, floor: bool) -> dict[str, Any]:
    import numpy as np
    import torch

    from training import train
    from training.config import validate_config
    from training.data import stream
    from training.model import modeling, packed_attention

    opts = OURS[a.child] if not floor else {}
    mixdir = Path(a.workdir) / a.mix
    packs = mixdir / (f"padded-b{a.batch}" if opts.get("padded") else "packs")
    pack_length = json.loads((packs / "manifest.json").read_text())["pack_length"]

    def in_file_order(self: Any, epoch: int) -> Any:  # the same batches for every variant
        return np.arange(self.per_rank * self.world_size)[self.rank :: self.world_size]

    stream.PackLoader._epoch_order = in_file_order  # type: ignore[method-assign]
    if opts.get("segments") is False:
        whole = packed_attention.packed_kwargs

        def one_segment(seq_lens: Any, device: Any, prefixes: Any = None) -> dict[str, Any]:
            return whole(np.asarray([int(seq_lens.sum())]), device)

        packed_attention.packed_kwargs = one_segment
    if opts.get("full_head"):

        def full_head(self: Any, batch: Any) -> torch.Tensor:
            hidden = self.hidden_states(batch)
            logits = hidden @ self.base().lm_head.weight.T  # [T, vocab]: every position
            full = torch.full((hidden.shape[0],), -100, dtype=torch.long)
            full[batch.loss_positions] = batch.targets
            return torch.nn.functional.cross_entropy(
                logits.float(), full, ignore_index=-100, reduction="sum"
            )

        modeling.PackedCausalLM.forward = full_head  # type: ignore[method-assign]
    out = Path(tempfile.mkdtemp(dir=a.workdir))
    accum = a.accum if opts.get("padded") else a.budget // MICRO_TOKENS
    cfg = validate_config(
        {
            "output_dir": str(out), "max_steps": a.warmup + a.steps, "progress_bar": False,
            "model": {
                "name_or_path": str(Path(a.workdir) / f"model-{a.shape}"),
                "gradient_checkpointing": a.gradient_checkpointing == "on",
            },
            "data": {"path": str(packs), "pack_length": pack_length},
            "optim": {"lr": 1e-4, "grad_accum": accum},
            "checkpoint": {"resume": "never", "enabled": False},  # TRL saves nothing either
            "mlflow": {"tracking_uri": "", "log_system_metrics": False},
        },
    )  # fmt: skip
    recipe = train.Recipe(cfg)
    recipe.setup()
    if floor:
        _fill_and_step(recipe.params, recipe.optimizer)
        recipe.cleanup("FINISHED")
        return {}
    pad = recipe.tokenizer.pad_token_id
    seen: list[tuple[int, int, list[int]]] = []  # computed tokens, real tokens, real lengths
    read = recipe.loader.next

    def counting() -> Any:
        rows = read()
        ends = np.cumsum(rows.seq_lens)
        real = [int((seg != pad).sum()) for seg in np.split(rows.input_ids, ends[:-1])]
        seen.append((int(rows.input_ids.shape[0]), sum(real), real))
        return rows

    recipe.loader.next = counting  # type: ignore[method-assign]
    try:
        recipe.train()
    finally:
        recipe.cleanup("FINISHED")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    measured = rows[a.warmup :]
    mine = seen[a.warmup * accum :]
    return {
        "seconds": sum(r["step_time_s"] for r in measured),
        "loss_tokens": round(sum(r["loss_tokens_per_s"] * r["step_time_s"] for r in measured)),
        "computed_tokens": sum(c for c, _, _ in mine),
        "real_tokens": sum(r for _, r, _ in mine),
        "sum_len_sq": sum(flops.causal_pairs(lens) for _, _, lens in mine),
        "budget_tokens": None if opts.get("padded") else len(mine) * pack_length,
    }


def _trl_dataset(mixdir: Path, *, packed: bool) -> Any:
    import datasets

    ex = data.read_examples(mixdir / "examples")
    order = (
        list(range(len(ex.input_ids)))
        if packed
        else json.loads((mixdir / "padded-order.json").read_text())
    )
    return datasets.Dataset.from_dict(
        {
            "input_ids": [ex.input_ids[i] for i in order],
            "assistant_masks": [[int(t != -100) for t in ex.labels[i]] for i in order],
        }
    ), [ex.labels[i] for i in order]


def _run_trl(a: argparse.Namespace, *, floor: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    variant = FLOORS.get(a.child, a.child)
    packed = variant == "trl_packed"
    mixdir = Path(a.workdir) / a.mix
    model_dir = Path(a.workdir) / f"model-{a.shape}"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ds, labels = _trl_dataset(mixdir, packed=packed)
    batch, accum = (1, a.budget // MICRO_TOKENS) if packed else (a.batch, a.accum)
    args = SFTConfig(
        output_dir=str(Path(a.workdir) / f"trl-{os.getpid()}"),
        max_steps=a.warmup + a.steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum, learning_rate=1e-4, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
        max_length=MICRO_TOKENS, packing=packed, bf16=False, seed=0, disable_tqdm=True,
        gradient_checkpointing=a.gradient_checkpointing == "on",
        optim="adamw_torch_fused",  # the optimizer our trainer uses on CPU
        train_sampling_strategy="sequential",  # the planned batches, in order
    )  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    collate = trainer.data_collator
    if floor:
        result: dict[str, Any] = {}
        if not packed:  # prepare's masks are what TRL trains on, and both count the same loss
            same, loss, ours = True, 0, 0
            for i in range(len(ds)):
                got = collate([cast(Any, trainer.train_dataset)[i]])["labels"][0].tolist()
                same &= got == labels[i]
                loss += sum(t != -100 for t in got[1:])  # the model shifts by one
                ours += sum(t != -100 for t in labels[i][1:])  # our trainer's shift_targets
            result = {
                "masks_equal": same, "loss_tokens_trl": loss, "loss_tokens_ours": ours,
                "conversations": len(ds),
            }  # fmt: skip
        trainer.create_optimizer()
        _fill_and_step([p for p in model.parameters() if p.requires_grad], trainer.optimizer)
        return result
    seen: list[tuple[int, int, int, list[int]]] = []  # loss, computed, real, lengths

    def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
        b = collate(features)
        lab = b["labels"]
        if "attention_mask" in b:
            lens = [int(x) for x in b["attention_mask"].sum(dim=1)]
        else:  # padding-free packs: a sequence starts where position_ids restart
            starts = [*(b["position_ids"][0] == 0).nonzero().flatten().tolist(), lab.shape[1]]
            lens = [y - x for x, y in itertools.pairwise(starts)]
        seen.append((int((lab[..., 1:] != -100).sum()), int(lab.numel()), sum(lens), lens))
        return dict(b)

    trainer.data_collator = counting
    stamps = train_with_step_clock(trainer)
    mine = seen[a.warmup * accum : (a.warmup + a.steps) * accum]
    return {
        "seconds": stamps[-1] - stamps[a.warmup],
        "loss_tokens": sum(m[0] for m in mine),
        "computed_tokens": sum(m[1] for m in mine),
        "real_tokens": sum(m[2] for m in mine),
        "sum_len_sq": sum(flops.causal_pairs(m[3]) for m in mine),
        "budget_tokens": len(mine) * MICRO_TOKENS if packed else None,
    }


def child(a: argparse.Namespace) -> None:
    floor = a.child in FLOORS
    variant = FLOORS.get(a.child, a.child)
    r = _run_ours(a, floor=floor) if variant in OURS else _run_trl(a, floor=floor)
    r["peak_rss_mb"] = _rss_mb()
    print("RESULT " + json.dumps(r), flush=True)


# -- parent: build once, run every case, save the results, print the tables ---------------------
def build(workdir: Path, mixes: list[str], n: int) -> dict[str, dict[str, Any]]:
    """Models for every shape; for every mix, conversations and prepare's packs and examples."""
    from training.tiny import build_model, build_tokenizer

    tok = build_tokenizer()
    for name, shape in SHAPES.items():
        tok.save_pretrained(workdir / f"model-{name}")
        build_model(tok, shape.tiny).save_pretrained(workdir / f"model-{name}")
    out = {}
    for name in mixes:
        mixdir = workdir / name
        mixdir.mkdir()
        convs = data.conversations(data.MIXES[name], n, tok, max_length=MICRO_TOKENS)
        with (mixdir / "conversations.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(c.to_record()) + "\n" for c in convs)
        data.prepare(
            mixdir / "conversations.jsonl", workdir / "model-R", mixdir, max_length=MICRO_TOKENS
        )
        ex = data.read_examples(mixdir / "examples")
        out[name] = {**ex.stats(), "lengths": [len(x) for x in ex.input_ids]}
    return out


def plan(workdir: Path, mix: str, a: argparse.Namespace, pad_id: int) -> tuple[list[int], int]:
    """Write `mix`'s padded plan and padded packs; return TRL's micro-batch sizes to try and the
    conversations per step."""
    mixdir = workdir / mix
    ex = data.read_examples(mixdir / "examples")
    targets = data.our_step_tokens(mixdir / "packs", a.budget // MICRO_TOKENS, a.warmup + a.steps)
    per_step = max(1, round(statistics.mean(targets) / statistics.mean(map(len, ex.input_ids))))
    order = data.padded_plan(ex, targets, per_step)
    (mixdir / "padded-order.json").write_text(json.dumps(order))
    sizes = sorted({b for b in (1, 2, per_step) if per_step % b == 0 and b <= a.max_trl_batch})
    for b in sizes or [1]:
        data.write_padded_packs(ex, order, b, pad_id, mixdir / f"padded-b{b}")
    return sizes or [1], per_step


@dataclass
class Case:
    """One shape on one mix: the runs of every variant (key `trl_padded@B` per TRL size)."""

    shape: str
    mix: str
    ladder: bool
    batches: list[int]
    per_step: int
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def med(self, key: str, fn: Any) -> float:
        return statistics.median(fn(r) for r in self.runs[key])

    def tps(self, key: str) -> float:
        return self.med(key, lambda r: r["loss_tokens"] / r["seconds"])

    def trl_key(self) -> str:
        """TRL padded at its fastest micro-batch size in this case."""
        return max((f"trl_padded@{b}" for b in self.batches), key=self.tps)

    def above_floor(self, key: str) -> float:
        variant = key.split("@", 1)[0]
        floor = "floor_ours" if variant in OURS else f"floor_{variant}"
        peak = max(r["peak_rss_mb"] for r in self.runs[key])
        return peak - self.med(floor, lambda r: r["peak_rss_mb"])

    def command(self, workdir: Path, variant: str, batch: int, a: argparse.Namespace) -> list[str]:
        return [
            sys.executable, "-m", "benchmarks.train", "--child", variant, "--shape", self.shape,
            "--mix", self.mix, "--workdir", str(workdir), "--steps", str(a.steps),
            "--warmup", str(a.warmup), "--budget", str(a.budget), "--batch", str(batch),
            "--accum", str(max(1, self.per_step // batch)),
            "--gradient-checkpointing", a.gradient_checkpointing,
        ]  # fmt: skip


def measure(cmd: list[str]) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"{' '.join(cmd[3:11])} failed:\n{proc.stderr[-3000:]}")


def run_case(workdir: Path, case: Case, a: argparse.Namespace) -> None:
    """Floors, TRL padded at each size, then the rest at TRL's fastest size; order alternates."""

    def go(key: str, variant: str, batch: int) -> None:
        t0 = time.perf_counter()
        r = measure(case.command(workdir, variant, batch, a))
        case.runs.setdefault(key, []).append(r)
        rate = f"{r['loss_tokens'] / r['seconds']:,.0f} loss tok/s, " if "seconds" in r else ""
        print(
            f"  {case.shape}/{case.mix} {key}: {rate}rss {r['peak_rss_mb']:,.0f} MiB"
            f" ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )

    floors = ["floor_ours", "floor_trl_padded"] + (["floor_trl_packed"] if case.ladder else [])
    rest = [*list(OURS)[::-1], "trl_packed"] if case.ladder else ["ours"]
    for r in range(a.rounds):
        for f in floors:
            go(f, f, case.batches[0])
        for b in case.batches if r % 2 == 0 else case.batches[::-1]:
            go(f"trl_padded@{b}", "trl_padded", b)
        best = int(case.trl_key().split("@", 1)[1])
        for v in rest if r % 2 == 0 else rest[::-1]:
            go(v, v, best)


def check(case: Case) -> str:
    """Equal budgets, and TRL trains on prepare's masks and counts the same loss tokens."""
    fl = case.runs["floor_trl_padded"][0]
    if not fl["masks_equal"] or fl["loss_tokens_trl"] != fl["loss_tokens_ours"]:
        raise AssertionError(
            f"{case.mix}: TRL's labels differ from prepare's (masks equal: {fl['masks_equal']}, "
            f"loss tokens {fl['loss_tokens_trl']} vs ours {fl['loss_tokens_ours']})"
        )
    ours = case.med("ours", lambda r: r["real_tokens"])
    for key, runs in case.runs.items():
        if "seconds" not in runs[0] or key == "trl_packed":
            continue  # TRL's own packing sets its budget; it is printed, not forced
        if abs(runs[0]["real_tokens"] - ours) > 0.02 * ours:
            raise AssertionError(f"{key}: {runs[0]['real_tokens']} real tokens vs ours {ours}")
    return (
        f"{case.shape}/{case.mix}: TRL's collated labels equal prepare's on the "
        f"{fl['conversations']} planned conversations; loss-bearing tokens "
        f"{fl['loss_tokens_trl']:,} (TRL) = {fl['loss_tokens_ours']:,} (ours)"
    )


def ladder_table(case: Case, b: flops.Body, peak: float, steps: int) -> str:
    trl = case.trl_key()
    keys = [trl, *[k for k in LADDER if k != "trl_padded"], "trl_packed"]
    lines = [
        "| rung | variant | real tok/step | computed / real | pack fill | loss tok/s | x rung above"
        " | x TRL padded | model GFLOP/s | of peak | MiB above own floor | x TRL padded |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_t, base_m, prev = case.tps(trl), case.above_floor(trl), 0.0
    for i, key in enumerate(keys):
        rs = case.runs[key]
        real = sum(r["real_tokens"] for r in rs)
        computed = sum(r["computed_tokens"] for r in rs) / real
        budgets = [r["budget_tokens"] for r in rs if r.get("budget_tokens")]
        fill = f"{real / sum(budgets):.3f}" if len(budgets) == len(rs) else ""
        gflops = case.med(
            key,
            lambda r: flops.model_flops(
                b, sum_len=r["real_tokens"], sum_len_sq=r["sum_len_sq"],
                loss_tokens=r["loss_tokens"],
            ) / r["seconds"] / 1e9,
        )  # fmt: skip
        t, m = case.tps(key), case.above_floor(key)
        side = key == "trl_packed"
        name = LADDER.get(key.split("@")[0], "TRL SFTTrainer, its BFD packing (padding-free)")
        if key == trl:
            size = int(key.split("@")[1])
            name += f": {size} x {case.per_step // size}"
        lines.append(
            f"| {'' if side else i} | {name} | {real / len(rs) / steps:,.0f} | {computed:.3f} "
            f"| {fill} | {t:,.0f} | {'' if side or not prev else f'{t / prev:.2f}x'} "
            f"| {t / base_t:.2f}x | {gflops:,.1f} | {gflops / peak:.1%} | {m:,.0f} "
            f"| {m / base_m:.2f}x |"
        )
        prev = t
    return "\n".join(lines)


def report(saved: dict[str, Any]) -> str:
    """Every table, from the saved results (`--report FILE` prints them again)."""
    a, stats, vocab = saved["args"], saved["stats"], saved["vocab"]
    shapes, mixes = a["shapes"], a["mixes"]
    cases = [Case(**c) for c in saved["cases"]]
    peaks = saved["peaks"]
    out = [
        f"fp32 matmul peak at {x}'s GEMM sizes (m x k x n, GFLOP/s, best of 5): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in peaks[x].items())
        for x in shapes
    ]
    out += [
        f"budget {a['budget']} pack tokens/step ({a['budget'] // MICRO_TOKENS} packs of "
        f"{MICRO_TOKENS}), {a['warmup']} warm-up + {a['steps']} measured steps, {a['rounds']} "
        f"round(s), gradient checkpointing {a['gradient_checkpointing']}, fp32 and fused AdamW "
        "for every variant",
        "",
        *table_head(
            [
                "mix", "conversations", "mean tokens", "spread", "loss-bearing share",
                *(f"attention / linear, {s}" for s in shapes), "attention / linear, Qwen3-4B",
            ]
        ),
    ]  # fmt: skip
    for m in mixes:
        s = stats[m]
        shares = [body(SHAPES[x], vocab).attention_to_linear(s["lengths"]) for x in shapes]
        out.append(
            f"| {m} | {s['conversations']} | {s['mean_tokens']:.0f} | {s['spread']:.0%} "
            f"| {s['loss_fraction']:.1%} | " + " | ".join(f"{r:.1%}" for r in shares)
            + f" | {flops.QWEN3_4B.attention_to_linear(s['lengths']):.1%} |"
        )  # fmt: skip
    out.append(
        f"\nLM head / body, per row that needs logits: Qwen3-4B {flops.QWEN3_4B.head_to_body():.3f}"
        + "".join(f", {x} {body(SHAPES[x], vocab).head_to_body():.3f}" for x in shapes)
    )
    out += ["", *saved["checks"], ""]
    for case in cases:
        if case.ladder:
            out += [
                f"### Ladder: shape {SHAPES[case.shape].label}, mix {case.mix}",
                ladder_table(
                    case,
                    body(SHAPES[case.shape], vocab),
                    max(peaks[case.shape].values()),
                    a["steps"],
                ),
                "",
            ]
    out += [
        "### TRL padded at each micro-batch size (its fastest is its ladder rung)",
        "| shape | mix | micro-batch x accumulation | loss tok/s | MiB above own floor |",
        "|---|---|---|---:|---:|",
    ]
    for case in cases:
        for size in case.batches:
            k = f"trl_padded@{size}"
            out.append(
                f"| {case.shape} | {case.mix} | {size} x {case.per_step // size} "
                f"| {case.tps(k):,.0f} | {case.above_floor(k):,.0f} |"
            )
    out += [
        "",
        f"### Ours vs TRL padded at its fastest size, by data mix (shape {shapes[0]})",
        "| mix | ours loss tok/s | TRL padded loss tok/s | ratio | MiB above floor, ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    ratios: dict[str, float] = {}
    for case in cases:
        if case.shape == shapes[0]:
            trl = case.trl_key()
            ratios[case.mix] = case.tps("ours") / case.tps(trl)
            memory = case.above_floor("ours") / case.above_floor(trl)
            out.append(
                f"| {case.mix} | {case.tps('ours'):,.0f} | {case.tps(trl):,.0f} "
                f"| {ratios[case.mix]:.2f}x | {memory:.2f}x |"
            )
    low = min(ratios, key=ratios.__getitem__)
    out.append(f"\nheadline (lowest over the mixes): {ratios[low]:.2f}x TRL padded, mix {low}")
    return "\n".join(out)


def collect(a: argparse.Namespace, save: Path) -> dict[str, Any]:
    from training.tiny import build_tokenizer

    tok = build_tokenizer()
    saved: dict[str, Any] = {"args": vars(a), "vocab": len(tok), "checks": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        saved["stats"] = build(workdir, a.mixes, a.conversations)
        saved["peaks"] = {s: flops.matmul_peak(body(SHAPES[s], len(tok))) for s in a.shapes}
        cases = []
        for m in a.mixes:
            sizes, per_step = plan(workdir, m, a, tok.pad_token_id)
            for s in a.shapes if m == a.mixes[0] else a.shapes[:1]:
                cases.append(Case(s, m, m == a.mixes[0], sizes, per_step))
        for case in cases:
            run_case(workdir, case, a)
            saved["checks"].append(check(case))
            print("  " + saved["checks"][-1], flush=True)
            saved["cases"] = [asdict(c) for c in cases if c.runs]
            save.parent.mkdir(parents=True, exist_ok=True)
            save.write_text(json.dumps(saved, default=str))
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shape A, one mix, 1 step: a sanity run")
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per run")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    p.add_argument("--rounds", type=int, default=1, help="runs per variant (median)")
    p.add_argument("--budget", type=int, default=4096, help="pack tokens per optimizer step")
    p.add_argument("--conversations", type=int, default=300)
    p.add_argument("--shapes", default="R,A,B", help="a ladder at each; the first is the headline")
    p.add_argument("--mixes", default=",".join(data.MIXES), help="the first is the ladders'")
    p.add_argument("--max-trl-batch", type=int, default=8, help="largest TRL micro-batch tried")
    p.add_argument(
        "--gradient-checkpointing", choices=("on", "off"), default="on",
        help="for every variant alike; on is TRL SFTConfig's default and our production configs'",
    )  # fmt: skip
    p.add_argument("--save", type=Path, default=Path("runs/bench-train.json"))
    p.add_argument("--report", type=Path, help="print the tables of a saved run and stop")
    for hidden in ("--child", "--shape", "--mix", "--workdir"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--accum", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not_a_run(a, child, report):
        return 0
    a.shapes, a.mixes = a.shapes.split(","), a.mixes.split(",")
    if bad := (set(a.shapes) - set(SHAPES)) | (set(a.mixes) - set(data.MIXES)):
        p.error(f"unknown {sorted(bad)}; shapes {tuple(SHAPES)}, mixes {tuple(data.MIXES)}")
    if a.quick:
        a.steps, a.warmup, a.rounds, a.shapes, a.mixes = 1, 1, 1, ["A"], a.mixes[:1]
    saved = collect(a, a.save)
    print()
    print(report(json.loads(json.dumps(saved, default=str))))
    print(f"\n(results saved to {a.save}; `--report {a.save}` prints these tables again)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
