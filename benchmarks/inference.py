"""Benchmark: the shared completion parser (with schema validation) against a naive baseline.

    make bench-inference        # python -m benchmarks.inference [--count 3000] [--repeat 5]

Both parse the same few thousand recorded-style Qwen3 completions, generated deterministically
with known labels: well-formed single and parallel calls, reasoning with and without calls,
plain answers, and each kind of malformed output. The baseline is what a quick client does (a
regex for ``<tool_call>`` blocks and ``json.loads``, no validation). Reported: microseconds per
completion (best of `repeat` runs), and which share of malformed completions each one flags
(recall), how many of its flags are right (precision), and per kind of defect.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inference.parsing import compile_tools, parse_completion
from inference.smoke import WEATHER_TOOL

TOOLS: list[dict[str, Any]] = [
    WEATHER_TOOL,
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Search flights between two airports on a date.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "minLength": 3, "maxLength": 3},
                    "destination": {"type": "string", "minLength": 3, "maxLength": 3},
                    "date": {"type": "string"},
                    "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                },
                "required": ["origin", "destination", "date"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Send an email.",
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "subject": {"type": "string"},
                    "body": {"type": "string"},
                },
                "required": ["to", "subject", "body"],
            },
        },
    },
]
CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Sydney", "Toronto"]
AIRPORTS = ["CDG", "LHR", "HND", "BER", "MAD", "FCO", "SYD", "YYZ"]
THOUGHTS = [
    "The user asks about the weather, so I should call get_weather with the city.",
    "They want flights; I need origin, destination and the date before I can search.",
    "An email is requested. I have the recipient, a subject and the body, so I can send it.",
]
WELL_FORMED = ("single_call", "parallel_calls", "reasoning_only_answer", "plain_answer")
MALFORMED = (
    "truncated",
    "invalid_json",
    "not_an_object",
    "unknown_tool",
    "missing_argument",
    "extra_argument",
    "wrong_type",
    "constraint_violation",
)


@dataclass(frozen=True)
class Sample:
    text: str
    kind: str

    @property
    def malformed(self) -> bool:
        return self.kind in MALFORMED


def _good_call(rng: random.Random) -> dict[str, Any]:
    choice = rng.randrange(3)
    if choice == 0:
        args: dict[str, Any] = {"city": rng.choice(CITIES)}
        if rng.random() < 0.5:
            args["unit"] = rng.choice(["celsius", "fahrenheit"])
        return {"name": "get_weather", "arguments": args}
    if choice == 1:
        origin, destination = rng.sample(AIRPORTS, 2)
        args = {
            "origin": origin,
            "destination": destination,
            "date": f"2026-12-{rng.randint(1, 28):02d}",
        }
        if rng.random() < 0.5:
            args["passengers"] = rng.randint(1, 4)
        return {"name": "search_flights", "arguments": args}
    return {
        "name": "send_email",
        "arguments": {"to": ["ops@example.com"], "subject": "Status", "body": "All systems go."},
    }


def _block(call: Any) -> str:
    body = call if isinstance(call, str) else json.dumps(call, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def _think(rng: random.Random) -> str:
    return f"<think>\n{rng.choice(THOUGHTS)}\n</think>\n\n" if rng.random() < 0.7 else ""


def _broken(kind: str, rng: random.Random) -> str:  # noqa: PLR0911 - one branch per defect
    call = _good_call(rng)
    args = call["arguments"]
    if kind == "truncated":
        full = _block(call)
        return full[: rng.randint(len("<tool_call>\n") + 2, len(full) - len("</tool_call>") - 1)]
    if kind == "invalid_json":
        return _block(json.dumps(call).replace('"', "'", 4))
    if kind == "not_an_object":
        return _block(json.dumps([call]))
    if kind == "unknown_tool":
        return _block({"name": "get_forecast", "arguments": args})
    if kind == "missing_argument":
        args.pop(next(iter(args)))
        return _block(call)
    if kind == "extra_argument":
        args["verbose"] = True
        return _block(call)
    if kind == "wrong_type":
        key = next(iter(args))
        args[key] = 42 if isinstance(args[key], str | list) else "forty-two"
        return _block(call)
    if kind == "constraint_violation":  # right types, wrong values: enum, length, range
        if call["name"] == "get_weather":
            args["unit"] = "kelvin"
        elif call["name"] == "search_flights":
            args["origin"] = "Paris-Charles-de-Gaulle"
        else:
            args["to"] = []
        return _block(call)
    raise ValueError(kind)


def generate(count: int, seed: int = 0) -> list[Sample]:
    """`count` labelled completions: 60 % well-formed, 40 % malformed, shuffled."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    samples = []
    for i in range(count):
        if i % 10 < 6:
            kind = WELL_FORMED[i % len(WELL_FORMED)]
            if kind == "single_call":
                text = _think(rng) + _block(_good_call(rng))
            elif kind == "parallel_calls":
                text = _think(rng) + "\n".join(
                    _block(_good_call(rng)) for _ in range(rng.randint(2, 3))
                )
            elif kind == "reasoning_only_answer":
                answer = f"It is sunny in {rng.choice(CITIES)}."
                text = f"<think>\n{rng.choice(THOUGHTS)}\n</think>\n\n{answer}"
            else:
                text = "I can help with weather, flights and email. What do you need?"
        else:
            kind = MALFORMED[(i // 10 * 4 + i % 10 - 6) % len(MALFORMED)]
            good = _block(_good_call(rng)) + "\n" if rng.random() < 0.3 else ""
            text = _think(rng) + good + _broken(kind, rng)  # a valid sibling must survive
        end = "<|im_end|>" if kind != "truncated" else ""
        samples.append(Sample(text + end, kind))
    rng.shuffle(samples)
    return samples


_NAIVE_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def naive_flags(text: str) -> bool:
    """The baseline: regex out the blocks, json.loads each; malformed only if a load fails."""
    for body in _NAIVE_RE.findall(text):
        try:
            json.loads(body)
        except json.JSONDecodeError:
            return True
    return False


def _time_per_item(fn: Callable[[str], Any], texts: Sequence[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return best / len(texts) * 1e6


def run(count: int = 3000, repeat: int = 5) -> dict[str, Any]:
    samples = generate(count)
    texts = [s.text for s in samples]
    toolset = compile_tools(TOOLS)

    def ours(text: str) -> bool:
        return not parse_completion(text, toolset).ok

    results: dict[str, Any] = {"count": count, "malformed": sum(s.malformed for s in samples)}
    for name, fn in (("naive regex + json.loads", naive_flags), ("inference.parsing", ours)):
        flags = [fn(s.text) for s in samples]
        caught = Counter(s.kind for s, f in zip(samples, flags, strict=True) if f)
        true_pos = sum(f and s.malformed for s, f in zip(samples, flags, strict=True))
        results[name] = {
            "us_per_completion": _time_per_item(fn, texts, repeat),
            "recall": true_pos / results["malformed"],
            "precision": true_pos / max(1, sum(flags)),
            "by_kind": {k: caught[k] / sum(s.kind == k for s in samples) for k in MALFORMED},
        }
    return results


def format_table(results: dict[str, Any]) -> str:
    names = [k for k in results if isinstance(results[k], dict)]
    base, ours = (results[n] for n in names)
    lines = [
        f"{results['count']} completions, {results['malformed']} malformed "
        f"({results['malformed'] / results['count']:.0%})",
        "",
        "| parser | µs / completion | malformed caught (recall) | precision |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {results[n]['us_per_completion']:.1f} | {results[n]['recall']:.1%} | "
        f"{results[n]['precision']:.1%} |"
        for n in names
    ]
    ratio = ours["us_per_completion"] / base["us_per_completion"]
    lines += ["", f"inference.parsing costs {ratio:.1f}x the baseline's time.", ""]
    lines += ["| defect | " + " | ".join(names) + " |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {base['by_kind'][k]:.0%} | {ours['by_kind'][k]:.0%} |" for k in MALFORMED]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(format_table(run(args.count, args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
