"""Debug a model's output by hand: print what the shared parser makes of one completion.

    python -m inference.parsing --tools TOOLS.json < completion.txt

The input is raw generated text, or an OpenAI-style chat completion JSON (detected by its
``choices``). TOOLS.json holds the OpenAI-style ``tools`` list (JSON Schema, or the BFCL/xLAM
dialects: ``dict``, ``float``, ``List[str]`` ...). Exit status: 0 when the completion
parsed without errors, 1 when it has errors, 2 on bad usage (unreadable or invalid tools file,
unreadable or non-UTF-8 input).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from core import cli
from inference.parsing import (
    MAX_COMPLETION_CHARS,
    ParsedCompletion,
    ParseError,
    ToolSchemaError,
    Toolset,
    compile_tools,
    decode_json,
    normalize_tools,
    parse_chat_response,
    parse_completion,
)


@dataclass(frozen=True)
class ParseArgs:
    tools: Path | None = field(
        default=None, metadata={"help": "JSON file with the OpenAI-style tools list"}
    )
    input: Path | None = field(
        default=None, metadata={"help": "read the completion from here, not stdin"}
    )
    lenient: bool = cli.switch("allow arguments not in the schema")


parse_args = cli.args_parser(ParseArgs, __doc__, module="inference.parsing", with_examples=True)


def parse_any(text: str, tools: Any) -> ParsedCompletion:
    """Chat-completion JSON if the input is one, raw completion text otherwise."""
    stripped = text.strip()
    if stripped.startswith("{") and len(stripped) <= MAX_COMPLETION_CHARS:
        document = decode_json(stripped, "input")
        if isinstance(document, dict) and "choices" in document:
            return parse_chat_response(document, tools)
    return parse_completion(text, tools)


def _tools(path: Path, *, strict: bool) -> Toolset:
    """The tools file, compiled; `ValueError` says why it cannot be used."""
    tools = decode_json(path.read_text(encoding="utf-8"), "the tools file")
    if isinstance(tools, ParseError):
        raise ValueError(tools.reason)
    return compile_tools(normalize_tools(tools), strict=strict)


def _read(path: Path | None, stdin: TextIO | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8")
    return (stdin or sys.stdin).read()


def main(args: ParseArgs, *, stdin: TextIO | None = None) -> int:
    tools = None
    if args.tools is not None:
        try:
            tools = _tools(args.tools, strict=not args.lenient)
        except (OSError, ValueError, ToolSchemaError) as exc:  # UnicodeDecodeError included
            print(f"error: cannot use --tools {args.tools}: {exc}", file=sys.stderr)
            return 2
    try:
        text = _read(args.input, stdin)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the completion: {exc}", file=sys.stderr)
        return 2
    parsed = parse_any(text, tools)
    print(parsed.to_json(indent=2))
    return 0 if parsed.ok else 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
