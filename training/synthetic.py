"""A deterministic, learnable synthetic tool-calling dataset for tests, the end-to-end run and the
benchmark: realistic tools with JSON Schemas, in the OpenAI `messages` format.

Learnable on purpose: every argument is spelled out in the user's words and drawn from small value
sets, and each tool has its own phrasing, so a tiny model learns which tool to call and what to
fill in within a few hundred steps. The mix: single calls, parallel calls, call -> result ->
answer, and chit-chat that needs no tool; some turns carry reasoning. A filler company policy in
the system prompt brings conversations to a target mean length (tool schemas sit in the system
turn as well, as in production).

    python -m training.synthetic --output runs/synthetic.jsonl --n 2000 --seed 0
    python -m training.synthetic --preference --output runs/preference.jsonl --n 2000 --seed 0

`--preference` writes DPO preference pairs instead (`training.synthetic_preference`): each
conversation's assistant turn as `chosen` and the same turn with one labelled mistake as `rejected`.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import cli
from training.data.conversation import Conversation, Message, build
from training.synthetic_catalog import (
    INTENTS,
    TOOL_COUNT_WEIGHTS,
    TOOL_COUNTS,
    TOOLS_BY_NAME,
    Intent,
)

CHITCHAT = (
    ("Hi there!", "Hello! How can I help you today?"),
    ("Thanks, that's all.", "You're welcome! Have a great day."),
    ("Who are you?", "I am an assistant that can look things up and act for you."),
    ("Tell me a joke.", "Why did the function return early? It had no arguments."),
    ("What is the capital of France?", "The capital of France is Paris."),
)
POLICY = (
    "Answer in the same language as the customer.",
    "Be concise and friendly, and never invent facts.",
    "Use a tool whenever the request needs live data or an action.",
    "Do not call a tool for small talk or general knowledge.",
    "Confirm bookings and purchases with the details the tool returned.",
    "Dates are written as YYYY-MM-DD and times as HH:MM in local time.",
    "Prices are shown with their currency code, for example 120 EUR.",
    "If a request is ambiguous, ask one short clarifying question.",
    "Customer data is confidential and must not be repeated to third parties.",
    "Escalate complaints about damaged orders to the support team.",
    "Refunds are processed within five business days of approval.",
    "Loyalty members receive free breakfast at partner hotels.",
    "Flights may be changed free of charge up to 24 hours before departure.",
    "Weather reports refer to the current conditions in the city centre.",
    "Stock prices are delayed by fifteen minutes and are not investment advice.",
    "Emails are sent from the customer's verified address only.",
)
# Rendered tokens per character (measured with `training.tiny`'s tokenizer: JSON-heavy records
# and policy prose differ) and the chat template's fixed tools preamble, for estimating lengths
# without a tokenizer.
TOKENS_PER_CHAR = 0.383
PROSE_TOKENS_PER_CHAR = 0.5
TEMPLATE_TOKENS = 79
POLICY_HEADER = "\n\nPolicy:\n"


def _estimate_tokens(conv: Conversation) -> int:
    system = conv.messages[0].content
    prose = len(system) - system.index(POLICY_HEADER) if POLICY_HEADER in system else 0
    chars = len(json.dumps(conv.to_record()))
    return int(TEMPLATE_TOKENS + (chars - prose) * TOKENS_PER_CHAR + prose * PROSE_TOKENS_PER_CHAR)


def _conversation(
    r: random.Random, intents: list[Callable[[random.Random], Intent]]
) -> tuple[list[Message], list[str], str]:
    """Messages (after the system turn), the tools they need, and the scenario's name."""
    roll = r.random()
    think = r.random() < 0.3
    if roll < 0.15:
        ask, answer = r.choice(CHITCHAT)
        return [Message("user", ask), Message("assistant", answer)], [], "no_call"
    if roll < 0.35:
        two_tools = len(intents) > 1 and r.random() < 0.6
        a, b = r.sample(intents, 2) if two_tools else [r.choice(intents)] * 2
        first, second = a(r), b(r)
        while second.call == first.call:
            second = b(r)
        ask = f"{first.ask} Also, {second.ask[0].lower()}{second.ask[1:]}"
        why = f"Two requests: {first.why} {second.why}" if think else None
        calls = (first.call, second.call)
        return (
            [Message("user", ask), Message("assistant", "", why, calls)],
            [first.call.name, second.call.name],
            "parallel",
        )
    intent = r.choice(intents)(r)
    why = intent.why if think else None
    call = Message("assistant", "", why, (intent.call,))
    if roll < 0.6:
        return [Message("user", intent.ask), call], [intent.call.name], "single"
    return (
        [
            Message("user", intent.ask),
            call,
            Message("tool", json.dumps(intent.result)),
            Message("assistant", intent.answer),
        ],
        [intent.call.name],
        "multi_step",
    )


def generate(
    n: int,
    seed: int = 0,
    *,
    mean_tokens: int = 800,
    count_tokens: Callable[[Conversation], int] | None = None,
    tools: Sequence[str] | None = None,
    max_tools: int = max(TOOL_COUNTS),
) -> list[Conversation]:
    """`n` conversations, the same for the same `seed`, of `mean_tokens` rendered tokens on average.

    Lengths are estimated for the tiny tokenizer; pass `count_tokens` (`rendered_length(tok)`)
    to hit `mean_tokens` for another one. Filler only lengthens: below the natural length
    (about 720 tiny-tokenizer tokens, mostly tool schemas) a smaller target changes nothing.

    `tools` restricts the catalog (requests and distractors) and `max_tools` caps the tools
    offered per conversation: an easier, shorter set (``tools=["get_weather", "get_time"],
    max_tools=2, mean_tokens=0``, about 300 tokens) that a tiny model learns in fewer steps.
    """
    names_allowed = list(tools or INTENTS)
    if unknown := set(names_allowed) - set(INTENTS):
        raise ValueError(f"unknown tools {sorted(unknown)}; the catalog has {sorted(INTENTS)}")
    intents = [INTENTS[name] for name in names_allowed]
    r = random.Random(seed)  # noqa: S311 -- reproducible data, not secrets
    measure = count_tokens or _estimate_tokens
    empty = measure(_bare(POLICY_HEADER))
    policy_tokens = {s: measure(_bare(f"{POLICY_HEADER}- {s}")) - empty for s in POLICY}
    total, out = 0, []
    for i in range(n):
        system = "You are the assistant of Contoso Travel & Retail."
        messages, needed, kind = _conversation(r, intents)
        distractors = [t for t in names_allowed if t not in needed]
        count = min(r.choices(TOOL_COUNTS, TOOL_COUNT_WEIGHTS)[0], max_tools)
        names = list(dict.fromkeys(needed)) + r.sample(
            distractors, min(len(distractors), max(0, count - len(set(needed))))
        )
        r.shuffle(names)
        offered = [TOOLS_BY_NAME[name] for name in names]
        conv = build([Message("system", system), *messages], offered, meta={"kind": kind})
        # Aim each conversation at a spread around the mean, correcting the running total so
        # the mean lands on target even when some conversations are already long.
        target = r.uniform(0.6, 1.4) * mean_tokens + (mean_tokens * i - total) * 0.5
        budget = target - measure(conv)
        policy = []
        while budget > 0:
            sentence = r.choice(POLICY)
            policy.append(sentence)
            budget -= policy_tokens[sentence]
        if policy:
            system = system + POLICY_HEADER + "\n".join(f"- {s}" for s in policy)
            conv = build([Message("system", system), *messages], offered, meta={"kind": kind})
        total += measure(conv)
        out.append(conv)
    return out


def rendered_length(tokenizer: Any) -> Callable[[Conversation], int]:
    """`count_tokens` for `generate`: the exact rendered length with `tokenizer` (slower)."""
    from training.data.render import render_text

    return lambda conv: len(tokenizer(render_text(tokenizer, conv))["input_ids"])


def _bare(system: str) -> Conversation:
    return Conversation((Message("system", system), Message("assistant", "")))


def write(path: Path, conversations: list[Conversation]) -> Path:
    return _write_jsonl(path, [conv.to_record() for conv in conversations])


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


@dataclass(frozen=True)
class SyntheticArgs:
    """``python -m training.synthetic``'s options."""

    output: Path = field(metadata={"help": "JSONL file to write"})
    n: int = field(default=1000, metadata={"help": "number of conversations"})
    seed: int = field(default=0, metadata={"help": "same seed, same data"})
    mean_tokens: int = field(default=800, metadata={"help": "target mean rendered length (tokens)"})
    tools: list[str] | None = field(
        default=None,
        metadata={"nargs": "+", "choices": sorted(INTENTS), "help": "restrict the catalog"},
    )
    max_tools: int = field(
        default=max(TOOL_COUNTS), metadata={"help": "most tools one conversation offers"}
    )
    preference: bool = cli.switch(
        "write DPO preference pairs (prompt, chosen, rejected, tools, meta) instead"
    )


parse_args = cli.args_parser(SyntheticArgs, __doc__, module="training.synthetic")


def main(args: SyntheticArgs) -> int:
    convs = generate(
        args.n, args.seed, mean_tokens=args.mean_tokens, tools=args.tools, max_tools=args.max_tools
    )
    if args.preference:
        from training.synthetic_preference import preference_pairs

        print(_write_jsonl(args.output, preference_pairs(convs, args.seed)))
    else:
        print(write(args.output, convs))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
