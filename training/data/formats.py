"""Readers for the tool-calling JSONL formats found in the wild, each yielding canonical
`Conversation`s (or `TextDocument`s for continued pre-training) and a `RecordError` per bad line.

Formats: OpenAI/HF ``messages`` (+ ``tools``), xLAM (``query``/``tools``/``answers`` as JSON
strings), Hermes and LLaMA-Factory ShareGPT (``conversations`` with ``from``/``value``), and raw
``text``. ``auto`` decides per record from its keys, so mixed files work.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from inference.parsing import (
    CALL_CLOSE,
    CALL_OPEN,
    THINK_OPEN,
    ErrorKind,
    ParseError,
    content_text,
    dialect_type,
    parse_completion,
    split_optional,
)
from training.data.conversation import (
    Conversation,
    ConversationError,
    Message,
    RecordError,
    ToolCall,
    build,
    check_role,
    decode_json,
    normalize_tool,
    parse_arguments,
)

FORMATS = ("auto", "messages", "xlam", "sharegpt", "text")


@dataclass(frozen=True)
class TextDocument:
    """Raw text for continued pre-training: loss on every token."""

    text: str
    source_line: int = 0


Record = Conversation | TextDocument
R = TypeVar("R")


def read_jsonl(path: Path, fmt: str = "auto") -> Iterator[tuple[str, Record | RecordError]]:
    """Stream `path` line by line: ``(raw line, record or error)``; blank lines are skipped."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    for number, line in numbered_lines(path):
        if isinstance(line, RecordError):
            yield line.record, line
        else:
            yield line, parse_line(line, number, fmt)


PREVIEW_BYTES = 1024  # what the quarantine keeps of a line over the byte limit
_CHUNK = 1 << 20


def numbered_lines(
    path: Path, *, max_line_bytes: int | None = None
) -> Iterator[tuple[int, str | RecordError]]:
    """Non-blank lines of `path` with their 1-based numbers, streamed.

    The file is read as bytes and each line decoded on its own, so one bad line costs only
    itself: a line that is not UTF-8 comes as a ``not_utf8`` `RecordError`, and one longer than
    `max_line_bytes` (its newline aside) as ``line_too_long``, refused before it is decoded,
    parsed or tokenised, and read past in chunks rather than held whole.
    """
    read = -1 if max_line_bytes is None else max_line_bytes + 2  # the line, "\r\n", no more
    offset = 0
    with path.open("rb") as f:
        for number in count(1):
            raw = f.readline(read)
            if not raw:
                return
            start, size, last = offset, len(raw), raw
            while len(raw) == read and last and not last.endswith(b"\n"):
                last = f.readline(_CHUNK)  # past the limit: count the rest, keep none of it
                size += len(last)
            offset += size
            body = size - _eol(last)
            if max_line_bytes is not None and body > max_line_bytes:
                reason = (
                    f"line {number}: {body:,} bytes, more than the {max_line_bytes:,}-byte limit"
                    " (--max-line-bytes); refused unparsed, its first KiB kept here, the whole"
                    " line at offset/size in the input"
                )
                preview = raw[:PREVIEW_BYTES].decode("utf-8", "backslashreplace")
                yield number, RecordError(number, "line_too_long", reason, preview, start, size)
                continue
            line = raw[: len(raw) - _eol(raw)]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield (
                    number,
                    RecordError(
                        number,
                        "not_utf8",
                        f"line {number}: not UTF-8: {e}",
                        line.decode("utf-8", "backslashreplace"),
                        start,
                        size,
                        base64.b64encode(line).decode("ascii"),
                    ),
                )
                continue
            if text.strip():
                yield number, text


def _eol(raw: bytes) -> int:
    """Bytes of the line ending `raw` ends with: 2 for CRLF, 1 for LF, 0 at the end of a file."""
    return 2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0


def parse_line(line: str, number: int, fmt: str = "auto") -> Record | RecordError:
    """One JSONL line as a record, or a `RecordError` saying why not (never raises on bad data)."""

    def read() -> Record:
        obj = decode_json(line, "the line")
        if not isinstance(obj, dict):
            raise ConversationError("malformed_record", "record is not a JSON object")
        kind = detect(obj) if fmt == "auto" else fmt
        if missing := [k for k in REQUIRED_KEYS[kind] if k not in obj]:
            raise ConversationError("malformed_record", f"{kind} record lacks {', '.join(missing)}")
        return READERS[kind](obj, number)

    return read_or_error(read, line, number)


def read_or_error(read: Callable[[], R], line: str, number: int) -> R | RecordError:
    """`read()`, or the `RecordError` for JSONL line `number` saying why it failed: one bad record
    is quarantined with its line and kind, never a crash of the whole run."""
    try:
        return read()
    except ConversationError as e:
        return RecordError(number, e.kind, f"line {number}: {e}", line)
    except RecursionError:
        return RecordError(number, "too_deep", f"line {number}: nests too deep to read", line)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # A field of the wrong shape deep inside a record: report it, do not crash the run.
        return RecordError(
            number, "malformed_record", f"line {number}: {type(e).__name__}: {e}", line
        )


def detect(obj: dict[str, Any]) -> str:
    if "messages" in obj:
        return "messages"
    if "conversations" in obj:
        return "sharegpt"
    if "query" in obj and "answers" in obj:
        return "xlam"
    if isinstance(obj.get("text"), str):
        return "text"
    raise ConversationError(
        "unknown_format",
        f"cannot tell the format from keys {sorted(obj)[:8]} (expected messages, conversations,"
        " query+answers or text)",
    )


def _json_field(value: Any, what: str) -> Any:
    """xLAM and LLaMA-Factory store lists as JSON strings; HF datasets sometimes already decode."""
    if isinstance(value, str):
        return decode_json(value, what, "malformed_record") if value.strip() else []
    return value


def _tools(value: Any) -> list[dict[str, Any]]:
    tools = _json_field(value, "tools") or []
    if not isinstance(tools, list):
        raise ConversationError("bad_tool", "tools is not a list")
    return [normalize_tool(t) for t in tools]


# --- OpenAI / Hugging Face messages ---------------------------------------------------------


def _text(content: Any) -> str:
    """Content as a string, by the rule model output is read with (``content_text``: None,
    a string or a list of text parts), plus tool results some datasets store as objects."""
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False)
    text = content_text(content)
    if isinstance(text, ParseError):
        raise ConversationError("malformed_record", f"{text.reason}: {content!r:.60}")
    return text


def read_messages(obj: dict[str, Any], line: int, *, known_tools_only: bool = True) -> Conversation:
    raw_messages = obj["messages"]
    if not isinstance(raw_messages, list):
        raise ConversationError("malformed_record", "messages is not a list")
    messages = []
    for m in raw_messages:
        role = {"developer": "system"}.get(m.get("role"), m.get("role"))
        content = _text(m.get("content"))
        if role == "assistant":
            reasoning = m.get("reasoning_content", m.get("reasoning"))
            calls = [_openai_call(c) for c in m.get("tool_calls") or ()]
            if reasoning is None or not calls:
                # Some datasets inline `<think>`/`<tool_call>` text in the content instead.
                text_reasoning, content, text_calls = split_assistant_text(content)
                reasoning = reasoning if reasoning is not None else text_reasoning
                calls = calls or text_calls
            messages.append(Message("assistant", content, reasoning, tuple(calls)))
        else:
            messages.append(
                Message(
                    check_role(role),
                    content,
                    name=m.get("name"),
                    tool_call_id=m.get("tool_call_id"),
                )
            )
    return build(
        messages,
        _tools(obj.get("tools")),
        source_line=line,
        meta=record_meta(obj),
        known_tools_only=known_tools_only,
    )


def _openai_call(call: dict[str, Any]) -> ToolCall:
    fn = call.get("function", call)
    name = fn["name"]
    return ToolCall(name, parse_arguments(fn.get("arguments", {}), name))


def record_meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


# --- xLAM ----------------------------------------------------------------------------------


def xlam_type_schema(type_name: str) -> tuple[dict[str, Any], bool]:
    """JSON Schema for an xLAM type string, and whether it is optional.

    The mapping is the parser's one table (`inference.parsing.dialect_type`): ``"List[str]"`` ->
    array of strings, ``"Optional[int]"`` / ``"int, optional"`` -> optional integer. An unknown
    type (``"Callable"``) gets no type constraint rather than a guess: xLAM's types are free text.
    """
    found = dialect_type(type_name)
    return found if found is not None else ({}, split_optional(type_name)[1])


def xlam_parameters(params: Any) -> dict[str, Any]:
    """xLAM's ``{name: {type, description, default}}`` as a JSON Schema object.

    Required: every parameter without a ``default`` and not marked optional.
    """
    if not isinstance(params, dict):
        raise ConversationError("bad_tool", f"xLAM parameters are not an object: {params!r:.60}")
    if params.get("type") == "object" and isinstance(params.get("properties"), dict):
        return params  # already JSON Schema (some xLAM derivatives converted it)
    properties: dict[str, Any] = {}
    required = []
    for pname, raw_spec in params.items():
        spec = raw_spec if isinstance(raw_spec, dict) else {}
        schema, optional = xlam_type_schema(str(spec.get("type", "")))
        if spec.get("description"):
            schema["description"] = spec["description"]
        if "default" in spec:
            schema["default"] = spec["default"]
        elif not optional:
            required.append(pname)
        properties[pname] = schema
    return {"type": "object", "properties": properties, "required": required}


def read_xlam(obj: dict[str, Any], line: int) -> Conversation:
    raw_tools = _json_field(obj["tools"], "tools")
    if not isinstance(raw_tools, list):
        raise ConversationError("bad_tool", "tools is not a list")
    tools = [
        normalize_tool(
            {
                "name": t.get("name"),
                "description": t.get("description", ""),
                "parameters": xlam_parameters(t.get("parameters", {})),
            }
        )
        for t in raw_tools
    ]
    answers = _json_field(obj["answers"], "answers")
    if not isinstance(answers, list):
        raise ConversationError("malformed_record", "answers is not a list")
    calls = tuple(
        ToolCall(a["name"], parse_arguments(a.get("arguments", {}), a["name"])) for a in answers
    )
    messages = [Message("user", str(obj["query"])), Message("assistant", "", None, calls)]
    meta = {"id": obj["id"]} if "id" in obj else {}
    return build(messages, tools, source_line=line, meta=meta)


# --- Hermes / ShareGPT / LLaMA-Factory ------------------------------------------------------

_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",  # LLaMA-Factory: the call as JSON, its own turn
    "tool": "tool",
    "observation": "tool",
    "function_response": "tool",
}
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)


def _json(text: str, what: str) -> Any:
    return decode_json(text, what, "bad_tool")


def split_assistant_text(text: str) -> tuple[str | None, str, list[ToolCall]]:
    """Assistant text with inline ``<think>``/``<tool_call>`` -> (reasoning, content, calls),
    read by the one parser of model output (`inference.parsing`). Any call it rejects (a
    Python-literal body, an unclosed tag, arguments that are not an object) quarantines the
    record with the parser's reason: nothing is guessed at."""
    if THINK_OPEN not in text and CALL_OPEN not in text and CALL_CLOSE not in text:
        return None, text, []
    parsed = parse_completion(text)  # tools are checked later, by `validate`
    if parsed.errors:
        e = parsed.errors[0]
        kind = (
            "arguments_not_object"
            if e.kind == ErrorKind.INVALID_ARGUMENTS
            else "malformed_tool_call"
        )
        raise ConversationError(kind, f"{e.kind}: {e.reason}: {e.raw[:80]!r}")
    return (
        parsed.reasoning,
        parsed.content,
        [ToolCall(c.name, c.arguments) for c in parsed.tool_calls],
    )


def _function_call_turn(value: str) -> tuple[ToolCall, ...]:
    """LLaMA-Factory's ``function_call`` turn: one call object (or a list of them) as JSON,
    read by the same parser as a ``<tool_call>`` block (which reports a body that is not JSON)."""
    try:
        body = decode_json(value, "function_call")
    except ConversationError as e:
        if e.kind != "malformed_json":
            raise
        body = None
    bodies = [json.dumps(b) for b in body] if isinstance(body, list) else [value]
    _, _, calls = split_assistant_text("".join(f"{CALL_OPEN}\n{b}\n{CALL_CLOSE}" for b in bodies))
    return tuple(calls)


def _tools_from_system(text: str) -> tuple[list[dict[str, Any]], str]:
    """Tools listed inside ``<tools>…</tools>`` (a JSON list or one JSON per line); the system
    text with that block removed, since the chat template writes its own tools section."""
    m = _TOOLS.search(text)
    if not m:
        return [], text
    body = m.group(1).strip()
    if body.startswith("["):
        parsed = _json(body, "tools")
    else:
        parsed = [_json(ln, "tools") for ln in body.splitlines() if ln.strip()]
    if not isinstance(parsed, list):
        parsed = [parsed]
    rest = (text[: m.start()] + text[m.end() :]).strip()
    return [normalize_tool(t) for t in parsed], rest


def read_sharegpt(obj: dict[str, Any], line: int) -> Conversation:
    turns = obj["conversations"]
    if not isinstance(turns, list):
        raise ConversationError("malformed_record", "conversations is not a list")
    tools = _tools(obj.get("tools"))
    messages: list[Message] = []
    for turn in turns:
        who, value = turn.get("from"), _text(turn.get("value"))
        role = _SHAREGPT_ROLES.get(who) if isinstance(who, str) else None
        if role is None:
            raise ConversationError("unknown_role", f"unknown role {who!r}")
        if role == "system":
            found, value = _tools_from_system(value)
            tools.extend(found)
            if value:
                messages.append(Message("system", value))
        elif who == "function_call":
            messages.append(Message("assistant", "", None, _function_call_turn(value)))
        elif role == "assistant":
            reasoning, content, calls = split_assistant_text(value)
            messages.append(Message("assistant", content, reasoning, tuple(calls)))
        elif role == "tool":
            responses = _TOOL_RESPONSE.findall(value) or [value]
            messages.extend(Message("tool", r.strip("\n")) for r in responses)
        else:
            messages.append(Message("user", value))
    return build(messages, tools, source_line=line, meta=record_meta(obj))


def read_text(obj: dict[str, Any], line: int) -> TextDocument:
    text = obj["text"]
    if not isinstance(text, str) or not text:
        raise ConversationError("empty", "text is empty or not a string")
    return TextDocument(text, line)


REQUIRED_KEYS = {
    "messages": ("messages",),
    "xlam": ("query", "tools", "answers"),
    "sharegpt": ("conversations",),
    "text": ("text",),
}
READERS: dict[str, Callable[[dict[str, Any], int], Record]] = {
    "messages": read_messages,
    "xlam": read_xlam,
    "sharegpt": read_sharegpt,
    "text": read_text,
}
