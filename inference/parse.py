"""Debug a model's output by hand: print what the shared parser makes of one completion.

    python -m inference.parse --tools TOOLS.json < completion.txt

The input is raw generated text, or an OpenAI-style chat completion JSON (detected by its
``choices``). TOOLS.json holds the OpenAI-style ``tools`` list. Exit status: 0 when the completion
parsed without errors, 1 when it has errors, 2 on bad usage (unreadable or invalid tools file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from inference.cli import command_parser
from inference.parsing import (
    ParsedCompletion,
    ToolSchemaError,
    compile_tools,
    parse_chat_response,
    parse_completion,
)


def parse_any(text: str, tools: Any) -> ParsedCompletion:
    """Chat-completion JSON if the input is one, raw completion text otherwise."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and "choices" in document:
            return parse_chat_response(document, tools)
    return parse_completion(text, tools)


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    parser = command_parser("inference.parse", __doc__)
    parser.add_argument("--tools", type=Path, help="JSON file with the OpenAI-style tools list")
    parser.add_argument("--input", type=Path, help="read the completion from here, not stdin")
    parser.add_argument("--lenient", action="store_true", help="allow arguments not in the schema")
    args = parser.parse_args(argv)
    tools = None
    if args.tools is not None:
        try:
            tools = compile_tools(
                json.loads(args.tools.read_text(encoding="utf-8")), strict=not args.lenient
            )
        except (OSError, json.JSONDecodeError, ToolSchemaError) as exc:
            print(f"error: cannot use --tools {args.tools}: {exc}", file=sys.stderr)
            return 2
    if args.input is not None:
        text = args.input.read_text(encoding="utf-8")
    else:
        text = (stdin or sys.stdin).read()
    parsed = parse_any(text, tools)
    print(parsed.to_json(indent=2))
    return 0 if parsed.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
