"""Each reader turns realistic records of its format into the canonical conversation, and every kind
of bad record into an error that names its line."""

from __future__ import annotations

import json

import pytest
from data_fixtures import WEATHER_TOOL, tool_conversation, write_jsonl

from training.data.conversation import Conversation, Message, RecordError, ToolCall
from training.data.formats import TextDocument, parse_line, read_jsonl, xlam_type_schema

OPENAI = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Look it up.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": {"temperature": 18}},
        {"role": "assistant", "content": "It is 18 degrees."},
    ],
    "tools": [WEATHER_TOOL],
}

# The first record of Salesforce/xlam-function-calling-60k, verbatim in shape.
XLAM = {
    "id": 1,
    "query": "Where can I find live giveaways for beta access and games?",
    "answers": json.dumps(
        [
            {"name": "live_giveaways_by_type", "arguments": {"type": "beta"}},
            {"name": "live_giveaways_by_type", "arguments": {"type": "game"}},
        ]
    ),
    "tools": json.dumps(
        [
            {
                "name": "live_giveaways_by_type",
                "description": "Retrieve live giveaways from the GamerPower API.",
                "parameters": {
                    "type": {
                        "description": "The type of giveaways (e.g., game, loot, beta).",
                        "type": "str",
                        "default": "game",
                    },
                    "limit": {"description": "How many.", "type": "int"},
                    "tags": {"description": "Filter tags.", "type": "List[str], optional"},
                },
            }
        ]
    ),
}

# Hermes (Hermes-2-Pro format): tools inside the system prompt, JSON call bodies.
HERMES = {
    "conversations": [
        {
            "from": "system",
            "value": "You are a function calling AI model. Here are the available tools: <tools> "
            '[{"type": "function", "function": {"name": "get_stock", "description": "Stock '
            'level.", "parameters": {"type": "object", "properties": {"product_id": {"type": '
            '"string"}}, "required": ["product_id"]}}}] </tools> Call them in <tool_call> tags.',
        },
        {"from": "human", "value": "How many P12345 are in stock?"},
        {
            "from": "gpt",
            "value": '<think>\nCheck stock.\n</think>\n<tool_call>\n{"arguments": {"product_id": '
            '"P12345"}, "name": "get_stock"}\n</tool_call>',
        },
        {
            "from": "tool",
            "value": '<tool_response>\n{"name": "get_stock", "content": {"count": 7}}\n'
            "</tool_response>",
        },
        {"from": "gpt", "value": "There are 7 in stock."},
    ]
}

# LLaMA-Factory sharegpt: function_call/observation turns and a `tools` column as a JSON string.
LLAMA_FACTORY = {
    "conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {
            "from": "function_call",
            "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        },
        {"from": "observation", "value": '{"temperature": -3}'},
        {"from": "gpt", "value": "It is -3 degrees in Oslo."},
    ],
    "tools": json.dumps([WEATHER_TOOL["function"]]),
}


def parse(record: object, fmt: str = "auto") -> Conversation:
    result = parse_line(json.dumps(record), 1, fmt)
    assert isinstance(result, Conversation), result
    return result


def test_openai_messages():
    conv = parse(OPENAI)
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[1].content == "Weather in Paris?"
    assert conv.messages[2] == Message(
        "assistant", "", "Look it up.", (ToolCall("get_weather", {"city": "Paris"}),)
    )
    assert conv.messages[3].tool_call_id == "call_1"
    assert conv.messages[3].content == '{"temperature": 18}'  # an object result, as JSON text
    assert conv.tools == (WEATHER_TOOL,)


def test_canonical_record_round_trips():
    conv = tool_conversation()
    again = parse(conv.to_record(), "messages")
    assert again.messages == conv.messages
    assert again.tools == conv.tools


def test_xlam_parameters_become_json_schema():
    conv = parse(XLAM)
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].tool_calls == (
        ToolCall("live_giveaways_by_type", {"type": "beta"}),
        ToolCall("live_giveaways_by_type", {"type": "game"}),
    )
    params = conv.tools[0]["function"]["parameters"]
    assert params["required"] == ["limit"]
    assert params["properties"]["type"] == {
        "type": "string",
        "description": "The type of giveaways (e.g., game, loot, beta).",
        "default": "game",
    }
    assert params["properties"]["tags"]["type"] == "array"
    assert conv.meta == {"id": 1}


@pytest.mark.parametrize(
    ("xlam", "schema", "optional"),
    [
        ("str", {"type": "string"}, False),
        ("float", {"type": "number"}, False),
        ("bool", {"type": "boolean"}, False),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
        ("Dict[str, Any]", {"type": "object"}, False),
        ("Optional[int]", {"type": "integer"}, True),
        ("int, optional", {"type": "integer"}, True),
        ("Callable", {}, False),
    ],
)
def test_xlam_types(xlam, schema, optional):
    assert xlam_type_schema(xlam) == (schema, optional)


def test_hermes_sharegpt():
    conv = parse(HERMES)
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert "<tools>" not in conv.messages[0].content  # the template writes its own tools block
    assert conv.messages[0].content.startswith("You are a function calling AI model.")
    assert conv.tool_names == {"get_stock"}
    assert conv.messages[2] == Message(
        "assistant", "", "Check stock.", (ToolCall("get_stock", {"product_id": "P12345"}),)
    )
    assert conv.messages[3].content == '{"name": "get_stock", "content": {"count": 7}}'


def test_llama_factory_sharegpt():
    conv = parse(LLAMA_FACTORY)
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[1].tool_calls == (ToolCall("get_weather", {"city": "Oslo"}),)
    assert conv.tools == (WEATHER_TOOL,)


def test_llama_factory_parallel_function_call_turn():
    calls = [{"name": "get_weather", "arguments": {"city": c}} for c in ("Oslo", "Rome")]
    turns = [{"from": "human", "value": "Oslo and Rome?"}]
    turns.append({"from": "function_call", "value": json.dumps(calls)})
    conv = parse({**LLAMA_FACTORY, "conversations": turns})
    assert conv.messages[1].tool_calls == tuple(
        ToolCall("get_weather", {"city": c}) for c in ("Oslo", "Rome")
    )


def test_hermes_parallel_calls_and_responses():
    record = {
        "conversations": [
            {"from": "human", "value": "Paris and Rome?"},
            {
                "from": "gpt",
                "value": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                '</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": '
                '"Rome"}}\n</tool_call>',
            },
            {"from": "tool", "value": "<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n"
             "</tool_response>"},
            {"from": "gpt", "value": "Both mild."},
        ],
        "tools": [WEATHER_TOOL],
    }  # fmt: skip
    conv = parse(record)
    assert len(conv.messages[1].tool_calls) == 2
    assert [m.content for m in conv.messages if m.role == "tool"] == ["1", "2"]


def test_text_records():
    result = parse_line('{"text": "raw corpus"}', 4)
    assert result == TextDocument("raw corpus", 4)


def _call(args: object, name: str = "get_weather") -> dict:
    return {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"function": {"name": name, "arguments": args}}]},
        ],
        "tools": [WEATHER_TOOL],
    }


def _messages(*turns: tuple[str, str]) -> dict:
    """An OpenAI messages record of ``(role, content)`` turns."""
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def _sharegpt(*turns: tuple[str, str], tools: list | None = None) -> dict:
    """A sharegpt record of ``(from, value)`` turns, with a ``tools`` column when given."""
    record: dict = {"conversations": [{"from": who, "value": value} for who, value in turns]}
    return record if tools is None else {**record, "tools": tools}


def _hermes_gpt(value: str) -> dict:
    return _sharegpt(("human", "q"), ("gpt", value), tools=[WEATHER_TOOL])


BAD = [
    ("malformed_json", '{"messages": [', "not valid JSON"),
    ("unknown_role", _messages(("narrator", "x")), "narrator"),
    ("unknown_role", _sharegpt(("bot", "x")), "bot"),
    ("unknown_tool", _call({"city": "Paris"}, name="get_stock"), "get_stock"),
    ("arguments_not_object", _call("not json"), "not valid JSON"),
    ("arguments_not_object", _call('["Paris"]'), "not a JSON object"),
    (
        "arguments_not_object",
        {**XLAM, "answers": '[{"name": "live_giveaways_by_type", "arguments": [1]}]'},
        "not a JSON object",
    ),
    ("orphan_tool_result", _messages(("user", "q"), ("tool", "r"), ("assistant", "a")), "no call"),
    ("empty", _messages(), "no messages"),
    ("no_assistant", _messages(("user", "q")), "no assistant"),
    ("unknown_format", {"prompt": "q", "completion": "a"}, "cannot tell the format"),
    (
        "malformed_tool_call",
        _sharegpt(("human", "q"), ("gpt", "<tool_call>{oops</tool_call>")),
        "not valid JSON",
    ),
    ("malformed_record", [1, 2], "not a JSON object"),
    ("malformed_tool_call", _hermes_gpt("<tool_call>\n{'name': 'get_weather'"), "never closed"),
    # hermes-function-calling-v1 prints Python dicts: quarantined with the parser's reason.
    (
        "malformed_tool_call",
        _hermes_gpt(
            "<tool_call>\n{'arguments': {'city': 'Paris'}, 'name': 'get_weather'}\n</tool_call>"
        ),
        "invalid_json: tool call body is not valid JSON: Expecting property name enclosed in "
        "double quotes",
    ),
    (
        "bad_tool",
        _sharegpt(
            ("system", "<tools> [{'name': 'get_weather'}] </tools>"), ("human", "q"), ("gpt", "a")
        ),
        "tools is not valid JSON",
    ),
    (
        "malformed_tool_call",
        _sharegpt(("human", "q"), ("function_call", "{'name': 'x'}"), tools=[WEATHER_TOOL]),
        "invalid_json: tool call body is not valid JSON",
    ),
    (
        "arguments_not_object",
        _hermes_gpt('<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>'),
        "not an object",
    ),
]


def test_every_bad_record_is_reported_with_its_line(tmp_path):
    good = [OPENAI, XLAM, HERMES]
    lines = [*good, ""] + [bad for _, bad, _ in BAD]
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    results = list(read_jsonl(path))
    assert len(results) == len(good) + len(BAD)  # the blank line is skipped, not an error
    assert all(isinstance(r, Conversation) for _, r in results[: len(good)])
    errors = [r for _, r in results[len(good) :]]
    assert all(isinstance(e, RecordError) for e in errors)
    for (kind, bad, reason), error, line in zip(
        BAD, errors, range(len(good) + 2, len(lines) + 1), strict=True
    ):
        assert (error.kind, error.line) == (kind, line), error
        assert reason in error.reason
        assert error.reason.startswith(f"line {line}:")
        assert error.record == (bad if isinstance(bad, str) else json.dumps(bad))


def test_explicit_format_is_enforced():
    result = parse_line(json.dumps(OPENAI), 7, "xlam")
    assert isinstance(result, RecordError)
    assert (result.line, result.kind) == (7, "malformed_record")
    assert "xlam record lacks query, answers" in result.reason
