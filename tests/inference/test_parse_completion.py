"""The shared completion parser over a table of realistic Qwen3 outputs, raw and server-parsed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference.parsing import (
    ErrorKind,
    ParsedCompletion,
    ToolSchemaError,
    compile_tools,
    parse_chat_response,
    parse_completion,
    parse_message,
)


def call_block(name: str, arguments: dict[str, Any]) -> str:
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TOKYO_TIME = (
    '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_call>'
)

# (id, raw completion, expected call names, expected error kinds, expected reasoning, content)
CASES: list[tuple[str, str, list[str], list[ErrorKind], str | None, str]] = [
    (
        "single call with reasoning",
        "<think>\nThe user wants the weather in Paris.\n</think>\n\n" + PARIS + "<|im_end|>",
        ["get_weather"],
        [],
        "The user wants the weather in Paris.",
        "",
    ),
    (
        "parallel calls, thinking switched off by the prompt",
        PARIS + "\n" + TOKYO_TIME + "<|im_end|>",
        ["get_weather", "get_time"],
        [],
        None,
        "",
    ),
    (
        "reasoning opened by the prompt, only the close generated",
        "I need the time in Tokyo.\n</think>\n\n" + TOKYO_TIME,
        ["get_time"],
        [],
        "I need the time in Tokyo.",
        "",
    ),
    (
        "reasoning and a plain answer, no call",
        "<think>\nJust greet back.\n</think>\n\nHello! How can I help?<|im_end|><|endoftext|>",
        [],
        [],
        "Just greet back.",
        "Hello! How can I help?",
    ),
    (
        "empty think block then text",
        "<think>\n\n</think>\n\nParis is in France.<|im_end|>",
        [],
        [],
        "",
        "Paris is in France.",
    ),
    ("no call, no reasoning", "It is sunny today.", [], [], None, "It is sunny today."),
    (
        "text before the call is kept as content",
        "Let me check that for you.\n" + PARIS,
        ["get_weather"],
        [],
        None,
        "Let me check that for you.",
    ),
    (
        "truncated inside the call",
        '<think>\nok\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"ci',
        [],
        [ErrorKind.UNCLOSED_TAG],
        "ok",
        "",
    ),
    (
        "truncated inside the reasoning",
        "<think>\nThe user asks about Paris, so I will call get_wea",
        [],
        [ErrorKind.UNCLOSED_TAG],
        "The user asks about Paris, so I will call get_wea",
        "",
    ),
    (
        "invalid JSON (single quotes)",
        "<tool_call>\n{'name': 'get_weather', 'arguments': {'city': 'Paris'}}\n</tool_call>",
        [],
        [ErrorKind.INVALID_JSON],
        None,
        "",
    ),
    (
        "JSON array instead of an object",
        '<tool_call>\n[{"name": "get_weather"}]\n</tool_call>',
        [],
        [ErrorKind.NOT_AN_OBJECT],
        None,
        "",
    ),
    (
        "no name",
        '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>',
        [],
        [ErrorKind.MISSING_NAME],
        None,
        "",
    ),
    (
        "arguments as a string",
        '<tool_call>\n{"name": "get_weather", "arguments": "Paris"}\n</tool_call>',
        [],
        [ErrorKind.INVALID_ARGUMENTS],
        None,
        "",
    ),
    (
        "unknown tool",
        '<tool_call>\n{"name": "get_forecast", "arguments": {"city": "Paris"}}\n</tool_call>',
        [],
        [ErrorKind.UNKNOWN_TOOL],
        None,
        "",
    ),
    (
        "missing required argument",
        '<tool_call>\n{"name": "get_weather", "arguments": {"unit": "celsius"}}\n</tool_call>',
        [],
        [ErrorKind.MISSING_ARGUMENT],
        None,
        "",
    ),
    (
        "extra argument (schema without additionalProperties, strict default)",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}'
        "\n</tool_call>",
        [],
        [ErrorKind.UNEXPECTED_ARGUMENT],
        None,
        "",
    ),
    (
        "extra argument (schema with additionalProperties false)",
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC", "x": 1}}\n</tool_call>',
        [],
        [ErrorKind.UNEXPECTED_ARGUMENT],
        None,
        "",
    ),
    (
        "wrong type",
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC", "hour24": "yes"}}'
        "\n</tool_call>",
        [],
        [ErrorKind.WRONG_TYPE],
        None,
        "",
    ),
    (
        "value outside the enum",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "kelvin"}}'
        "\n</tool_call>",
        [],
        [ErrorKind.SCHEMA_VIOLATION],
        None,
        "",
    ),
    (
        "parallel calls: one valid kept, one invalid reported",
        PARIS + '\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>',
        ["get_weather"],
        [ErrorKind.MISSING_ARGUMENT],
        None,
        "",
    ),
    (
        "second call opened before the first closed",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}\n' + TOKYO_TIME,
        ["get_time"],
        [ErrorKind.UNCLOSED_TAG],
        None,
        "",
    ),
    (
        "stray closing tag",
        "The answer is 42.</tool_call>",
        [],
        [ErrorKind.STRAY_TAG],
        None,
        "The answer is 42.",
    ),
    (
        "garbage after the end token is ignored",
        PARIS + "<|im_end|>\n<tool_call>\n{broken",
        ["get_weather"],
        [],
        None,
        "",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_raw_completion_table(
    tools: list[dict[str, Any]],
    case: tuple[str, str, list[str], list[ErrorKind], str | None, str],
) -> None:
    _, text, names, kinds, reasoning, content = case
    parsed = parse_completion(text, tools)
    assert [c.name for c in parsed.tool_calls] == names
    assert [e.kind for e in parsed.errors] == kinds
    assert parsed.reasoning == reasoning
    assert parsed.content == content
    assert parsed.ok is (not kinds)
    for error in parsed.errors:
        assert error.raw, "every error carries the raw text it came from"
        assert error.reason


def test_valid_call_keeps_arguments_and_raw_block(tools: list[dict[str, Any]]) -> None:
    parsed = parse_completion(PARIS, tools)
    (call,) = parsed.tool_calls
    assert call.arguments == {"city": "Paris"}
    assert call.raw == PARIS


def test_errors_name_the_tool_and_the_argument(tools: list[dict[str, Any]]) -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": 7, "mood": "x"}}\n</tool_call>'
    )
    (error,) = parse_completion(text, tools).errors
    assert error.tool == "get_weather"
    assert "mood" in error.reason
    assert "city" in error.reason  # every violation is listed, not only the first
    assert error.raw == text


def test_lenient_mode_allows_undeclared_arguments(tools: list[dict[str, Any]]) -> None:
    text = call_block("get_weather", {"city": "Paris", "days": 3})
    assert parse_completion(text, tools, strict=False).tool_calls[0].arguments["days"] == 3
    # An explicit additionalProperties: false still wins in lenient mode.
    extra_time = (
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC", "x": 1}}\n</tool_call>'
    )
    kinds = [e.kind for e in parse_completion(extra_time, tools, strict=False).errors]
    assert kinds == [ErrorKind.UNEXPECTED_ARGUMENT]


def test_without_tools_calls_are_parsed_but_not_validated() -> None:
    text = '<tool_call>\n{"name": "anything", "arguments": {"x": 1}}\n</tool_call>'
    parsed = parse_completion(text)
    assert parsed.ok
    assert parsed.tool_calls[0].name == "anything"


def test_empty_tool_list_makes_every_call_unknown() -> None:
    assert [e.kind for e in parse_completion(PARIS, []).errors] == [ErrorKind.UNKNOWN_TOOL]


def test_zero_argument_tool_may_omit_arguments() -> None:
    tools = [{"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}]
    parsed = parse_completion('<tool_call>\n{"name": "ping"}\n</tool_call>', tools)
    assert parsed.tool_calls[0].arguments == {}
    bad = parse_completion(
        '<tool_call>\n{"name": "ping", "arguments": {"a": 1}}\n</tool_call>', tools
    )
    assert [e.kind for e in bad.errors] == [ErrorKind.UNEXPECTED_ARGUMENT]


def test_non_string_input_is_an_error_not_a_crash() -> None:
    parsed = parse_completion(None)  # type: ignore[arg-type]
    assert [e.kind for e in parsed.errors] == [ErrorKind.MALFORMED_RESPONSE]


@pytest.mark.parametrize(
    "bad_tools",
    [
        [{"type": "function", "function": {"description": "no name"}}],
        [{"name": "x", "parameters": {"type": "objekt"}}],
        [{"name": "x"}, {"name": "x"}],
        "not a list",
    ],
    ids=["no name", "invalid schema", "duplicate", "not a list"],
)
def test_bad_tool_definitions_raise(bad_tools: Any) -> None:
    with pytest.raises(ToolSchemaError):
        compile_tools(bad_tools)


def test_compiled_toolsets_are_cached_by_content(tools: list[dict[str, Any]]) -> None:
    assert compile_tools(tools) is compile_tools(json.loads(json.dumps(tools)))
    assert compile_tools(tools) is not compile_tools(tools, strict=False)


def test_to_json_has_the_documented_shape(tools: list[dict[str, Any]]) -> None:
    parsed = parse_completion(
        "<think>\nhm\n</think>\n\n" + PARIS + "\n<tool_call>\n{oops\n</tool_call>", tools
    )
    document = json.loads(parsed.to_json())
    assert document["reasoning"] == "hm"
    assert document["content"] == ""
    assert document["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    (error,) = document["errors"]
    assert error["kind"] == "invalid_json"
    assert "{oops" in error["raw"]
    assert {"reason", "raw"} <= set(error)


# --- OpenAI-style responses -------------------------------------------------------------------


def _response(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def _field_call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_server_parsed_reasoning_and_tool_calls(tools: list[dict[str, Any]]) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Weather question.",
        "tool_calls": [
            _field_call("get_weather", '{"city": "Paris"}'),
            _field_call("get_time", '{"timezone": "UTC"}', "call_2"),
        ],
    }
    parsed = parse_chat_response(_response(message), tools)
    assert parsed.ok
    assert parsed.reasoning == "Weather question."
    assert [(c.name, c.id) for c in parsed.tool_calls] == [
        ("get_weather", "call_1"),
        ("get_time", "call_2"),
    ]
    assert parsed.content == ""


def test_server_without_parsers_leaves_raw_tags_in_content(tools: list[dict[str, Any]]) -> None:
    message = {"role": "assistant", "content": "<think>\nhmm\n</think>\n\n" + PARIS}
    parsed = parse_chat_response(_response(message), tools)
    assert parsed.reasoning == "hmm"
    assert [c.name for c in parsed.tool_calls] == ["get_weather"]


def test_reasoning_field_named_reasoning(tools: list[dict[str, Any]]) -> None:
    parsed = parse_message({"content": "Hi", "reasoning": "greet"}, tools)
    assert (parsed.reasoning, parsed.content) == ("greet", "Hi")


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (_field_call("get_weather", '{"city": "Par'), ErrorKind.INVALID_JSON),
        (_field_call("get_weather", '"Paris"'), ErrorKind.INVALID_ARGUMENTS),
        (_field_call("get_weather", "{}"), ErrorKind.MISSING_ARGUMENT),
        (_field_call("nope", "{}"), ErrorKind.UNKNOWN_TOOL),
        ({"id": "x", "type": "function"}, ErrorKind.NOT_AN_OBJECT),
        ({"id": "x", "function": {"arguments": "{}"}}, ErrorKind.MISSING_NAME),
    ],
    ids=[
        "truncated arguments",
        "arguments not an object",
        "missing",
        "unknown",
        "no function",
        "no name",
    ],
)
def test_field_tool_call_errors(
    tools: list[dict[str, Any]], call: dict[str, Any], kind: ErrorKind
) -> None:
    good = _field_call("get_time", '{"timezone": "UTC"}', "ok")
    parsed = parse_message({"content": "", "tool_calls": [call, good]}, tools)
    assert [e.kind for e in parsed.errors] == [kind]
    assert [c.id for c in parsed.tool_calls] == ["ok"], "the valid sibling call is kept"
    assert parsed.errors[0].raw


@pytest.mark.parametrize(
    "response",
    [{}, {"choices": []}, {"choices": [{"text": "hi"}]}, [], {"error": {"message": "overloaded"}}],
    ids=["empty", "no choices", "completion not chat", "a list", "server error"],
)
def test_malformed_responses_are_errors(response: Any) -> None:
    parsed = parse_chat_response(response)
    assert isinstance(parsed, ParsedCompletion)
    assert [e.kind for e in parsed.errors] == [ErrorKind.MALFORMED_RESPONSE]


def test_server_error_is_quoted_in_the_reason() -> None:
    (error,) = parse_chat_response({"error": {"message": "overloaded"}}).errors
    assert "overloaded" in error.reason


def test_content_as_list_of_parts() -> None:
    parsed = parse_message(
        {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    )
    assert parsed.content == "ab"


def test_call_in_both_field_and_content_is_reported_once(tools: list[dict[str, Any]]) -> None:
    message = {
        "content": PARIS,
        "tool_calls": [_field_call("get_weather", '{"city": "Paris"}')],
    }
    parsed = parse_message(message, tools)
    assert [(c.name, c.id) for c in parsed.tool_calls] == [("get_weather", "call_1")]


def test_pathological_inputs_are_errors_not_crashes(tools: list[dict[str, Any]]) -> None:
    deep = "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>"
    assert [e.kind for e in parse_completion(deep, tools).errors] == [ErrorKind.INVALID_JSON]
    field = _field_call("get_weather", "[" * 100_000)
    assert [e.kind for e in parse_message({"tool_calls": [field]}, tools).errors] == [
        ErrorKind.INVALID_JSON
    ]
    remote = [{"name": "f", "parameters": {"$ref": "https://example.invalid/schema.json"}}]
    parsed = parse_completion('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>', remote)
    assert [e.kind for e in parsed.errors] == [ErrorKind.SCHEMA_VIOLATION]


def test_calls_misfiled_under_reasoning_are_recovered(tools: list[dict[str, Any]]) -> None:
    """vllm#19513: the qwen3 reasoning parser files a non-thinking answer as reasoning."""
    parsed = parse_message({"content": None, "reasoning_content": "\n\n" + PARIS}, tools)
    assert [c.name for c in parsed.tool_calls] == ["get_weather"]
    assert parsed.reasoning is None
    # Real reasoning next to a real call stays reasoning, and the call is not duplicated.
    message = {"content": PARIS, "reasoning_content": "Mentions <tool_call> in passing."}
    parsed = parse_message(message, tools)
    assert parsed.reasoning == "Mentions <tool_call> in passing."
    assert len(parsed.tool_calls) == 1
