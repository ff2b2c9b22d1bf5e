"""Benchmark: this trainer vs TRL `SFTTrainer` (padded, and with its packing) on tiny Qwen3 shapes.

    python -m benchmarks.train [--quick] [--steps 3] [--rounds 1] [--budget 8192]

Same data for every variant (`training.synthetic` tool-calling conversations, ~800 tokens, tool
schemas in the system turn, assistant-only loss with TRL's own `{% generation %}` masks), same
token budget per optimizer step. Shape A: hidden 256, 8 layers, the test tokenizer's 2k vocabulary
(the LM head costs about a tenth of the body, as in Qwen3-4B). Shape B: the same body with Qwen3's
151,936-row vocabulary, where logits dominate. Gradient checkpointing is the same for every
variant: on by default, as in TRL's `SFTConfig` and our production configs
(`--gradient-checkpointing off` for the other setting). Each measurement runs in a fresh subprocess
(peak RSS is its own); variants alternate within a round to spread machine noise evenly. Timings
stay out of tests; this prints a markdown table.

Peak RSS includes a floor every variant pays: python + torch + transformers, the fp32 weights,
their gradients and AdamW's two moments. A `floor` child measures it (same model, gradients
filled, one fused AdamW step, no forward), and the table also reports each variant's peak minus
that floor: what the training step itself adds (activations, logits, temporaries, and whatever
freed memory the allocator keeps).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from training.tiny import QWEN3_VOCAB_SIZE

VARIANTS = ("ours", "trl_padded", "trl_packed")
FLOOR = "floor"
SHAPES: dict[str, dict[str, Any]] = {
    "A": {"vocab_size": None, "label": "A (h256 x 8, 2k vocab)"},
    "B": {"vocab_size": QWEN3_VOCAB_SIZE, "label": "B (h256 x 8, 151,936 vocab)"},
}
MICRO_TOKENS = 2048  # tokens per forward pass (pack length); budget / this = micro-batches per step


def build(workdir: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Models for both shapes, the conversations (JSONL, for TRL) and their packs (for us)."""
    from trl.chat_template_utils import get_training_chat_template

    from training import synthetic
    from training.data.packing import IGNORE_INDEX, pack_sequences, write_packs
    from training.tiny import TinyShape, build_model, build_tokenizer

    tok = build_tokenizer()
    for name, spec in SHAPES.items():
        shape = TinyShape(
            hidden_size=256, num_hidden_layers=8, intermediate_size=768,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64,
            vocab_size=spec["vocab_size"],
        )  # fmt: skip
        tok.save_pretrained(workdir / f"model-{name}")
        build_model(tok, shape).save_pretrained(workdir / f"model-{name}")
    # The project's one generator (tests and the e2e run use it too). Tools as a JSON string:
    # Arrow cannot unify differently shaped schemas across rows, and TRL decodes the string.
    rows = [
        {"messages": r["messages"], "tools": json.dumps(r["tools"])}
        for r in (c.to_record() for c in synthetic.generate(n, seed, mean_tokens=800))
    ]
    with (workdir / "conversations.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    template = get_training_chat_template(tok)
    seqs = []
    for r in rows:
        out = tok.apply_chat_template(
            r["messages"], tools=json.loads(r["tools"]), chat_template=template,
            tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
        )  # fmt: skip
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        seqs.append((ids, [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)]))
    write_packs(workdir / "packs", pack_sequences(seqs, MICRO_TOKENS), pack_length=MICRO_TOKENS)
    lengths = [len(s[0]) for s in seqs]
    loss = sum(sum(x != IGNORE_INDEX for x in s[1]) for s in seqs)
    return {
        "conversations": n,
        "mean_tokens": statistics.mean(lengths),
        "loss_fraction": loss / sum(lengths),
    }


# -- children: one variant, one shape, one process ----------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_ours(
    workdir: Path, shape: str, steps: int, warmup: int, budget: int, *, gc: bool
) -> dict[str, Any]:
    from training import train
    from training.config import validate_config

    out = Path(tempfile.mkdtemp(dir=workdir))
    cfg = validate_config(
        {
            "output_dir": str(out), "max_steps": warmup + steps, "progress_bar": False,
            "model": {
                "name_or_path": str(workdir / f"model-{shape}"), "gradient_checkpointing": gc,
            },
            "data": {"path": str(workdir / "packs"), "pack_length": MICRO_TOKENS},
            "optim": {"lr": 1e-4, "grad_accum": budget // MICRO_TOKENS},
            "checkpoint": {"resume": "never", "enabled": False},  # TRL saves nothing either
            "mlflow": {"tracking_uri": "", "log_system_metrics": False},
        },
    )  # fmt: skip
    train.main(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    measured = rows[warmup:]
    seconds = sum(r["step_time_s"] for r in measured)
    return {
        "loss_tokens": sum(r["loss_tokens_per_s"] * r["step_time_s"] for r in measured),
        "computed_tokens": sum(r["tokens_per_s"] * r["step_time_s"] for r in measured),
        "real_tokens": sum(r["tokens_per_s"] * r["step_time_s"] for r in measured),
        "seconds": seconds,
    }


def _run_trl(
    workdir: Path, shape: str, steps: int, warmup: int, budget: int, *, packed: bool, gc: bool
) -> dict[str, Any]:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(workdir / f"model-{shape}")
    model = AutoModelForCausalLM.from_pretrained(workdir / f"model-{shape}", dtype=torch.float32)
    ds = datasets.load_dataset(
        "json", data_files=str(workdir / "conversations.jsonl"), split="train"
    )
    stats = json.loads((workdir / "stats.json").read_text())
    if packed:  # budget / MICRO_TOKENS packs of MICRO_TOKENS, padding-free (BFD)
        batch, accum = 1, budget // MICRO_TOKENS
    else:  # the same real tokens per step: budget / mean length conversations
        n = max(1, round(budget / stats["mean_tokens"]))
        accum = budget // MICRO_TOKENS
        batch = max(1, round(n / accum))
    args = SFTConfig(
        output_dir=str(workdir / f"trl-{shape}-{int(packed)}"),
        max_steps=warmup + steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum, learning_rate=1e-4, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
        assistant_only_loss=True, max_length=MICRO_TOKENS, packing=packed,
        bf16=False, seed=0, disable_tqdm=True, gradient_checkpointing=gc,
    )  # fmt: skip
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            ends.append(time.perf_counter())

    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.add_callback(Clock())
    counts: list[tuple[int, int, int]] = []
    collate = trainer.data_collator

    def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
        b = collate(features)
        labels = b["labels"]
        real = int(b["attention_mask"].sum()) if "attention_mask" in b else labels.numel()
        counts.append((int((labels[..., 1:] != -100).sum()), int(labels.numel()), real))
        return dict(b)

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    stamps = [start, *ends]
    seconds = stamps[-1] - stamps[warmup]
    mine = counts[warmup * accum : (warmup + steps) * accum]
    return {
        "loss_tokens": sum(c[0] for c in mine),
        "computed_tokens": sum(c[1] for c in mine),
        "real_tokens": sum(c[2] for c in mine),
        "seconds": seconds,
    }


def _run_floor(workdir: Path, shape: str) -> dict[str, Any]:
    """Weights + gradients + AdamW state and nothing else: the memory no trainer can avoid."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(workdir / f"model-{shape}", dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, 1e-3)  # written, so resident (zeros could stay untouched)
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)  # fused: no per-tensor temporaries
    opt.step()
    return {"params": sum(p.numel() for p in params)}


def child(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    torch_threads = os.environ.get("BENCH_THREADS")
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    gc = args.gradient_checkpointing == "on"
    if args.child == FLOOR:
        r = _run_floor(workdir, args.shape)
    elif args.child == "ours":
        r = _run_ours(workdir, args.shape, args.steps, args.warmup, args.budget, gc=gc)
    else:
        r = _run_trl(
            workdir, args.shape, args.steps, args.warmup, args.budget,
            packed=args.child == "trl_packed", gc=gc,
        )  # fmt: skip
    r["peak_rss_mb"] = _rss_mb()
    print("RESULT " + json.dumps(r), flush=True)


# -- parent: build once, alternate variants, print the table ------------------------------------
def measure(workdir: Path, variant: str, shape: str, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.train", "--child", variant, "--shape", shape,
        "--workdir", str(workdir), "--steps", str(a.steps), "--warmup", str(a.warmup),
        "--budget", str(a.budget), "--gradient-checkpointing", a.gradient_checkpointing,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"{variant}/{shape} failed:\n{proc.stderr[-3000:]}")


def table(
    results: dict[tuple[str, str], list[dict[str, Any]]], shapes: list[str], variants: list[str]
) -> str:
    base = "trl_padded" if "trl_padded" in variants else variants[0]  # the baseline
    vs = f"vs {base}"
    lines = [
        f"| shape | variant | loss tokens/s | {vs} | real fraction | peak RSS MiB"
        f" | {vs} | step MiB above floor | {vs} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def tps(v: str, shape: str) -> float:
        return statistics.median(r["loss_tokens"] / r["seconds"] for r in results[(v, shape)])

    def rss(v: str, shape: str) -> float:
        return max(r["peak_rss_mb"] for r in results[(v, shape)])

    for shape in shapes:
        floor = statistics.median(r["peak_rss_mb"] for r in results[(FLOOR, shape)])
        base_t, base_m = tps(base, shape), rss(base, shape)
        base_s = base_m - floor
        for v in variants:
            rs = results[(v, shape)]
            real = sum(r["real_tokens"] for r in rs) / sum(r["computed_tokens"] for r in rs)
            step = rss(v, shape) - floor
            lines.append(
                f"| {SHAPES[shape]['label']} | {v} | {tps(v, shape):,.0f} "
                f"| {tps(v, shape) / base_t:.2f}x | {real:.3f} | {rss(v, shape):,.0f} "
                f"| {rss(v, shape) / base_m:.2f}x | {step:,.0f} "
                f"| {f'{step / base_s:.2f}x' if base_s > 0 else 'n/a'} |"
            )
        lines.append(
            f"| {SHAPES[shape]['label']} | floor (weights, grads, AdamW; no forward) | | | "
            f"| {floor:,.0f} | | 0 | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shape A only, 1 step: a sanity run")
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per run")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    p.add_argument("--rounds", type=int, default=1, help="runs per variant (median)")
    p.add_argument("--budget", type=int, default=4096, help="tokens per optimizer step")
    p.add_argument("--conversations", type=int, default=400)
    p.add_argument("--shapes", default="A,B")
    p.add_argument(
        "--gradient-checkpointing", choices=("on", "off"), default="on",
        help="for every variant alike; on is TRL SFTConfig's default and our production configs'",
    )  # fmt: skip
    p.add_argument("--variants", default=",".join(VARIANTS), help="a subset, for exploring")
    p.add_argument("--child", choices=(*VARIANTS, FLOOR), help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a)
        return 0
    shapes = a.shapes.split(",")
    variants = [v for v in VARIANTS if v in a.variants.split(",")]  # table order
    unknown = set(a.variants.split(",")) - set(VARIANTS)
    if unknown or not variants:
        p.error(f"--variants: {','.join(sorted(unknown)) or 'none given'}; choose from {VARIANTS}")
    bad_shapes = set(shapes) - set(SHAPES)
    if bad_shapes:
        p.error(f"--shapes: {','.join(sorted(bad_shapes))}; choose from {tuple(SHAPES)}")
    if a.quick:
        a.steps, a.warmup, a.rounds, a.budget, shapes = 1, 1, 1, 4096, ["A"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stats = build(workdir, a.conversations)
        (workdir / "stats.json").write_text(json.dumps(stats))
        print(
            f"data: {stats['conversations']} conversations, mean {stats['mean_tokens']:.0f} tokens,"
            f" loss-bearing fraction {stats['loss_fraction']:.3f}; budget {a.budget} tokens/step,"
            f" {a.warmup} warm-up + {a.steps} measured steps, {a.rounds} round(s),"
            f" gradient checkpointing {a.gradient_checkpointing} for every variant,"
            f" torch threads {os.environ.get('BENCH_THREADS', 'default')}",
            flush=True,
        )
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for shape in shapes:
            for r in range(a.rounds):
                order = variants if r % 2 == 0 else variants[::-1]
                res = measure(workdir, FLOOR, shape, a)
                results.setdefault((FLOOR, shape), []).append(res)
                print(f"  {shape} floor: rss {res['peak_rss_mb']:,.0f} MiB", flush=True)
                for v in order:
                    t0 = time.perf_counter()
                    res = measure(workdir, v, shape, a)
                    results.setdefault((v, shape), []).append(res)
                    print(
                        f"  {shape} {v}: {res['loss_tokens'] / res['seconds']:,.0f} loss tok/s,"
                        f" rss {res['peak_rss_mb']:,.0f} MiB ({time.perf_counter() - t0:.0f}s)",
                        flush=True,
                    )
        print()
        print(table(results, shapes, variants))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
