"""Preference pairs for DPO from the synthetic set, labelled by construction.

Each conversation gives one record in TRL's conversational preference format with an explicit
prompt: the data's assistant turn is `chosen`; `rejected` is the same turn with one realistic
mistake of a known kind (`MISTAKES`), so no judge or model is needed and every pair's defect is
known and checkable. Mistakes are what tool-calling models actually get wrong: the wrong or an
invented tool, a value the user did not ask for, a dropped, invented or mistyped argument,
answering without the call, or calling when nothing needs a call.

    {"prompt": [...], "chosen": [assistant], "rejected": [assistant], "tools": [...],
     "meta": {"mistake": KIND, "scenario": "single", "turn": 2}}

    python -m training.synthetic --preference --output runs/preference.jsonl --n 2000 --seed 0
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from inference.parsing import compile_tools
from training.data.conversation import Conversation, Message, ToolCall
from training.synthetic_catalog import INTENTS

# Turns that need a call get one of the first seven; turns that need none (chit-chat, the answer
# after a tool result) can only be wrong by calling.
CALL_MISTAKES = (
    "wrong_tool",
    "wrong_value",
    "missing_argument",
    "invented_argument",
    "wrong_type",
    "missing_call",
    "hallucinated_tool",
)
MISTAKES = (*CALL_MISTAKES, "needless_call")

# Plausible names a model invents for each catalogue tool (checked against those offered).
HALLUCINATED = {
    "get_weather": ("get_forecast", "weather_lookup", "current_weather"),
    "convert_currency": ("currency_converter", "get_exchange_rate", "convert_money"),
    "search_flights": ("flight_search", "find_flights", "book_flight"),
    "get_order_status": ("track_order", "order_lookup", "get_order"),
    "create_calendar_event": ("add_event", "schedule_meeting", "calendar_create"),
    "send_email": ("email_send", "compose_email", "send_message"),
    "get_stock_price": ("stock_quote", "get_quote", "get_stock"),
    "get_time": ("get_current_time", "world_clock", "get_local_time"),
    "book_hotel": ("hotel_booking", "reserve_hotel", "search_hotels"),
    "translate_text": ("translate", "translator", "translate_string"),
}
# Arguments a model adds that the schemas do not declare: plausible for the tool, never valid.
INVENTED = {
    "get_weather": (("forecast_days", 3), ("include_humidity", True), ("country", "France")),
    "convert_currency": (("date", "2026-03-14"), ("round_to", 2)),
    "search_flights": (("cabin_class", "economy"), ("return_date", "2026-06-18")),
    "get_order_status": (("include_history", True), ("email", "alice@example.com")),
    "create_calendar_event": (("location", "Room 2"), ("reminder_minutes", 15)),
    "send_email": (("cc", "carol@example.com"), ("priority", "high")),
    "get_stock_price": (("currency", "USD"), ("interval", "1d")),
    "get_time": (("timezone", "local"), ("format", "24h")),
    "book_hotel": (("check_in", "2026-05-20"), ("room_type", "double"), ("stars", 4)),
    "translate_text": (("source_language", "English"), ("formality", "formal")),
}
GENERIC_INVENTED = (("verbose", True), ("limit", 5), ("language", "en"))
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NO_CALL_ANSWERS = (
    "I can't check that right now.",
    "I don't have access to that information, sorry.",
    "Sure, I've taken care of that for you.",
    "Let me know if there is anything else I can help with.",
)

Tools = Sequence[dict[str, Any]]


ANSWER_TURN_SHARE = 0.35


def preference_pairs(conversations: Sequence[Conversation], seed: int = 0) -> list[dict]:
    """One preference record per conversation (see the module docstring), the same per `seed`.

    The mistake is the least used so far among those that apply to the turn (ties broken by the
    seeded RNG), so kinds stay balanced whatever the mix of scenarios and tools. A call ->
    result -> answer conversation gives its answer turn (where the only mistake is a needless
    call) `ANSWER_TURN_SHARE` of the time, its call turn otherwise: chit-chat already makes
    needless calls the largest kind, and a set dominated by "do not call" pairs teaches a model
    to stop calling altogether.
    """
    r = random.Random(seed)  # noqa: S311 -- reproducible data, not secrets
    used: Counter[str] = Counter()
    out = []
    for conv in conversations:
        turns = [i for i, m in enumerate(conv.messages) if m.role == "assistant"]
        scenario = conv.meta.get("kind")
        answer = scenario != "multi_step" or r.random() < ANSWER_TURN_SHARE
        turn = turns[-1] if answer else turns[0]
        makers = _applicable(conv, turn)
        if not makers:
            raise ValueError(f"conversation {conv.source_line}: no mistake applies to turn {turn}")
        fewest = min(used[k] for k in makers)
        kind = r.choice([k for k in makers if used[k] == fewest])
        used[kind] += 1
        rejected = makers[kind](r)
        record = conv.to_record()
        out.append(
            {
                "prompt": record["messages"][:turn],
                "chosen": [record["messages"][turn]],
                "rejected": Conversation((rejected,)).to_record()["messages"],
                "tools": record["tools"],
                "meta": {"mistake": kind, "scenario": scenario, "turn": turn},
            }
        )
    return out


Maker = Callable[[random.Random], Message]


def _applicable(conv: Conversation, index: int) -> dict[str, Maker]:
    """The mistakes that can be made on turn `index`, each as a maker of the rejected message."""
    tools, turn = list(conv.tools), conv.messages[index]
    makers: dict[str, Maker] = {}
    if not turn.tool_calls:
        if _callable_tools(tools) or _previous_calls(conv, index):
            makers["needless_call"] = lambda r: _needless_call(r, conv, index)
        return makers
    calls = turn.tool_calls
    makers["missing_call"] = lambda r: _missing_call(r, conv, index)
    makers["hallucinated_tool"] = lambda r: _hallucinated_tool(r, conv, turn)
    makers["invented_argument"] = lambda r: _invented_argument(r, tools, turn)
    if any(_required(tools, c.name) & set(c.arguments) for c in calls):
        makers["missing_argument"] = lambda r: _missing_argument(r, tools, turn)
    if _retypable(tools, calls):
        makers["wrong_type"] = lambda r: _wrong_type(r, tools, turn)
    if any(_other_tools(tools, calls, c) for c in calls):
        makers["wrong_tool"] = lambda r: _wrong_tool(r, tools, turn)
    if any(c.name in INTENTS for c in calls):
        makers["wrong_value"] = lambda r: _wrong_value(r, turn)
    return dict(sorted(makers.items(), key=lambda kv: MISTAKES.index(kv[0])))


# --- schema helpers ---------------------------------------------------------------------------


def _parameters(tools: Tools, name: str) -> dict[str, Any]:
    return next(
        t["function"].get("parameters") or {} for t in tools if t["function"]["name"] == name
    )


def _required(tools: Tools, name: str) -> set[str]:
    return set(_parameters(tools, name).get("required", ()))


def _is_valid(tools: Tools, call: ToolCall) -> bool:
    """Valid as `inference.parsing` judges it (strict: no undeclared arguments)."""
    return bool(compile_tools(tools).validators[call.name].is_valid(call.arguments))


def _callable_tools(tools: Tools) -> list[str]:
    """Offered tools we can fill valid arguments for (the catalogue's)."""
    return [t["function"]["name"] for t in tools if t["function"]["name"] in INTENTS]


def _other_tools(tools: Tools, calls: Sequence[ToolCall], call: ToolCall) -> list[str]:
    """Offered tools to call instead of `call`: not called in this turn, else just not `call`'s."""
    others = [n for n in _callable_tools(tools) if n != call.name]
    return [n for n in others if n not in {c.name for c in calls}] or others


def _fill(r: random.Random, tools: Tools, name: str, like: Sequence[ToolCall] = ()) -> ToolCall:
    """A valid call of `name`: catalogue values, reusing the request's where names match."""
    call = INTENTS[name](r).call
    for source in like:
        for key, value in source.arguments.items():
            if key in _parameters(tools, name).get("properties", {}):
                candidate = replace(call, arguments={**call.arguments, key: value})
                call = candidate if _is_valid(tools, candidate) else call
    return call


def _mutate(
    r: random.Random, turn: Message, indices: Sequence[int], new: Callable[[ToolCall], ToolCall]
) -> Message:
    """`turn` with one of its calls (a random one of `indices`) replaced by ``new(call)``."""
    i = r.choice(list(indices))
    calls = list(turn.tool_calls)
    calls[i] = new(calls[i])
    return replace(turn, tool_calls=tuple(calls))


def _retyped(r: random.Random, value: Any, schema: dict[str, Any]) -> Any:
    """`value` as another JSON type a model plausibly writes; `None` where there is none."""
    if "enum" in schema:
        return None  # outside the enum is a schema violation, not a wrong type
    kind = schema.get("type")
    if kind == "boolean" and isinstance(value, bool):
        return r.choice(["yes", "true"] if value else ["no", "false"])
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        words = [NUMBER_WORDS[value]] if 0 <= value < len(NUMBER_WORDS) else []
        return r.choice([str(value), *words])
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "string" and isinstance(value, str):
        digits = "".join(ch for ch in value if ch.isdigit())
        return r.choice([int(digits), [value]]) if digits else [value]  # "A1001" -> 1001
    return None


def _retypable(tools: Tools, calls: Sequence[ToolCall]) -> list[tuple[int, str]]:
    probe = random.Random(0)  # noqa: S311 -- only asks whether a retyping exists
    props = [_parameters(tools, c.name).get("properties", {}) for c in calls]
    return [
        (i, key)
        for i, c in enumerate(calls)
        for key, value in c.arguments.items()
        if _retyped(probe, value, props[i].get(key, {})) is not None
    ]


def _previous_calls(conv: Conversation, index: int) -> tuple[ToolCall, ...]:
    """The calls of the assistant turn before turn `index` (the call a final answer follows)."""
    return next((m.tool_calls for m in reversed(conv.messages[:index]) if m.tool_calls), ())


# --- the mistakes -----------------------------------------------------------------------------


def _wrong_tool(r: random.Random, tools: Tools, turn: Message) -> Message:
    calls = turn.tool_calls
    indices = [i for i, c in enumerate(calls) if _other_tools(tools, calls, c)]
    return _mutate(
        r, turn, indices, lambda c: _fill(r, tools, r.choice(_other_tools(tools, calls, c)), [c])
    )


def _wrong_value(r: random.Random, turn: Message) -> Message:
    """The right tool and a valid call, but one argument holds a value the user did not ask for
    (another city, amount or date from the catalogue's value sets)."""

    def change(c: ToolCall) -> ToolCall:
        while True:
            other = INTENTS[c.name](r).call.arguments
            keys = sorted(k for k in c.arguments if k in other and other[k] != c.arguments[k])
            if keys:
                key = r.choice(keys)
                return replace(c, arguments={**c.arguments, key: other[key]})

    return _mutate(r, turn, [i for i, c in enumerate(turn.tool_calls) if c.name in INTENTS], change)


def _missing_argument(r: random.Random, tools: Tools, turn: Message) -> Message:
    def drop(c: ToolCall) -> ToolCall:
        key = r.choice(sorted(_required(tools, c.name) & set(c.arguments)))
        return replace(c, arguments={k: v for k, v in c.arguments.items() if k != key})

    indices = [
        i for i, c in enumerate(turn.tool_calls) if _required(tools, c.name) & set(c.arguments)
    ]
    return _mutate(r, turn, indices, drop)


def _invented_argument(r: random.Random, tools: Tools, turn: Message) -> Message:
    def add(c: ToolCall) -> ToolCall:
        declared = _parameters(tools, c.name).get("properties", {})
        options = [kv for kv in INVENTED.get(c.name, GENERIC_INVENTED) if kv[0] not in declared]
        key, value = r.choice(options or [kv for kv in GENERIC_INVENTED if kv[0] not in declared])
        return replace(c, arguments={**c.arguments, key: value})

    return _mutate(r, turn, range(len(turn.tool_calls)), add)


def _wrong_type(r: random.Random, tools: Tools, turn: Message) -> Message:
    i, key = r.choice(_retypable(tools, turn.tool_calls))
    call = turn.tool_calls[i]
    schema = _parameters(tools, call.name)["properties"][key]
    return _mutate(
        r,
        turn,
        [i],
        lambda c: replace(c, arguments={**c.arguments, key: _retyped(r, c.arguments[key], schema)}),
    )


def _missing_call(r: random.Random, conv: Conversation, index: int) -> Message:
    """A text answer instead of the call: a refusal, a claim, or the final answer made up early."""
    later = conv.messages[index + 1 :]
    made_up = [m.content for m in later if m.role == "assistant" and not m.tool_calls]
    return Message("assistant", r.choice([*NO_CALL_ANSWERS, *made_up[-1:]]))


def _hallucinated_tool(r: random.Random, conv: Conversation, turn: Message) -> Message:
    def rename(c: ToolCall) -> ToolCall:
        names = HALLUCINATED.get(c.name, (f"{c.name}_lookup", f"lookup_{c.name}"))
        return replace(c, name=r.choice([n for n in names if n not in conv.tool_names]))

    return _mutate(r, turn, range(len(turn.tool_calls)), rename)


def _needless_call(r: random.Random, conv: Conversation, index: int) -> Message:
    """A valid call where none is needed: the call just answered again, or any offered tool."""
    previous = _previous_calls(conv, index)
    names = _callable_tools(list(conv.tools))
    if previous and (not names or r.random() < 0.5):
        calls = previous
    else:
        calls = (_fill(r, list(conv.tools), r.choice(names)),)
    return Message("assistant", "", conv.messages[index].reasoning, calls)
