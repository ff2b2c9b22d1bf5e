"""`python -m inference.parsing` (old name: `inference.parse`): what an engineer runs to debug a
model's output by hand."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inference.parsing.__main__ import main, parse_args

COMPLETION = (
    "<think>\nweather\n</think>\n\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"town": "Rome"}}\n</tool_call><|im_end|>'
)


@pytest.fixture
def tools_file(tmp_path: Path, tools: list[dict[str, Any]]) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(tools))
    return path


def test_prints_reasoning_calls_and_errors(
    tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(parse_args(["--tools", str(tools_file)]), stdin=io.StringIO(COMPLETION)) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["reasoning"] == "weather"
    assert document["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert [e["kind"] for e in document["errors"]] == ["missing_argument"]
    assert "town" in document["errors"][0]["raw"]


def test_accepts_a_chat_completion_json(
    tools_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    response = {"choices": [{"message": {"content": "Hi", "reasoning_content": "greet"}}]}
    assert (
        main(parse_args(["--tools", str(tools_file)]), stdin=io.StringIO(json.dumps(response))) == 0
    )
    assert json.loads(capsys.readouterr().out)["reasoning"] == "greet"


def test_bad_tools_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text("[{")
    assert main(parse_args(["--tools", str(bad)]), stdin=io.StringIO("hi")) == 2
    assert "cannot use --tools" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [b"[" + b"9" * 10_000 + b"]", b"[" * 5000, b'[{"name": "a", "name": "b"}]', b"\xff\xfe["],
    ids=["huge integer", "deep nesting", "duplicate key", "not UTF-8"],
)
def test_unusable_tools_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    bad = tmp_path / "tools.json"
    bad.write_bytes(content)
    assert main(parse_args(["--tools", str(bad)]), stdin=io.StringIO("hi")) == 2
    assert "cannot use --tools" in capsys.readouterr().err


def test_unreadable_input_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "completion.bin"
    binary.write_bytes(b"<tool_call>\xff\xfe</tool_call>")
    assert main(parse_args(["--input", str(binary)])) == 2
    assert main(parse_args(["--input", str(tmp_path / "missing.txt")])) == 2
    assert capsys.readouterr().err.count("cannot read the completion") == 2


def test_undecodable_json_input_is_read_as_raw_text(capsys: pytest.CaptureFixture[str]) -> None:
    hostile = '{"choices": [{"message": {"content": "x"}}], "n": ' + "9" * 10_000 + "}"
    assert main(parse_args([]), stdin=io.StringIO(hostile)) == 0
    assert json.loads(capsys.readouterr().out)["content"] == hostile


@pytest.mark.parametrize("module", ["inference.parsing", "inference.parse"])
def test_runs_as_a_module(tools_file: Path, module: str) -> None:
    """The package's `__main__`, and the old name's shim, run the same command."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--tools", str(tools_file)],
        input=COMPLETION,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["tool_calls"][0]["name"] == "get_weather"
