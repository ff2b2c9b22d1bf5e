"""prepare (and so evaluate) read tools in BFCL's and xLAM's dialects as JSON Schema."""

from __future__ import annotations

import json

from training.data.conversation import RecordError
from training.data.formats import parse_line

BFCL_TOOL = {
    "name": "area",
    "description": "d",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "float"},
            "dims": {"type": "tuple", "items": {"type": "integer"}},
        },
        "required": ["base"],
    },
}


def _record(tool: dict) -> str:
    messages = [
        {"role": "user", "content": "area?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "area", "arguments": {"base": 2}}}],
        },
    ]
    return json.dumps({"messages": messages, "tools": [tool]})


def test_messages_with_bfcl_tools_become_json_schema():
    conv = parse_line(_record(BFCL_TOOL), 1)
    assert not isinstance(conv, RecordError)
    params = conv.tools[0]["function"]["parameters"]
    assert params["type"] == "object"
    assert params["properties"]["base"] == {"type": "number"}
    assert params["properties"]["dims"] == {"type": "array", "items": {"type": "integer"}}


def test_unknown_type_quarantines_the_record_naming_tool_and_field():
    tool = {**BFCL_TOOL, "parameters": {"type": "dict", "properties": {"base": {"type": "usd"}}}}
    error = parse_line(_record(tool), 7)
    assert isinstance(error, RecordError)
    assert error.kind == "bad_tool"
    assert "tool 'area': invalid JSON schema: parameters.base: unknown type 'usd'" in error.reason


def test_xlam_types_share_the_one_table():
    tools = [
        {
            "name": "area",
            "description": "d",
            "parameters": {"base": {"type": "float"}, "tags": {"type": "List[str]"}},
        }
    ]
    line = json.dumps(
        {
            "query": "q",
            "tools": json.dumps(tools),
            "answers": json.dumps([{"name": "area", "arguments": {"base": 1}}]),
        }
    )
    conv = parse_line(line, 1)
    assert not isinstance(conv, RecordError)
    props = conv.tools[0]["function"]["parameters"]["properties"]
    assert props == {
        "base": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    }
