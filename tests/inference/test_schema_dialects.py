"""Tools in the schema dialects real datasets use become JSON Schema once, where they enter."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from inference.client import RequestError, build_chat_request
from inference.parsing import ToolSchemaError, normalize_tools, parse_completion
from inference.parsing import __main__ as parse_cli


def _tool(properties: dict, *, top: str = "dict") -> dict:
    return {
        "name": "calc",
        "description": "d",
        "parameters": {"type": top, "properties": properties, "required": list(properties)},
    }


def _params(tool: dict) -> dict:
    return normalize_tools([tool])[0]["parameters"]


def test_bfcl_dict_becomes_object():
    nested = {"type": "dict", "properties": {"k": {"type": "string"}}}
    params = _params(_tool({"opts": nested}))
    assert params["type"] == "object"
    assert params["properties"]["opts"] == {
        "type": "object",
        "properties": {"k": {"type": "string"}},
    }


def test_bfcl_float_becomes_number_and_accepts_ints():
    tools = normalize_tools([_tool({"x": {"type": "float"}})])
    assert tools[0]["parameters"]["properties"]["x"] == {"type": "number"}
    call = '<tool_call>{"name": "calc", "arguments": {"x": 3}}</tool_call>'
    assert parse_completion(call, tools).ok


def test_bfcl_tuple_becomes_array_keeping_its_items():
    params = _params(_tool({"xs": {"type": "tuple", "items": {"type": "float"}}}))
    assert params["properties"]["xs"] == {"type": "array", "items": {"type": "number"}}


def test_bfcl_any_drops_the_type_constraint_but_keeps_the_rest():
    params = _params(_tool({"v": {"type": "any", "description": "anything"}}))
    assert params["properties"]["v"] == {"description": "anything"}


@pytest.mark.parametrize(
    ("xlam", "schema"),
    [
        ("str", {"type": "string"}),
        ("int", {"type": "integer"}),
        ("List[str]", {"type": "array", "items": {"type": "string"}}),
        ("Optional[List[int]]", {"type": "array", "items": {"type": "integer"}}),
    ],
)
def test_xlam_type_names(xlam, schema):
    assert _params(_tool({"a": {"type": xlam}}, top="object"))["properties"]["a"] == schema


def test_openai_form_is_kept_and_json_schema_untouched():
    tool = {"type": "function", "function": _tool({"a": {"type": "string"}}, top="object")}
    assert normalize_tools([tool]) == [tool]


def test_unknown_type_names_the_tool_and_the_field():
    with pytest.raises(
        ToolSchemaError,
        match=r"tool 'calc': invalid JSON schema: parameters\.money: unknown type 'usd'",
    ):
        normalize_tools([_tool({"money": {"type": "usd"}})])


def test_parse_cli_reads_bfcl_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([_tool({"base": {"type": "integer"}, "h": {"type": "float"}})]))
    text = '<tool_call>{"name": "calc", "arguments": {"base": 10, "h": 5}}</tool_call>'
    assert (
        parse_cli.main(parse_cli.parse_args(["--tools", str(tools)]), stdin=io.StringIO(text)) == 0
    )
    assert json.loads(capsys.readouterr().out)["tool_calls"][0]["arguments"] == {"base": 10, "h": 5}


def test_parse_cli_refuses_an_unknown_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([_tool({"money": {"type": "usd"}})]))
    assert parse_cli.main(parse_cli.parse_args(["--tools", str(tools)]), stdin=io.StringIO("")) == 2
    assert "parameters.money: unknown type 'usd'" in capsys.readouterr().err


def test_client_sends_json_schema():
    body = build_chat_request(
        [{"role": "user", "content": "hi"}], tools=[_tool({"h": {"type": "float"}})]
    )
    assert body["tools"][0]["parameters"]["properties"]["h"] == {"type": "number"}
    with pytest.raises(RequestError, match="unknown type"):
        build_chat_request(
            [{"role": "user", "content": "hi"}], tools=[_tool({"m": {"type": "usd"}})]
        )
