"""What several benchmarks do alike: the head of a Markdown table whose columns are computed,
best-of-N wall-clock timing, the per-step clock on a Hugging Face `Trainer`, so each of those
numbers is timed one way (tables with fixed columns write their head as it reads), and the
two modes of a benchmark CLI that measure nothing (``--child``, ``--report``)."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any


def table_head(columns: Sequence[str], *, text: int = 1) -> list[str]:
    """A Markdown table's header and rule: the first `text` columns left-aligned (labels), the
    rest right-aligned (numbers)."""
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * text + "---:|" * (len(columns) - text),
    ]


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    """The fewest wall-clock seconds `fn()` took over `repeat` calls: the run least disturbed by
    whatever else the machine was doing."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def train_with_step_clock(trainer: Any, sync: Callable[[], None] | None = None) -> list[float]:
    """Run `trainer.train()`; return when it started, then when each optimizer step ended (after
    `sync()`, for a device that runs behind the host), so warm-up steps can be left out."""
    from transformers import TrainerCallback

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            if sync is not None:
                sync()
            ends.append(time.perf_counter())

    trainer.add_callback(Clock())
    start = time.perf_counter()
    trainer.train()
    return [start, *ends]


def not_a_run(
    a: argparse.Namespace,
    child: Callable[[argparse.Namespace], None],
    report: Callable[[dict[str, Any]], str],
) -> bool:
    """The benchmark CLIs' two modes that measure nothing here: ``--child`` (one variant in a
    subprocess of a run) and ``--report FILE`` (print a saved run's tables). True when one ran."""
    if a.child:
        child(a)
        return True
    if a.report:
        print(report(json.loads(a.report.read_text())))
        return True
    return False
