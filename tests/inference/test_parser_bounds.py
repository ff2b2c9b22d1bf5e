"""Hostile model output: every case is a typed error, and the parser's bounds hold (issue 23).

No timings here (they live in `python -m benchmarks.inference`); these check what comes out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference.parsing import (
    MAX_COMPLETION_CHARS,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    ErrorKind,
    ParseError,
    decode_json,
    parse_completion,
    parse_message,
)


def block(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


def field_call(arguments: str, name: str = "get_weather") -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}


def kinds(errors: list[ParseError]) -> list[ErrorKind]:
    return [e.kind for e in errors]


# --- numbers, keys, nesting ---------------------------------------------------------------------


@pytest.mark.parametrize("digits", [MAX_INT_DIGITS + 1, 100_000])
def test_huge_integer_is_invalid_json_not_a_crash(tools: list[Any], digits: int) -> None:
    body = '{"name": "get_weather", "arguments": {"city": "Paris", "n": ' + "9" * digits + "}}"
    parsed = parse_completion(block(body), tools)
    assert kinds(parsed.errors) == [ErrorKind.INVALID_JSON]
    assert f"{digits:,} digits" in parsed.errors[0].reason
    field = parse_message({"tool_calls": [field_call('{"n": -' + "9" * digits + "}")]}, tools)
    assert kinds(field.errors) == [ErrorKind.INVALID_JSON]


def test_integer_at_the_digit_limit_is_kept() -> None:
    assert decode_json("9" * MAX_INT_DIGITS, "x") == int("9" * MAX_INT_DIGITS)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_invalid_arguments(tools: list[Any], number: str) -> None:
    body = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": ' + number + "}}"
    parsed = parse_completion(block(body), tools)
    assert parsed.tool_calls == []
    assert kinds(parsed.errors) == [ErrorKind.INVALID_ARGUMENTS]
    field = parse_message({"tool_calls": [field_call('{"city": ' + number + "}")]}, tools)
    assert kinds(field.errors) == [ErrorKind.INVALID_ARGUMENTS]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"name": "get_time", "name": "get_weather", "arguments": {"city": "Paris"}}', "name"),
        ('{"name": "get_weather", "arguments": {"city": "Paris", "city": "Rome"}}', "city"),
        ('{"name": "get_weather", "arguments": {}, "arguments": {"city": "Paris"}}', "arguments"),
    ],
    ids=["name", "argument", "arguments"],
)
def test_duplicate_keys_are_refused_naming_the_key(tools: list[Any], body: str, key: str) -> None:
    parsed = parse_completion(block(body), tools)
    assert parsed.tool_calls == [], "json alone would silently keep the last value"
    assert kinds(parsed.errors) == [ErrorKind.INVALID_JSON]
    assert f"duplicate key {key!r}" in parsed.errors[0].reason


def test_duplicate_argument_in_a_field_call_is_refused(tools: list[Any]) -> None:
    field = parse_message({"tool_calls": [field_call('{"city": "Paris", "city": "Rome"}')]}, tools)
    assert kinds(field.errors) == [ErrorKind.INVALID_JSON]
    assert field.errors[0].tool == "get_weather"
    assert "duplicate key 'city'" in field.errors[0].reason


def test_nesting_is_capped_below_the_recursion_limit() -> None:
    at_cap = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert not isinstance(decode_json(at_cap, "x"), ParseError)
    over = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    refused = decode_json(over, "x")
    assert isinstance(refused, ParseError)
    assert refused.kind == ErrorKind.INVALID_JSON
    assert f"deeper than {MAX_JSON_DEPTH}" in refused.reason
    # 900 levels decode without a RecursionError; what reads them later would not.
    deep = '{"name": "f", "arguments": {"a": ' + "[" * 900 + "]" * 900 + "}}"
    assert kinds(parse_completion(block(deep)).errors) == [ErrorKind.INVALID_JSON]


def test_plain_values_still_decode() -> None:
    assert decode_json('{"a": [1, 2.5, "x", null, true]}', "x") == {"a": [1, 2.5, "x", None, True]}


# --- tags at scale and the length cap -----------------------------------------------------------


def test_100k_unclosed_tool_call_tags_are_100k_errors(tools: list[Any]) -> None:
    """Quadratic scanning took about 20 s here; the one-pass scanner reads each tag once
    (its time is in the benchmark's adversarial table)."""
    n = 100_000
    parsed = parse_completion("<tool_call>" * n, tools)
    assert len(parsed.errors) == n
    assert {e.kind for e in parsed.errors} == {ErrorKind.UNCLOSED_TAG}
    assert parsed.content == ""


def test_unclosed_complete_and_stray_tags_mixed(tools: list[Any]) -> None:
    paris = block('{"name": "get_weather", "arguments": {"city": "Paris"}}')
    text = "a</tool_call>b<tool_call>{" + paris + "c</tool_call>d" + "<tool_call>tail"
    parsed = parse_completion(text, tools)
    assert [c.arguments for c in parsed.tool_calls] == [{"city": "Paris"}]
    assert kinds(parsed.errors) == [
        ErrorKind.STRAY_TAG,
        ErrorKind.UNCLOSED_TAG,
        ErrorKind.STRAY_TAG,
        ErrorKind.UNCLOSED_TAG,
    ]
    assert [e.raw for e in parsed.errors] == [
        "a</tool_call>b",
        "<tool_call>{",
        "c</tool_call>d",
        "<tool_call>tail",
    ]
    assert parsed.content == "abcd"


def test_completion_over_the_cap_is_refused_whole() -> None:
    parsed = parse_completion("x" * (MAX_COMPLETION_CHARS + 1))
    assert kinds(parsed.errors) == [ErrorKind.MALFORMED_RESPONSE]
    assert f"at most {MAX_COMPLETION_CHARS:,}" in parsed.errors[0].reason
    assert len(parsed.errors[0].raw) <= 2000
    assert parse_completion("x" * MAX_COMPLETION_CHARS).ok


def test_message_over_the_cap_is_refused_whole() -> None:
    half = "x" * (MAX_COMPLETION_CHARS // 2 + 1)
    parsed = parse_message({"content": half, "reasoning_content": half})
    assert kinds(parsed.errors) == [ErrorKind.MALFORMED_RESPONSE]


# --- wrong types in a server's message ----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "where"),
    [
        ({"content": 42}, "message.content is a JSON int"),
        ({"content": {"text": "hi"}}, "message.content is a JSON dict"),
        ({"content": [{"type": "text", "text": 5}]}, "message.content has a part without text"),
        ({"content": "", "reasoning": 3.5}, "message.reasoning_content is a JSON float"),
    ],
    ids=["number", "object", "numeric part", "reasoning number"],
)
def test_wrong_typed_text_fields_are_malformed_responses(
    message: dict[str, Any], where: str
) -> None:
    parsed = parse_message(message)
    assert kinds(parsed.errors) == [ErrorKind.MALFORMED_RESPONSE]
    assert where in parsed.errors[0].reason


def test_wrong_typed_field_does_not_hide_a_valid_call(tools: list[Any]) -> None:
    message = {"content": 42, "tool_calls": [field_call('{"city": "Paris"}')]}
    parsed = parse_message(message, tools)
    assert [c.name for c in parsed.tool_calls] == ["get_weather"]
    assert kinds(parsed.errors) == [ErrorKind.MALFORMED_RESPONSE]


def test_error_raw_of_an_unserialisable_message_is_a_repr() -> None:
    loop: list[Any] = []
    loop.append(loop)
    parsed = parse_message({"tool_calls": [loop]})
    assert kinds(parsed.errors) == [ErrorKind.NOT_AN_OBJECT]
    assert parsed.errors[0].raw.startswith("[[")
    assert json.loads(parse_message({"content": "ok"}).to_json())["content"] == "ok"
