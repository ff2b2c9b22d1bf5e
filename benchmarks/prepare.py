"""Benchmark: `training.prepare` against the dataset preparation TRL's `SFTTrainer` runs, on the
same synthetic tool conversations and the same tokenizer (`training.tiny`'s, real Qwen3 template).

    python -m benchmarks.prepare [--quick] [--sizes 4000,16000,64000] [--workers 1,2]

What it runs, each measurement a fresh child process whose whole process tree is measured:

- **Data**: `training.synthetic` with its defaults: 3-6 tools offered per conversation (its
  catalog has 10) and a mean of 800 tiny-tokenizer tokens, near the 770 of held-out tool
  conversations (`benchmarks.train_data`'s heldout-like mix); single calls, parallel calls,
  call -> result -> answer and chit-chat. 64k is the size of xLAM-function-calling-60k (60,000
  records). The largest size is generated once, the smaller are its prefixes; both sides read
  the same file, as `training.synthetic` writes it (OpenAI `messages` and `tools`).
- **Ours**: `training.prepare.main` (read, parse, render, tokenise, mask, pack, write shards) with
  `--workers` 1 and 2 and `--max-length` 4096.
- **TRL**: `datasets.load_dataset("json")` of that file, then `SFTTrainer._prepare_dataset` with
  `assistant_only_loss=True`, `packing=True` (BFD) and `max_length=4096`, called without a model
  on a stand-in holding the three attributes `SFTTrainer.__init__` derives for it (the training
  chat template, `completion_only_loss`, the tokenizer). `dataset_num_proc` None (TRL's default:
  the maps run in the process; in datasets 5.2 a 1 still forks one pool worker) and 2. A fresh
  datasets cache per run, so nothing is reused.
- **Measured**: wall time and CPU time of the preparation alone (after imports and the tokenizer
  load), peak RSS and PSS summed over the whole process tree (workers, datasets' pool and
  manager processes), sampled from /proc every 100 ms while it prepares, beside the child's own
  memory before it starts (its floor), and the output on disk (disk written: for ours the output
  plus the rows it spilled while packing, deleted at the end). If the goal is not met, a cProfile
  of each side at `--profile-size` conversations in one process, with a breakdown by phase.
- **Checked**: both sides keep every conversation, and their token and loss-token counts differ
  by exactly what the two templates render differently (`template_gap`).

Timings stay out of tests; this prints markdown tables.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.common import not_a_run, table_head

SIZES = (4_000, 16_000, 64_000)
QUICK_SIZES = (200,)
WORKERS = (1, 2)
MAX_LENGTH = 4096  # prepare's default; TRL's max_length and packing length alike
SAMPLE_S = 0.1  # memory sampling period (a sample costs ~3 ms of one core)
GOAL_SPEED, GOAL_MEMORY = 2.0, 0.5  # issue 27: >= 2x TRL's throughput at <= 0.5x its peak memory
SIDES = ("ours", "trl")
EMPTY_THINK = "<think>\n\n</think>\n\n"
MIB = 1 << 20


# -- data ------------------------------------------------------------------------------------
def template_gap(conv: Any) -> tuple[int, int]:
    """(assistant turns, non-final assistant turns without reasoning) of one conversation.

    TRL's training template for Qwen3 (`trl/chat_templates/qwen3_training.jinja`) ends each
    assistant turn's ``{% generation %}`` block after ``<|im_end|>\\n``, so the newline carries
    loss, one token a turn more than ours (``training.data.render``: loss through
    ``<|im_end|>``). It also writes ``<think>...</think>`` on every assistant turn, where
    qwen3.jinja (ours) writes it after the last user query only on the final turn or a turn with
    reasoning: a non-final turn without reasoning gets an empty think block there, loss-bearing.
    A turn before the last query would differ by its dropped reasoning instead: refused here.
    """
    roles = [m.role for m in conv.messages]
    last_query = max(i for i, r in enumerate(roles) if r == "user")
    turns = [i for i, r in enumerate(roles) if r == "assistant"]
    if turns[0] < last_query:
        raise ValueError("an assistant turn before the last user query: the gap is not counted")
    bare = sum(1 for i in turns[:-1] if not conv.messages[i].reasoning)
    return len(turns), bare


def build(workdir: Path, sizes: list[int]) -> dict[str, Any]:
    """The tokenizer, the input file of every size, and what each size should count."""
    from training import synthetic
    from training.tiny import build_tokenizer

    tok = build_tokenizer()
    tok.save_pretrained(workdir / "tokenizer")
    started = time.perf_counter()
    convs = synthetic.generate(max(sizes), seed=0)  # a prefix of it is generate(n, seed=0)
    generated = time.perf_counter() - started
    lines = [json.dumps(c.to_record()) + "\n" for c in convs]
    gaps = [template_gap(c) for c in convs]
    expected: dict[str, Any] = {
        "think_tokens": len(tok(EMPTY_THINK, add_special_tokens=False)["input_ids"]),
        "newline_tokens": len(tok("\n", add_special_tokens=False)["input_ids"]),
    }
    for n in sizes:
        (workdir / f"{n}.jsonl").write_text("".join(lines[:n]), encoding="utf-8")
        expected[str(n)] = {
            "assistant_turns": sum(t for t, _ in gaps[:n]),
            "bare_turns": sum(b for _, b in gaps[:n]),
            "mb": (workdir / f"{n}.jsonl").stat().st_size / MIB,
        }
    expected["generate_s"] = generated
    return expected


# -- memory of a process tree, from /proc ----------------------------------------------------
def _smaps(pid: int | str) -> tuple[int, int, int]:
    """(Rss, Pss, Pss_Anon) of one process in bytes; zeros once it has gone."""
    values = {"Rss:": 0, "Pss:": 0, "Pss_Anon:": 0}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # exited between listing and reading
        return 0, 0, 0
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key in values:
            values[key] = int(rest.split()[0]) * 1024
    return values["Rss:"], values["Pss:"], values["Pss_Anon:"]


def _tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    out, frontier = [root], [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, ())]
        out += frontier
    return out


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run a child; sample its tree's memory until it exits; return its RESULT plus the peaks
    of the samples taken while it prepared (its `clock` window: not its imports, not the counts
    read afterwards).

    RSS counts a page shared by forked processes once in each (the workers' copy-on-write
    pages of their parent), PSS divides it among them: `peak_rss_mb` is the issue's metric,
    `peak_pss_mb` what the tree really occupies, `peak_anon_mb` its anonymous part (heap, not
    mapped files). A sample can miss a short peak: the child's own high-water mark (`VmHWM`,
    read as its preparation ends) bounds `peak_rss_mb` from below. (`wait4`'s ru_maxrss cannot:
    the kernel carries into it the RSS of the benchmark process the child was forked from.)
    """
    samples: list[tuple[float, int, int, int]] = []
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            sums = [sum(v) for v in zip(*(_smaps(p) for p in _tree(proc.pid)), strict=True)]
            samples.append((time.time(), sums[0], sums[1], sums[2]))
            time.sleep(SAMPLE_S)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    result = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not result:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{text[-3000:]}")
    r: dict[str, Any] = json.loads(result[-1][len("RESULT ") :])
    start, end = r.pop("clock")
    during = [s for s in samples if start <= s[0] <= end] or [(0.0, 0, 0, 0)]
    r.update(
        peak_rss_mb=max(max(s[1] for s in during) / MIB, r["hwm_mb"]),
        peak_pss_mb=max(s[2] for s in during) / MIB,
        peak_anon_mb=max(s[3] for s in during) / MIB,
        tree_cpu_s=usage.ru_utime + usage.ru_stime,
        samples=len(during),
    )
    return r


# -- children: one side, one size, one worker count ------------------------------------------
def _own_memory() -> dict[str, float]:
    rss, pss, anon = _smaps("self")
    return {"floor_rss_mb": rss / MIB, "floor_pss_mb": pss / MIB, "floor_anon_mb": anon / MIB}


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system  # reaped workers included


@contextmanager
def _timed(out: dict[str, Any], profile: str | None) -> Iterator[None]:
    """Wall and CPU seconds of the block into `out`; cProfile stats to `profile` if given."""
    prof = cProfile.Profile() if profile else None
    cpu, wall, start = _cpu_s(), time.perf_counter(), time.time()
    if prof is not None:
        prof.enable()
    yield
    if prof is not None and profile:
        prof.disable()
        prof.dump_stats(profile)
    out["seconds"] = time.perf_counter() - wall
    out["cpu_s"] = _cpu_s() - cpu
    out["clock"] = (start, time.time())  # the window `measure` takes memory peaks from
    status = Path("/proc/self/status").read_text()
    out["hwm_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024  # this process's peak RSS


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _run_ours(a: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import safetensors.numpy  # noqa: F401 -- prepare imports these late: before the clock
    import tqdm  # noqa: F401

    from training import prepare

    tok = prepare.load_tokenizer(a.tokenizer)
    out = Path(a.workdir) / f"ours-out-{os.getpid()}"
    args = prepare.PrepareArgs(
        input=Path(a.input), output=out, tokenizer=a.tokenizer, max_length=MAX_LENGTH,
        workers=a.workers, quiet=True, max_bad_fraction=0.0,  # every record must be kept
    )  # fmt: skip
    r: dict[str, Any] = _own_memory()
    with _timed(r, a.profile):
        stats = prepare.main(args, tokenizer=tok)
    r.update(
        records=stats["records_read"], sequences=stats["sequences"], tokens=stats["tokens"],
        loss_tokens=stats["loss_tokens"], packs=stats["packs"], fill=stats["pack_fill"],
        output_mb=_size(out) / MIB, disk_mb=(_size(out) + stats["spill_bytes"]) / MIB,
    )  # fmt: skip
    shutil.rmtree(out)
    return r


def trl_trainer_state(args: Any, tokenizer: Any) -> SimpleNamespace:
    """What `SFTTrainer._prepare_dataset` reads from `self`, derived as `SFTTrainer.__init__`
    derives it (trl 1.16): the training chat template when `assistant_only_loss` is on and the
    tokenizer's has no generation markers, `completion_only_loss` (None: only for prompt/completion
    records, which these are not), and the tokenizer (`_tokenizer`)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    swap = args.assistant_only_loss and not has_generation_markers(tokenizer.chat_template)
    return SimpleNamespace(
        _tokenizer=tokenizer,
        chat_template=get_training_chat_template(tokenizer) if swap else None,
        completion_only_loss=bool(args.completion_only_loss),
    )


def trl_config(output_dir: Path, num_proc: int | None) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir), assistant_only_loss=True, packing=True,
        max_length=MAX_LENGTH, dataset_num_proc=num_proc, report_to=[], use_cpu=True,
    )  # fmt: skip


def trl_prepare(
    path: Path, tokenizer: Any, args: Any, state: SimpleNamespace, cache: Path
) -> tuple[Any, int, float]:
    """TRL's path from a JSONL file: `load_dataset`, then `SFTTrainer._prepare_dataset` on
    `state` (`trl_trainer_state`). Returns the prepared dataset, the records read and the
    seconds the load took."""
    import datasets
    from trl import SFTTrainer

    started = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))
    loaded = time.perf_counter() - started
    method: Any = SFTTrainer._prepare_dataset  # called on the stand-in, not a trainer
    prepared = method(state, ds, tokenizer, args, args.packing, None, "train")
    return prepared, len(ds), loaded


def trl_counts(ds: Any) -> dict[str, int]:
    """Packs, sequences, tokens and loss-bearing tokens of a packed TRL dataset, read 1,000 packs
    at a time (a few MB, never the whole set)."""
    counts = dict.fromkeys(("packs", "sequences", "tokens", "loss_tokens"), 0)
    for table in ds.with_format("arrow").iter(batch_size=1000):
        flat = {
            c: table.column(c).combine_chunks().flatten().to_numpy() for c in table.column_names
        }
        counts["packs"] += table.num_rows
        counts["sequences"] += len(flat["seq_lengths"])
        counts["tokens"] += len(flat["input_ids"])
        counts["loss_tokens"] += int((flat["labels"] != -100).sum())
    return counts


def _run_trl(a: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import datasets
    from transformers import AutoTokenizer
    from trl import SFTTrainer  # noqa: F401 -- loaded before the clock starts, as prepare is

    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    cache = Path(a.workdir) / f"trl-cache-{os.getpid()}"
    args = trl_config(cache / "out", a.workers or None)
    state = trl_trainer_state(args, tok)  # SFTTrainer.__init__'s work, not the preparation's
    r: dict[str, Any] = _own_memory()
    with _timed(r, a.profile):
        ds, r["records"], r["load_seconds"] = trl_prepare(Path(a.input), tok, args, state, cache)
    counts = trl_counts(ds)
    r.update(
        counts,
        fill=counts["tokens"] / (counts["packs"] * MAX_LENGTH),
        output_mb=sum(Path(f["filename"]).stat().st_size for f in ds.cache_files) / MIB,
        disk_mb=_size(cache) / MIB,
    )  # fmt: skip
    shutil.rmtree(cache)
    return r


def child(a: argparse.Namespace) -> None:
    a.workers, a.profile = int(a.workers), a.profile_file  # one variant: one worker count
    r = _run_ours(a) if a.child == "ours" else _run_trl(a)
    print("RESULT " + json.dumps(r), flush=True)


# -- parent ----------------------------------------------------------------------------------
def _command(workdir: Path, side: str, n: int, workers: int, profile: Path | None) -> list[str]:
    cmd = [
        sys.executable, "-m", "benchmarks.prepare", "--child", side, "--workdir", str(workdir),
        "--input", str(workdir / f"{n}.jsonl"), "--tokenizer", str(workdir / "tokenizer"),
        "--workers", str(workers if side == "ours" or workers > 1 else 0),  # TRL 1: None
    ]  # fmt: skip
    return cmd + (["--profile-file", str(profile)] if profile else [])


def _env(workdir: Path) -> dict[str, str]:
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cache = str(workdir / "hf-datasets")  # each TRL run passes its own cache_dir as well
    return {**os.environ, **offline, "HF_DATASETS_CACHE": cache}


def row(r: dict[str, Any]) -> str:
    cores = r["cpu_s"] / r["seconds"]
    return (
        f"| {r['size']:,} | {r['side']} | {r['label']} | {r['seconds']:.1f} "
        f"| {r['records'] / r['seconds']:,.0f} | {r['tokens'] / r['seconds']:,.0f} | {cores:.2f} "
        f"| {r['peak_rss_mb']:,.0f} | {r['peak_pss_mb']:,.0f} | {r['floor_rss_mb']:,.0f} "
        f"| {r['output_mb']:,.1f} | {r['disk_mb']:,.1f} | {r['packs']:,} ({r['fill']:.3f}) |"
    )


HEADER = (
    "| conversations | side | workers | seconds | conv/s | tokens/s | cores busy "
    "| peak tree RSS MiB | peak tree PSS MiB | floor RSS MiB | output MiB | disk written MiB "
    "| packs (fill) |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _label(side: str, workers: int) -> str:
    if side == "ours":
        return f"--workers {workers}"
    return "dataset_num_proc None" if workers == 1 else f"dataset_num_proc {workers}"


def collect(a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    expected = build(workdir, a.sizes)
    saved: dict[str, Any] = {"args": {k: str(v) for k, v in vars(a).items()}, "runs": []}
    saved["expected"] = expected
    print(f"data: {max(a.sizes):,} conversations generated in {expected['generate_s']:.1f}s\n")
    print(HEADER, flush=True)
    env = _env(workdir)
    for n in a.sizes:
        for w in a.workers:
            for side in SIDES:
                r = measure(_command(workdir, side, n, w, None), env, workdir / "child.log")
                r.update(size=n, side=side, workers=w, label=_label(side, w))
                saved["runs"].append(r)
                print(row(r), flush=True)
    return saved


def check(saved: dict[str, Any]) -> list[str]:
    """Both sides keep every conversation; their counts differ by exactly `template_gap`'s."""
    exp, lines = saved["expected"], []
    for n in sorted({r["size"] for r in saved["runs"]}):
        gap = exp[str(n)]
        extra = exp["think_tokens"] * gap["bare_turns"]
        runs = [r for r in saved["runs"] if r["size"] == n]
        ours = next(r for r in runs if r["side"] == "ours")
        for r in runs:
            if r["records"] != n or r["sequences"] != n:
                raise AssertionError(f"{r['side']} {r['label']}: {r['sequences']} of {n} kept")
            want_tokens, want_loss = ours["tokens"], ours["loss_tokens"]
            if r["side"] == "trl":
                want_tokens += extra
                want_loss += extra + exp["newline_tokens"] * gap["assistant_turns"]
            if (r["tokens"], r["loss_tokens"]) != (want_tokens, want_loss):
                raise AssertionError(
                    f"{n} {r['side']} {r['label']}: tokens {r['tokens']:,}, loss tokens "
                    f"{r['loss_tokens']:,}; expected {want_tokens:,} and {want_loss:,}"
                )
        trl = next(r for r in runs if r["side"] == "trl")
        lines.append(
            f"{n:,} conversations: every one kept by both; loss-bearing tokens ours "
            f"{ours['loss_tokens']:,}, TRL {trl['loss_tokens']:,} = ours + "
            f"{gap['assistant_turns']:,} assistant turns x {exp['newline_tokens']} (the newline "
            f"after <|im_end|>) + {gap['bare_turns']:,} non-final turns without reasoning x "
            f"{exp['think_tokens']} (an empty think block); tokens ours {ours['tokens']:,}, "
            f"TRL {trl['tokens']:,} (= ours + the think blocks): exact, on every run"
        )
    return lines


def _pick(runs: list[dict[str, Any]], n: int, side: str, w: int) -> dict[str, Any]:
    return next(r for r in runs if (r["size"], r["side"], r["workers"]) == (n, side, w))


def _rate(r: dict[str, Any]) -> float:
    return float(r["records"] / r["seconds"])


def goal(saved: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per worker count at the largest size: ours / TRL conversations/s, peak RSS, peak PSS."""
    runs = saved["runs"]
    n = max(r["size"] for r in runs)
    out = {}
    for w in sorted({r["workers"] for r in runs}):
        o, t = _pick(runs, n, "ours", w), _pick(runs, n, "trl", w)
        out[w] = {
            "speed": _rate(o) / _rate(t),
            "rss": o["peak_rss_mb"] / t["peak_rss_mb"],
            "pss": o["peak_pss_mb"] / t["peak_pss_mb"],
        }
    return out


def met(ratios: dict[str, float], memory: str = "rss") -> bool:
    return ratios["speed"] >= GOAL_SPEED and ratios[memory] <= GOAL_MEMORY


def report(saved: dict[str, Any]) -> str:
    runs = saved["runs"]
    sizes = sorted({r["size"] for r in runs})
    workers = sorted({r["workers"] for r in runs})
    out = [HEADER, *(row(r) for r in runs), "", *check(saved), ""]
    out += [
        "| conversations | workers | ours / TRL conv/s | ours / TRL peak tree RSS "
        "| ours / TRL peak tree PSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for w in workers:
            o, t = _pick(runs, n, "ours", w), _pick(runs, n, "trl", w)
            out.append(
                f"| {n:,} | {w} | {_rate(o) / _rate(t):.2f}x "
                f"| {o['peak_rss_mb'] / t['peak_rss_mb']:.2f}x "
                f"| {o['peak_pss_mb'] / t['peak_pss_mb']:.2f}x |"
            )
    if len(workers) > 1:
        lo, hi = workers[0], workers[-1]
        out += ["", f"| conversations | side | conv/s, {hi} workers / {lo} |", "|---:|---|---:|"]
        for n in sizes:
            for side in SIDES:
                ratio = _rate(_pick(runs, n, side, hi)) / _rate(_pick(runs, n, side, lo))
                out.append(f"| {n:,} | {side} | {ratio:.2f}x |")
    out += [
        "",
        *table_head(
            [
                "side", "workers",
                *(f"peak RSS above floor, {n:,}: MiB (bytes/token)" for n in sizes),
                "MiB more per 1k conversations",
            ]
        ),
    ]  # fmt: skip
    for side in SIDES:
        for w in workers:
            picked = [_pick(runs, n, side, w) for n in sizes]
            above = [r["peak_rss_mb"] - r["floor_rss_mb"] for r in picked]
            slope = (above[-1] - above[0]) / (sizes[-1] - sizes[0]) * 1000 if len(sizes) > 1 else 0
            cells = " | ".join(
                f"{m:,.0f} ({m * MIB / r['tokens']:.1f})"
                for m, r in zip(above, picked, strict=True)
            )
            out.append(f"| {side} | {w} | {cells} | {slope:.1f} |")
    out += [
        "",
        *table_head(
            ["side", "workers", *(f"peak anonymous PSS above floor, {n:,} (MiB)" for n in sizes)]
        ),
    ]
    for side in SIDES:
        for w in workers:
            picked = [_pick(runs, n, side, w) for n in sizes]
            cells = " | ".join(f"{r['peak_anon_mb'] - r['floor_anon_mb']:,.0f}" for r in picked)
            out.append(f"| {side} | {w} | {cells} |")
    trl = [r for r in runs if r["side"] == "trl"]
    out.append(
        "\nTRL's seconds include `load_dataset`: "
        + ", ".join(f"{r['load_seconds']:.1f}s at {r['size']:,} ({r['label']})" for r in trl)
    )
    verdicts = goal(saved)
    for memory in ("rss", "pss"):
        out.append(
            f"goal at {sizes[-1]:,} conversations (>= {GOAL_SPEED}x TRL's conversations/s with "
            f"<= {GOAL_MEMORY}x its peak tree {memory.upper()}, at each worker count): "
            + ("met" if all(met(v, memory) for v in verdicts.values()) else "not met")
            + "; "
            + ", ".join(
                f"{w} worker(s) {v['speed']:.2f}x speed, {v[memory]:.2f}x memory"
                for w, v in verdicts.items()
            )
        )
    return "\n".join(out)


def profile(workdir: Path, n: int, top: int) -> str:
    """cProfile of each side's preparation at `n` conversations, one process: top by own time."""
    out = []
    env = _env(workdir)
    for side in SIDES:
        stats_file = workdir / f"{side}.prof"
        r = measure(_command(workdir, side, n, 1, stats_file), env, workdir / "child.log")
        text = _stats_text(stats_file, top, side)
        out += [f"### cProfile, {side}, {n:,} conversations, 1 process ({r['seconds']:.1f}s "
                "under the profiler)", "```", text, "```"]  # fmt: skip
    return "\n".join(out)


# Where each side's time goes: (file suffix, function) -> what it does; cumulative seconds.
PHASES = {
    "ours": {
        ("training/data/formats.py", "parse_line"): "parse + validate (tool schemas normalised)",
        ("training/data/conversation.py", "normalize_tool"): "  of which tool schemas (cached)",
        (
            "inference/parsing/__init__.py",
            "normalize_tools",
        ): "  of which schema normalisation itself",
        ("training/data/render.py", "render"): "render (chat template, text)",
        ("training/data/render.py", "encode"): "tokenise + round-trip decode + mask",
        ("tokenizers.Tokenizer", "encode_batch"): "  of which the Rust tokenizer",
        ("training/data/render.py", "_decode_batch"): "  of which round-trip decode",
        ("training/data/render.py", "spans_to_token_mask"): "  of which loss masks",
        ("training/prepare.py", "spill"): "spill ids/labels to disk",
        ("training/data/packing.py", "best_fit"): "pack (best fit over the lengths)",
        ("training/data/spill.py", "write_spilled_packs"): "write shards, read back from the spill",
    },
    "trl": {
        ("datasets/load.py", "load_dataset"): "load_dataset (JSON -> Arrow)",
        ("trl/trainer/sft_trainer.py", "tokenize_fn"): "render + tokenise + mask, per record",
        ("trl/trainer/sft_trainer.py", "build_labels"): "labels from masks, per token",
        ("trl/data_utils.py", "_pack_bfd"): "pack (best fit, per 1,000-row batch)",
        ("datasets/arrow_writer.py", "write_examples_on_file"): "Arrow writes, per-record maps",
        ("datasets/arrow_writer.py", "write_table"): "Arrow writes, packing",
        ("datasets/fingerprint.py", "update_fingerprint"): "map fingerprints (hashing)",
    },
}


def _is(file: str, function: str, suffix: str, name: str) -> bool:
    """Whether a pstats entry is `name` in a file ending `suffix`, or builtin method `name` of
    type `suffix` (pstats files those under "~")."""
    if file == "~":
        return function == f"<method '{name}' of '{suffix}' objects>"
    return function == name and file.endswith(suffix)


def _stats_text(path: Path, top: int, side: str) -> str:
    import io

    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    total = next(line for line in lines if "function calls" in line)
    seconds = float(total.split(" in ")[1].split()[0])
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats' documented table
    phases = []
    for (suffix, name), what in PHASES[side].items():
        cum = sum(v[3] for (f, _, fn), v in raw.items() if _is(f, fn, suffix, name))
        phases.append(f"{what:<45} {cum:7.2f}s {cum / seconds:6.1%}")
    return "\n".join([total.strip(), *phases, "", *lines[start:]]).rstrip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SIZES[0]} conversations only")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="conversations, comma list")
    p.add_argument("--workers", default=",".join(map(str, WORKERS)), help="worker counts")
    p.add_argument(
        "--profile", choices=("auto", "on", "off"), default="auto",
        help="cProfile both sides at --profile-size (auto: when the goal is not met)",
    )  # fmt: skip
    p.add_argument("--profile-size", type=int, default=4_000, help="conversations profiled")
    p.add_argument("--top", type=int, default=20, help="profile entries shown")
    p.add_argument("--save", type=Path, default=Path("runs/bench-prepare.json"), help="results")
    p.add_argument("--report", type=Path, help="print the tables of a saved run and stop")
    for hidden in ("--child", "--workdir", "--input", "--tokenizer", "--profile-file"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not_a_run(a, child, report):
        return 0
    a.sizes = list(QUICK_SIZES) if a.quick else sorted(int(s) for s in a.sizes.split(","))
    a.workers = sorted(int(w) for w in a.workers.split(","))
    if a.quick:
        a.profile = "off"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        saved = collect(a, Path(tmp))
        a.save.parent.mkdir(parents=True, exist_ok=True)
        a.save.write_text(json.dumps(saved, indent=1))
        print()
        print(report(saved))
        missed = not all(met(v) for v in goal(saved).values())
        if a.profile == "on" or (a.profile == "auto" and missed):
            print()
            print(profile(Path(tmp), min(a.profile_size, max(a.sizes)), a.top))
    print(f"\n(total {time.perf_counter() - started:.0f}s; results saved to {a.save}; "
          f"`--report {a.save}` prints these tables again)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
