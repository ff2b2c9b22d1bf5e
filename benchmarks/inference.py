"""Benchmark: the shared completion parser against the peers a team would really use instead.

    make bench-inference        # python -m benchmarks.inference [--count 3000] [--repeat 5]

Why it is built this way (so that its numbers cannot mislead):

* Labels come from construction, never from a parser: the generator writes each completion and
  knows what it broke. A completion is either ``valid`` (ordinary, or a hard negative) with the
  exact calls it carries, or one of the `DEFECTS`.
* Hard negatives are valid completions that look suspicious (`HARD_NEGATIVES`), so that precision
  means something: a peer that flags anything odd loses there.
* The peers are what a team would really write or use: a fair hand-rolled baseline (regex +
  ``json.loads`` + tool-name lookup + ``jsonschema`` + unclosed-tag check), transformers'
  ``tokenizer.parse_response`` with the Qwen3 response templates that ship with the pinned
  packages (TRL's ``add_response_schema`` and ``transformers serve``'s built-in fallback), and
  vLLM's ``hermes`` tool parser (what LMI applies server-side), which is named as not measured
  when vLLM is not installed: it is never re-implemented from memory.

The format follows Qwen3's chat template: content, then ``<tool_call>\\n{json}\\n</tool_call>``
blocks, then ``<|im_end|>``. ``<tool_call>`` is one added token with no escape mechanism, and
vLLM's hermes parser takes every block anywhere in the output, so a literal tag inside a markdown
code block *is* a call by the format's semantics; whether the model meant one is ambiguous, so
no completion here puts angle-bracket tags in prose, code blocks or reasoning. The hard
negatives are unambiguous instead: the word tool_call in prose, HTML-escaped tags, call-shaped
JSON in prose or a code block without tags, JSON text inside string arguments, unicode, whitespace
variants, many calls in one turn, reasoning that talks about tools, an empty think block and
values exactly at the schemas' bounds. The benchmark's tool schemas set
``additionalProperties: false``, so an undeclared argument is a defect by the schema itself.

How each peer is scored: a peer *flags* a completion when it reports a problem (the product: any
`ParseError`; the baseline: any failed check; transformers: ``parse_response`` raises). Recall
per defect kind is flagged / count; precision is flags on malformed / all flags. On a valid
completion a peer is right only if it does not flag it *and* extracts exactly the expected calls
(name and arguments, in order); "wrong calls" counts valid completions it did not flag but whose
extracted calls differ: silent errors, which precision cannot see. Microseconds per completion
are the best of `--repeat` passes over all completions.

A second table times hostile inputs (`adversarial`): thousands of unclosed tags at two sizes four
times apart (a linear parser takes about four times as long; the quadratic scanner it replaced
took 20 s for 100k tags), a huge integer, deep nesting, a completion over the parser's length
cap, and one long SSE line arriving a byte at a time. Its timings live here, not in the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from benchmarks.common import best_seconds
from inference.parsing import ErrorKind, compile_tools, parse_completion
from inference.smoke import WEATHER_TOOL


def _closed(tool: dict[str, Any]) -> dict[str, Any]:
    """`tool` with `additionalProperties: false`: an undeclared argument breaks its schema."""
    function = tool["function"]
    parameters = {**function["parameters"], "additionalProperties": False}
    return {**tool, "function": {**function, "parameters": parameters}}


TOOLS: list[dict[str, Any]] = [
    _closed(WEATHER_TOOL),
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
                "additionalProperties": False,
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
                "additionalProperties": False,
            },
        },
    },
]
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools when they help."},
    {"role": "user", "content": "Check the weather, find me a flight and email the team."},
]
CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Sydney", "Toronto"]
UNICODE_CITIES = ["São Paulo", "Zürich", "Kraków", "東京", "Москва", "Reykjavík", "İstanbul"]
AIRPORTS = ["CDG", "LHR", "HND", "BER", "MAD", "FCO", "SYD", "YYZ"]
THOUGHTS = [
    "The user asks about the weather, so I should call get_weather with the city.",
    "They want flights; I need origin, destination and the date before I can search.",
    "An email is requested. I have the recipient, a subject and the body, so I can send it.",
]
END = "<|im_end|>"

VALID_KINDS = (
    "single_call",
    "parallel_calls",
    "reasoning_then_call",
    "reasoning_then_answer",
    "plain_answer",
)
HARD_NEGATIVES = (
    "prose_mentions_tags",  # the word tool_call, or HTML-escaped tags, in the content
    "json_in_prose",  # a call-shaped JSON object in a sentence, no tags
    "json_in_code_block",  # a call-shaped JSON object in a ```json block, no tags
    "nested_json_string",  # an argument whose value is JSON text (braces, quotes, "name")
    "unicode",  # non-ASCII arguments, raw or \u-escaped
    "whitespace_variants",  # compact, pretty-printed, tabs, blank lines around tags and JSON
    "many_calls",  # four to six calls in one turn
    "reasoning_about_tools",  # <think> names tools and shows call JSON, without tags
    "empty_think",  # thinking switched off: an empty <think></think> block
    "boundary_values",  # values exactly at the schema's limits
)
DEFECTS = (
    "truncated",  # output stops inside the call JSON (no </tool_call>, no <|im_end|>)
    "unclosed_tool_call",  # complete JSON but </tool_call> missing before <|im_end|>
    "missing_open_tag",  # {json}</tool_call> without the opening <tool_call>
    "unclosed_think",  # <think> never closed
    "invalid_json",
    "not_an_object",  # the call body is a JSON array or string
    "missing_name",  # no "name", an empty one, or null
    "arguments_not_object",  # "arguments" double-encoded as a string, or a list
    "unknown_tool",
    "missing_argument",  # a required argument absent
    "extra_argument",  # an argument the schema does not declare
    "wrong_type",
    "constraint_violation",  # right type, value outside enum / length / range / minItems
)
# The product parser's typed error for each defect: the test holds the generator to it.
EXPECTED_ERROR: dict[str, ErrorKind] = {
    "truncated": ErrorKind.UNCLOSED_TAG,
    "unclosed_tool_call": ErrorKind.UNCLOSED_TAG,
    "missing_open_tag": ErrorKind.STRAY_TAG,
    "unclosed_think": ErrorKind.UNCLOSED_TAG,
    "invalid_json": ErrorKind.INVALID_JSON,
    "not_an_object": ErrorKind.NOT_AN_OBJECT,
    "missing_name": ErrorKind.MISSING_NAME,
    "arguments_not_object": ErrorKind.INVALID_ARGUMENTS,
    "unknown_tool": ErrorKind.UNKNOWN_TOOL,
    "missing_argument": ErrorKind.MISSING_ARGUMENT,
    "extra_argument": ErrorKind.UNEXPECTED_ARGUMENT,
    "wrong_type": ErrorKind.WRONG_TYPE,
    "constraint_violation": ErrorKind.SCHEMA_VIOLATION,
}

Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Sample:
    """One completion and its label by construction: its kind and, when valid, its calls."""

    text: str
    kind: str
    calls: tuple[Call, ...] = ()

    @property
    def malformed(self) -> bool:
        return self.kind in DEFECTS


# --- generation -------------------------------------------------------------------------------


def _call(rng: random.Random) -> dict[str, Any]:
    """A valid call of one of the three tools, with optional arguments sometimes present."""
    choice = rng.randrange(3)
    if choice == 0:
        args: dict[str, Any] = {"city": rng.choice(CITIES)}
        if rng.random() < 0.5:
            args["unit"] = rng.choice(["celsius", "fahrenheit"])
        return {"name": "get_weather", "arguments": args}
    if choice == 1:
        origin, destination = rng.sample(AIRPORTS, 2)
        args = {"origin": origin, "destination": destination}
        args["date"] = f"2026-12-{rng.randint(1, 28):02d}"
        if rng.random() < 0.5:
            args["passengers"] = rng.randint(1, 4)
        return {"name": "search_flights", "arguments": args}
    subject = rng.choice(["Status", "Weekly report", "Flight options"])
    body = rng.choice(["All systems go.", "See the numbers below.", "Two options found."])
    args = {"to": ["ops@example.com"], "subject": subject, "body": body}
    return {"name": "send_email", "arguments": args}


def _block(call: Any, *, ensure_ascii: bool = False) -> str:
    """A call as Qwen3's chat template renders it; a `str` is used as the body verbatim."""
    body = call if isinstance(call, str) else json.dumps(call, ensure_ascii=ensure_ascii)
    return f"<tool_call>\n{body}\n</tool_call>"


def _blocks(calls: Sequence[dict[str, Any]]) -> str:
    return "\n".join(_block(c) for c in calls)


def _think(rng: random.Random, always: bool = False) -> str:
    if always or rng.random() < 0.7:
        return f"<think>\n{rng.choice(THOUGHTS)}\n</think>\n\n"
    return ""


def _expect(calls: Sequence[dict[str, Any]]) -> tuple[Call, ...]:
    return tuple((c["name"], c["arguments"]) for c in calls)


def _valid(kind: str, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """An ordinary well-formed completion: (text without the end token, its calls)."""
    if kind == "single_call":
        calls = [_call(rng)]
        return _blocks(calls), calls
    if kind == "parallel_calls":
        calls = [_call(rng) for _ in range(rng.randint(2, 3))]
        return _think(rng) + _blocks(calls), calls
    if kind == "reasoning_then_call":
        calls = [_call(rng) for _ in range(rng.randint(1, 2))]
        return _think(rng, always=True) + _blocks(calls), calls
    if kind == "reasoning_then_answer":
        return _think(rng, always=True) + f"It is sunny in {rng.choice(CITIES)}.", []
    return "I can help with weather, flights and email. What do you need?", []


def _hard_negative(kind: str, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:  # noqa: PLR0911, PLR0912
    """A valid completion that looks suspicious: (text without the end token, its calls)."""
    if kind == "prose_mentions_tags":
        calls = [_call(rng)] if rng.random() < 0.5 else []
        prose = rng.choice(
            [
                "I'll send this as a tool_call; the JSON goes between the tool_call tags.",
                "In HTML you would write &lt;tool_call&gt;{...}&lt;/tool_call&gt; for that.",
                "No tool_call is needed: the /tool_call endpoint is documented elsewhere.",
            ]
        )
        return prose + ("\n\n" + _blocks(calls) if calls else ""), calls
    if kind == "json_in_prose":
        shown = json.dumps(_call(rng))
        return f"If you confirm, the request would be {shown} and nothing else.", []
    if kind == "json_in_code_block":
        shown = json.dumps(_call(rng), indent=2)
        calls = [_call(rng)] if rng.random() < 0.5 else []
        text = f"Here is what such a request looks like:\n\n```json\n{shown}\n```\n"
        return text + ("\n" + _blocks(calls) if calls else ""), calls
    if kind == "nested_json_string":
        payload = {"name": "report", "arguments": {"rows": [1, 2]}, "note": 'a "quoted" word'}
        body = rng.choice([json.dumps(payload), json.dumps(payload, indent=2), "{}", "[1, {}]"])
        args = {"to": ["ops@example.com"], "subject": 'Re: {"name": "x"}', "body": body}
        call = {"name": "send_email", "arguments": args}
        return _think(rng) + _block(call), [call]
    if kind == "unicode":
        weather = {"name": "get_weather", "arguments": {"city": rng.choice(UNICODE_CITIES)}}
        args = {"to": ["équipe@example.com"], "subject": "Météo ✅", "body": "naïve café — 100 €"}
        email = {"name": "send_email", "arguments": args}
        escaped = rng.random() < 0.5  # \u escapes in the JSON instead of raw characters
        text = "\n".join(_block(c, ensure_ascii=escaped) for c in (weather, email))
        return text, [weather, email]
    if kind == "whitespace_variants":
        calls = [_call(rng) for _ in range(rng.randint(1, 3))]
        style = rng.randrange(4)
        if style == 0:  # compact: no newlines at all
            text = "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)
        elif style == 1:  # pretty-printed JSON, blank lines between calls
            text = "\n\n".join(_block(json.dumps(c, indent=2)) for c in calls)
        elif style == 2:  # tabs and spaces around the JSON, compact separators
            text = "\n".join(
                f"<tool_call> \t{json.dumps(c, separators=(',', ':'))}\t \n</tool_call>"
                for c in calls
            )
        else:  # leading newlines before the think block, trailing newline before the end
            text = "\n\n" + _think(rng, always=True) + _blocks(calls) + "\n"
        return text, calls
    if kind == "many_calls":
        calls = [_call(rng) for _ in range(rng.randint(4, 6))]
        return _think(rng) + _blocks(calls), calls
    if kind == "reasoning_about_tools":
        city = rng.choice(CITIES)
        thought = (
            f"I could call get_weather or search_flights. The tool_call should carry "
            f'{{"name": "get_weather", "arguments": {{"city": "{city}"}}}} and nothing more.'
        )
        calls = [{"name": "get_weather", "arguments": {"city": city}}]
        if rng.random() < 0.3:
            return f"<think>\n{thought}\n</think>\n\nI need your confirmation first.", []
        return f"<think>\n{thought}\n</think>\n\n" + _blocks(calls), calls
    if kind == "empty_think":
        calls = [_call(rng) for _ in range(rng.randint(0, 2))]
        return "<think>\n\n</think>\n\n" + (_blocks(calls) or "Sure, ask away."), calls
    if kind == "boundary_values":
        origin, destination = rng.sample(AIRPORTS, 2)
        passengers = rng.choice([1, 9])
        flight = {"origin": origin, "destination": destination, "date": "2026-12-31"}
        calls = [
            {"name": "search_flights", "arguments": flight | {"passengers": passengers}},
            {"name": "get_weather", "arguments": {"city": "Rome", "unit": "fahrenheit"}},
        ]
        return _blocks(calls), calls
    raise ValueError(kind)


def _defect(kind: str, rng: random.Random) -> str:  # noqa: PLR0911, PLR0912
    """A completion with exactly one defect of `kind`, for most kinds maybe after a valid call."""
    lead = _think(rng) + (_block(_call(rng)) + "\n" if rng.random() < 0.3 else "")
    call = _call(rng)
    args = call["arguments"]
    if kind == "truncated":  # cut strictly inside the JSON, so the body is never valid JSON
        body = json.dumps(call)
        return lead + "<tool_call>\n" + body[: rng.randint(1, len(body) - 1)]
    if kind == "unclosed_tool_call":
        return lead + "<tool_call>\n" + json.dumps(call) + "\n" + END
    if kind == "missing_open_tag":
        return lead + json.dumps(call) + "\n</tool_call>" + END
    if kind == "unclosed_think":
        tail = rng.choice([_block(call) + END, "so the next step is to"])
        return f"<think>\n{rng.choice(THOUGHTS)}\n\n" + tail
    if kind == "invalid_json":
        text = json.dumps(call)
        broken = rng.choice(
            [
                text.replace('"', "'", 4),  # single quotes
                text[:-2] + ",}}",  # trailing comma
                text[:-1],  # a brace short
                text.replace('"name"', "name", 1),  # unquoted key
            ]
        )
        return lead + _block(broken) + END
    if kind == "not_an_object":
        return lead + _block(json.dumps(rng.choice([[call], call["name"]]))) + END
    if kind == "missing_name":
        choice = rng.randrange(3)
        nameless: dict[str, Any] = {"arguments": args}
        if choice:
            nameless = {"name": "" if choice == 1 else None, "arguments": args}
        return lead + _block(nameless) + END
    if kind == "arguments_not_object":
        wrapped = json.dumps(args) if rng.random() < 0.7 else [args]
        return lead + _block({"name": call["name"], "arguments": wrapped}) + END
    if kind == "unknown_tool":
        name = rng.choice(["get_forecast", "search_flight", "book_hotel"])
        return lead + _block({"name": name, "arguments": args}) + END
    if kind == "missing_argument":
        args.pop(next(iter(args)))  # the first argument of every tool is required
        return lead + _block(call) + END
    if kind == "extra_argument":
        args[rng.choice(["verbose", "units", "priority"])] = rng.choice([True, "metric", 1])
        return lead + _block(call) + END
    if kind == "wrong_type":
        key = next(iter(args))
        args[key] = 42 if isinstance(args[key], str | list) else "forty-two"
        return lead + _block(call) + END
    if kind == "constraint_violation":
        if call["name"] == "get_weather":
            args["unit"] = "kelvin"
        elif call["name"] == "search_flights":
            if rng.random() < 0.5:
                args["origin"] = "Paris-Charles-de-Gaulle"
            else:
                args["passengers"] = rng.choice([0, 12])
        else:
            args["to"] = []
        return lead + _block(call) + END
    raise ValueError(kind)


# Each cycle: the ordinary valid kinds twice, each hard negative and each defect once.
_SCHEDULE = VALID_KINDS * 2 + HARD_NEGATIVES + DEFECTS


def generate(count: int, seed: int = 0) -> list[Sample]:
    """`count` completions labelled by construction, in a seeded shuffle (about 58 % valid)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    samples = []
    for i in range(count):
        kind = _SCHEDULE[i % len(_SCHEDULE)]
        if kind in DEFECTS:
            samples.append(Sample(_defect(kind, rng), kind))
            continue
        text, calls = (_hard_negative if kind in HARD_NEGATIVES else _valid)(kind, rng)
        samples.append(Sample(text + END, kind, _expect(calls)))
    rng.shuffle(samples)
    return samples


# --- peers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a peer made of one completion: did it report a problem, and which calls it found."""

    flagged: bool
    calls: list[tuple[Any, Any]]  # (name, arguments) as the peer extracted them


@dataclass(frozen=True)
class Peer:
    name: str
    what: str
    parse: Callable[[str], Outcome] | None  # None: not measured
    reason: str = ""  # why not measured


_BASELINE = "regex + json.loads + name lookup + jsonschema + tag check"
_BLOCK_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


class HandRolled:
    """The fair baseline a team writes in an afternoon: regex + ``json.loads`` + tool-name lookup
    + ``jsonschema`` validation of the arguments + an unclosed-tag check (tag counts)."""

    def __init__(self, tools: Sequence[dict[str, Any]]) -> None:
        self.validators = {
            t["function"]["name"]: Draft202012Validator(t["function"]["parameters"]) for t in tools
        }

    def __call__(self, text: str) -> Outcome:
        flagged = text.count("<tool_call>") != text.count("</tool_call>") or (
            "<think>" in text and "</think>" not in text
        )
        calls: list[tuple[Any, Any]] = []
        for body in _BLOCK_RE.findall(text):
            try:
                obj = json.loads(body)
            except ValueError:
                flagged = True
                continue
            name = obj.get("name") if isinstance(obj, dict) else None
            validator = self.validators.get(name) if isinstance(name, str) else None
            arguments = obj.get("arguments", {}) if isinstance(obj, dict) else None
            if validator is None or not validator.is_valid(arguments):
                flagged = True
                continue
            calls.append((name, arguments))
        return Outcome(flagged, calls)


def _product() -> Peer:
    toolset = compile_tools(TOOLS)

    def parse(text: str) -> Outcome:
        parsed = parse_completion(text, toolset)
        return Outcome(not parsed.ok, [(c.name, c.arguments) for c in parsed.tool_calls])

    return Peer("inference.parsing", "this repository's parser (typed errors)", parse)


def _calls_of_message(message: dict[str, Any]) -> list[tuple[Any, Any]]:
    calls: list[tuple[Any, Any]] = []
    for item in message.get("tool_calls") or []:
        function = item.get("function") if isinstance(item, dict) else None
        function = function if isinstance(function, dict) else {}
        calls.append((function.get("name"), function.get("arguments")))
    return calls


def _transformers_peers() -> list[Peer]:
    """``tokenizer.parse_response`` on the tiny Qwen3 tokenizer (the real Qwen3 chat template),
    once with the template TRL's ``add_response_schema`` picks for that chat template and once
    with the Qwen3 fallback that ``transformers serve`` uses when a tokenizer ships none."""
    names = ("transformers + TRL qwen3_template", "transformers serve qwen3 fallback")
    try:
        from transformers import PreTrainedTokenizerBase
        from transformers.cli.serving.utils import _RESPONSE_TEMPLATE_FALLBACKS
        from trl.chat_template_utils import add_response_schema

        from training.tiny import build_tokenizer

        if not hasattr(PreTrainedTokenizerBase, "parse_response"):
            raise ImportError("PreTrainedTokenizerBase has no parse_response")
    except ImportError as exc:
        return [Peer(n, "", None, f"the pinned packages lack it ({exc})") for n in names]
    tokenizer = build_tokenizer()
    shipped = tokenizer.response_template  # None: the Qwen3 tokenizer files ship no template
    add_response_schema(tokenizer)
    prompt = tokenizer.apply_chat_template(
        MESSAGES, tools=TOOLS, add_generation_prompt=True, tokenize=False
    )
    fallback = next(v for k, v in _RESPONSE_TEMPLATE_FALLBACKS.items() if "qwen3" in k)
    peers = []
    for name, template in zip(names, (tokenizer.response_template, fallback), strict=True):

        def parse(text: str, template: dict[str, Any] = template) -> Outcome:
            try:
                message = tokenizer.parse_response(text, template, prefix=prompt, tools=TOOLS)
            except Exception:  # its only way to report a malformed completion
                return Outcome(True, [])
            return Outcome(False, _calls_of_message(message))

        what = "tokenizer.parse_response, tools= given; flags only when it raises"
        if shipped is not None:
            what += " (the tokenizer shipped its own template)"
        peers.append(Peer(name, what, parse))
    return peers


def _hermes() -> Peer:
    name = "vLLM hermes (LMI server-side)"
    if importlib.util.find_spec("vllm") is None:
        return Peer(name, "", None, "vLLM is not installed; its hermes parser imports vllm")
    return Peer(name, "", None, "vLLM is installed, but this benchmark has no adapter for it")


def peers() -> list[Peer]:
    return [
        Peer("hand-rolled baseline", _BASELINE, HandRolled(TOOLS)),
        _product(),
        *_transformers_peers(),
        _hermes(),
    ]


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Score:
    """One peer's counts over the generated completions."""

    us_per_completion: float = 0.0
    flagged: dict[str, int] = field(default_factory=dict)  # by kind
    wrong_calls: dict[str, int] = field(default_factory=dict)  # valid, not flagged, calls differ

    def add(self, sample: Sample, outcome: Outcome) -> None:
        if outcome.flagged:
            self.flagged[sample.kind] = self.flagged.get(sample.kind, 0) + 1
        elif not sample.malformed and outcome.calls != list(sample.calls):
            self.wrong_calls[sample.kind] = self.wrong_calls.get(sample.kind, 0) + 1


def _time_per_item(fn: Callable[[str], Any], texts: Sequence[str], repeat: int) -> float:
    """Microseconds per text, from the best of `repeat` passes over all of them."""

    def each() -> None:
        for text in texts:
            fn(text)

    return best_seconds(each, repeat) / len(texts) * 1e6


def run(count: int = 3000, repeat: int = 5, seed: int = 0) -> dict[str, Any]:
    samples = generate(count, seed)
    texts = [s.text for s in samples]
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    scores: dict[str, Score] = {}
    all_peers = peers()
    for peer in all_peers:
        if peer.parse is None:
            continue
        score = Score()
        for sample in samples:
            score.add(sample, peer.parse(sample.text))
        score.us_per_completion = _time_per_item(peer.parse, texts, repeat)
        scores[peer.name] = score
    toolset = compile_tools(TOOLS)
    named = dict.fromkeys(DEFECTS, 0)  # the product's typed error is the constructed defect
    for s in samples:
        if s.malformed and EXPECTED_ERROR[s.kind] in {
            e.kind for e in parse_completion(s.text, toolset).errors
        }:
            named[s.kind] += 1
    return {"count": count, "counts": counts, "peers": all_peers, "scores": scores, "named": named}


def _pct(num: int, den: int) -> str:
    return f"{num / den:.0%}" if den else "n/a"


def format_table(results: dict[str, Any]) -> str:
    counts: dict[str, int] = results["counts"]
    scores: dict[str, Score] = results["scores"]
    measured = list(scores)
    malformed = sum(counts.get(k, 0) for k in DEFECTS)
    hard = sum(counts.get(k, 0) for k in HARD_NEGATIVES)
    valid = results["count"] - malformed
    lines = [
        f"{results['count']} completions, labelled by construction: {valid} valid ({hard} hard "
        f"negatives of {len(HARD_NEGATIVES)} kinds), {malformed} malformed ({len(DEFECTS)} "
        "defect kinds).",
        "",
        "| peer | what | µs / completion | recall | precision | valid right | false flags "
        "on valid | valid, wrong calls |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for peer in results["peers"]:
        if peer.name not in scores:
            lines.append(f"| {peer.name} | not measured: {peer.reason} | | | | | | |")
            continue
        sc = scores[peer.name]
        caught = sum(sc.flagged.get(k, 0) for k in DEFECTS)
        flags = sum(sc.flagged.values())
        false_flags = flags - caught
        wrong = sum(sc.wrong_calls.values())
        lines.append(
            f"| {peer.name} | {peer.what} | {sc.us_per_completion:.1f} | "
            f"{_pct(caught, malformed)} | {_pct(caught, flags)} | "
            f"{_pct(valid - false_flags - wrong, valid)} | {false_flags} | {wrong} |"
        )
    lines += ["", "Recall per defect kind (flagged / count):", ""]
    lines += [
        "| defect | count | " + " | ".join(measured) + " | inference.parsing names it |",
        "| --- | ---: |" + " ---: |" * (len(measured) + 1),
    ]
    for kind in DEFECTS:
        n = counts.get(kind, 0)
        cells = [_pct(scores[p].flagged.get(kind, 0), n) for p in measured]
        named = _pct(results["named"][kind], n)
        lines.append(f"| {kind} | {n} | " + " | ".join(cells) + f" | {named} |")
    lines += [
        "",
        "Valid completions, hard negatives first (false flags + wrong calls extracted):",
        "",
        "| valid kind | count | " + " | ".join(measured) + " |",
        "| --- | ---: |" + " ---: |" * len(measured),
    ]
    for kind in HARD_NEGATIVES + VALID_KINDS:
        cells = [
            f"{scores[p].flagged.get(kind, 0)} + {scores[p].wrong_calls.get(kind, 0)}"
            for p in measured
        ]
        lines.append(f"| {kind} | {counts.get(kind, 0)} | " + " | ".join(cells) + " |")
    for peer in results["peers"]:
        if peer.parse is None:
            lines += ["", f"{peer.name}: not measured: {peer.reason}"]
    return "\n".join(lines)


def _hostile_inputs() -> list[tuple[str, Callable[[], Any]]]:
    """(what, thunk) pairs; each thunk parses one hostile input the way the product does."""
    from inference.client import iter_sse_events
    from inference.parsing import MAX_COMPLETION_CHARS

    toolset = compile_tools(TOOLS)
    deep = '<tool_call>{"name": "get_weather", "arguments": {"x": ' + "[" * 900 + "]" * 900 + "}}"
    huge = '<tool_call>{"name": "get_weather", "arguments": {"x": ' + "9" * 100_000 + "}}"
    line = b"data: " + json.dumps({"choices": [{"delta": {"content": "y" * 10**6}}]}).encode()
    pieces = [line[i : i + 1] for i in range(len(line))] + [b"\n"]

    def unclosed(n: int) -> tuple[str, Callable[[], Any]]:
        return f"{n:,} unclosed <tool_call>", lambda: parse_completion("<tool_call>" * n, toolset)

    return [
        unclosed(25_000),
        unclosed(100_000),
        ("100,000 stray </tool_call>", lambda: parse_completion("</tool_call>x" * 100_000)),
        ("100,000-digit integer in a call", lambda: parse_completion(huge + "</tool_call>")),
        ("900-level nesting in a call", lambda: parse_completion(deep + "</tool_call>")),
        (
            f"completion over the {MAX_COMPLETION_CHARS:,}-character cap",
            lambda: parse_completion("<tool_call>" * (MAX_COMPLETION_CHARS // 11 + 1)),
        ),
        ("1 MB SSE line in 1-byte pieces", lambda: list(iter_sse_events(pieces))),
    ]


def adversarial(repeat: int = 3) -> str:
    """A table of hostile inputs and the best-of-`repeat` time each takes to become errors."""
    lines = [f"| hostile input | ms (best of {repeat}) |", "| --- | ---: |"]
    for what, thunk in _hostile_inputs():
        lines.append(f"| {what} | {best_seconds(thunk, repeat) * 1e3:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(format_table(run(args.count, args.repeat, args.seed)))
    print("\nHostile inputs (each becomes typed errors):\n")
    print(adversarial())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
