"""Data for `benchmarks.train`: conversation mixes, tokenised by the product, and step plans.

A mix sets what drives a trainer comparison: mean length, its spread, the share of tokens that
carry loss, and the tools offered per conversation. Conversations start from `training.synthetic`
and are lengthened with plain words: in the final assistant answer (loss-bearing) to reach the
loss share, in the system turn (no loss) to reach each conversation's drawn length. Every variant
then gets tokens and masks from `training.prepare` (its packs for us, its unpacked examples for
TRL), so the benchmark measures the product's own data path.

The step plan gives every variant the same real-token budget per optimizer step: our packs in
file order, and, for padded variants, sets of a fixed number of conversations chosen so that each
step's real tokens match our step's within `BUDGET_TOLERANCE`.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data.packing import IGNORE_INDEX, Pack, PackedDataset, write_packs

BUDGET_TOLERANCE = 0.01  # each padded step's real tokens within 1% of ours (the issue asks 2%)
FILLER = (  # plain words to lengthen conversations with
    "the order ships from our central warehouse and the customer can follow each parcel "
    "online while support staff answer questions about delivery windows returns and refunds"
)


@dataclass(frozen=True)
class Mix:
    """A data mix; `loss_fraction=None` keeps the generator's own (schema-heavy, ~10%)."""

    name: str
    mean_tokens: int
    spread: float  # coefficient of variation of conversation lengths
    loss_fraction: float | None
    max_tools: int

    def describe(self) -> str:
        loss = "generator's own" if self.loss_fraction is None else f"{self.loss_fraction:.0%}"
        return (
            f"{self.name}: mean {self.mean_tokens} tokens, spread {self.spread:.0%}, loss share "
            f"{loss}, up to {self.max_tools} tools"
        )


MIXES = {
    # Close to the held-out tool conversations a review measured (mean 770, ~27% loss-bearing).
    "heldout-like": Mix("heldout-like", 770, 0.35, 0.27, 3),
    # The generator as it is: long tool schemas, short answers.
    "schema-heavy": Mix("schema-heavy", 800, 0.0, None, 6),
    # Few tools, long answers: loss-bearing tokens dominate.
    "answer-heavy": Mix("answer-heavy", 700, 0.2, 0.45, 2),
}


def _words(n: int, offset: int) -> str:
    words = FILLER.split()
    return " ".join(words[(offset + i) % len(words)] for i in range(max(0, n)))


def _lengthen(conv: Any, *, answer_words: int, system_words: int, offset: int) -> Any:
    """Words appended to the last assistant answer and to the system turn."""
    from training.data.conversation import Message

    messages = list(conv.messages)
    last = max(i for i, m in enumerate(messages) if m.role == "assistant")
    if answer_words:
        m = messages[last]
        messages[last] = replace(m, content=f"{m.content} {_words(answer_words, offset)}".strip())
    if system_words:
        if messages[0].role == "system":
            m = messages[0]
            text = f"{m.content}\n{_words(system_words, offset + 7)}"
            messages[0] = replace(m, content=text)
        else:
            messages.insert(0, Message(role="system", content=_words(system_words, offset + 7)))
    return replace(conv, messages=tuple(messages))


def conversations(mix: Mix, n: int, tokenizer: Any, *, max_length: int, seed: int = 0) -> list[Any]:
    """`n` conversations of `mix`, lengths measured with the product's renderer and tokenizer."""
    from training import synthetic
    from training.data.render import encode_conversation

    def measure(c: Any) -> tuple[int, int]:
        ex = encode_conversation(tokenizer, c, max_length=1 << 20)
        return len(ex.input_ids), ex.num_loss_tokens

    if mix.loss_fraction is None:
        return synthetic.generate(
            n, seed, mean_tokens=mix.mean_tokens, max_tools=mix.max_tools,
            count_tokens=lambda c: measure(c)[0],
        )  # fmt: skip
    base = synthetic.generate(n, seed, mean_tokens=0, max_tools=mix.max_tools)
    longer = measure(_lengthen(base[0], answer_words=200, system_words=0, offset=0))[0]
    per_word = (longer - measure(base[0])[0]) / 200
    rng = random.Random(seed)  # noqa: S311 -- reproducible data, not secrets
    sigma = math.sqrt(math.log1p(mix.spread**2))
    draws = [math.exp(rng.gauss(-(sigma**2) / 2, sigma)) for _ in base]
    measured = [measure(c) for c in base]
    scale, out = 1.0, base
    for _ in range(4):  # conversations cannot shrink: rescale the targets until the mean fits
        out = []
        for i, (conv, (length, loss), z) in enumerate(zip(base, measured, draws, strict=True)):
            target = min(max(scale * mix.mean_tokens * z, length), max_length * 0.95)
            add_loss = max(0.0, mix.loss_fraction * target - loss)
            add_other = max(0.0, target - length - add_loss)
            out.append(
                _lengthen(
                    conv, answer_words=round(add_loss / per_word),
                    system_words=round(add_other / per_word), offset=i,
                )
            )  # fmt: skip
        mean = statistics.mean(measure(c)[0] for c in out)
        if abs(mean - mix.mean_tokens) <= 0.02 * mix.mean_tokens:
            break
        scale *= mix.mean_tokens / mean
    return out


@dataclass(frozen=True)
class Examples:
    """Token ids and labels (IGNORE_INDEX off-loss, unshifted) as `training.prepare` wrote them."""

    input_ids: list[list[int]]
    labels: list[list[int]]

    def stats(self) -> dict[str, float]:
        lengths = [len(x) for x in self.input_ids]
        loss = sum(sum(t != IGNORE_INDEX for t in y) for y in self.labels)
        return {
            "conversations": len(lengths),
            "mean_tokens": statistics.mean(lengths),
            "spread": statistics.pstdev(lengths) / statistics.mean(lengths),
            "loss_fraction": loss / sum(lengths),
        }


def prepare(conversations_file: Path, tokenizer_dir: Path, out: Path, *, max_length: int) -> None:
    """`training.prepare` twice: packs (ours) and unpacked examples (TRL's input)."""
    from training import prepare as prep

    for pack in (True, False):
        prep.main(
            prep.PrepareArgs(
                input=conversations_file, output=out / ("packs" if pack else "examples"),
                tokenizer=str(tokenizer_dir), max_length=max_length, pack=pack, quiet=True,
                max_bad_fraction=0.0,
            )
        )  # fmt: skip


def read_examples(directory: Path) -> Examples:
    ids, labels = [], []
    with (directory / "train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["input_ids"])
            labels.append(row["labels"])
    return Examples(ids, labels)


def our_step_tokens(packs_dir: Path, micro_per_step: int, steps: int) -> list[int]:
    """Real tokens per step when our loader reads packs in file order (the benchmark's order)."""
    ds = PackedDataset(packs_dir)
    need = micro_per_step * steps
    if len(ds) < need:
        raise ValueError(f"{len(ds)} packs, {need} needed: raise --conversations")
    sizes = [ds[i].num_tokens for i in range(need)]
    return [sum(sizes[s * micro_per_step : (s + 1) * micro_per_step]) for s in range(steps)]


def padded_plan(examples: Examples, targets: list[int], per_step: int, seed: int = 0) -> list[int]:
    """Example indices, `per_step` a step, each step's tokens within tolerance of its target;
    no conversation is used twice."""
    lengths = [len(x) for x in examples.input_ids]
    rng = random.Random(seed)  # noqa: S311
    pool = set(range(len(lengths)))
    order: list[int] = []
    for target in targets:
        if len(pool) < per_step:
            raise ValueError(
                f"{len(lengths)} conversations cannot fill the steps: raise --conversations"
            )
        for _ in range(20000):
            head = rng.sample(sorted(pool), per_step - 1)
            need = target - sum(lengths[i] for i in head)
            last = min(pool - set(head), key=lambda i: (abs(lengths[i] - need), i))
            if abs(lengths[last] - need) <= BUDGET_TOLERANCE * target:
                break
        else:
            raise ValueError(f"no {per_step} conversations sum to {target} tokens within tolerance")
        order += [*head, last]
        pool -= {*head, last}
    return order


def write_padded_packs(
    examples: Examples, order: list[int], batch: int, pad_id: int, out: Path
) -> None:
    """One pack per padded micro-batch: `batch` conversations, each padded to the longest."""
    packs = []
    for start in range(0, len(order), batch):
        members = order[start : start + batch]
        width = max(len(examples.input_ids[i]) for i in members)
        ids, labels = [], []
        for i in members:
            pad = width - len(examples.input_ids[i])
            ids += [*examples.input_ids[i], *([pad_id] * pad)]
            labels += [*examples.labels[i], *([IGNORE_INDEX] * pad)]
        packs.append(
            Pack(
                np.asarray(ids, dtype=np.int32),
                np.asarray(labels, dtype=np.int32),
                np.asarray([width] * len(members), dtype=np.int32),
            )
        )
    write_packs(out, packs, pack_length=max(p.num_tokens for p in packs))
