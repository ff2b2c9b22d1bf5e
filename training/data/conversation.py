"""The canonical tool-calling conversation every reader converts to and every later step consumes.

One shape for all sources (OpenAI messages, xLAM, Hermes/ShareGPT), validated once, so rendering,
evaluation and the eval split never look at a dataset's own quirks again.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from inference.parsing import ToolSchemaError, normalize_tools

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


class ConversationError(ValueError):
    """A record that cannot become a valid `Conversation`; `kind` is a short code for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RecordError:
    """A rejected input record: where it was, why, and its original text (nothing is lost).

    A line the reader refuses before parsing also says where its bytes are in the input
    (``offset``, ``size``); a line that is not UTF-8 keeps its exact bytes in ``record_base64``
    (``record`` shows them with backslash escapes), and a line over the byte limit keeps only
    its first KiB in ``record``.
    """

    line: int
    kind: str
    reason: str
    record: str = ""
    offset: int | None = None
    size: int | None = None
    record_base64: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The quarantine row: ``{"line", "kind", "reason", "record"}`` plus the optional fields
        that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


# Nesting a record may have. Tool schemas and arguments nest a handful of levels; a record
# hundreds deep is an attack on the recursive steps that follow (rendering, json.dumps).
MAX_JSON_DEPTH = 64
# A "\ud800"-style escape that may decode to a lone surrogate, which no UTF-8 encoder accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


def decode_json(text: str, what: str, invalid_kind: str = "malformed_json") -> Any:
    """``json.loads`` for untrusted text: any failure is a `ConversationError` (never a crash).

    Kinds: `invalid_kind` for bad syntax, ``number_too_large`` for an integer past Python's
    digit limit, ``too_deep`` for nesting past `MAX_JSON_DEPTH`, ``lone_surrogate`` for a
    ``\\ud800`` escape with no partner (it would break every later encode).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConversationError(invalid_kind, f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise ConversationError("too_deep", f"{what} nests too deep to parse") from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise ConversationError("number_too_large", f"{what}: {e}") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("{") + text.count("[") > MAX_JSON_DEPTH:  # else cannot be deep
        check_json(value, what, surrogates=surrogates)
    return value


def check_json(value: Any, what: str, *, surrogates: bool = True) -> None:
    """Refuse nesting past `MAX_JSON_DEPTH` and (when `surrogates`) lone surrogates in any
    string or key; iterative, so a deep value cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates and SURROGATE.search(item):
                raise ConversationError("lone_surrogate", f"{what} holds a lone surrogate escape")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ConversationError("too_deep", f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Conversation:
    """Messages plus the tools offered, each ``{"type": "function", "function": {...}}``."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()
    source_line: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.tools)

    def template_messages(self) -> list[dict[str, Any]]:
        """The messages as the Qwen3 template reads them (`reasoning_content`, `tool_calls`)."""
        out = []
        for m in self.messages:
            d: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.reasoning is not None:
                d["reasoning_content"] = m.reasoning
            if m.tool_calls:
                d["tool_calls"] = [
                    {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
            if m.name is not None:
                d["name"] = m.name
            if m.tool_call_id is not None:
                d["tool_call_id"] = m.tool_call_id
            out.append(d)
        return out

    def to_record(self) -> dict[str, Any]:
        """An OpenAI `messages` record (arguments as JSON strings) that `formats` reads back."""
        messages = []
        for d in self.template_messages():
            for call in d.get("tool_calls", ()):
                call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
            messages.append(d)
        record: dict[str, Any] = {"messages": messages, "tools": list(self.tools)}
        if self.meta:
            record["meta"] = dict(self.meta)
        return record


# Distinct tools whose normalised form `normalize_tool` keeps, and the longest tool (JSON
# characters) it keeps one for: a dataset draws its tools from a catalog, which this holds
# whole; a tool schema is a few hundred bytes, and the bound is a few tens of MiB however the
# data varies (1,024 keys of at most 16 KiB, each beside its normalised JSON).
TOOL_CACHE_SIZE = 1024
TOOL_CACHE_MAX_CHARS = 16 << 10


def normalize_tool(tool: Any) -> dict[str, Any]:
    """A tool in OpenAI form, from that form or a bare ``{name, description, parameters}``.

    `tool` is JSON data (the readers pass what they decoded). A tool a dataset repeats is
    normalised once: the result is cached under the tool's JSON text (key order kept, since
    the template prints keys in order) and every call gets a fresh copy decoded from the
    cached JSON, so a caller that changes its tools changes nobody else's.
    """
    if not isinstance(tool, dict):
        raise ConversationError("bad_tool", f"tool is not an object: {tool!r:.80}")
    try:
        key = json.dumps(tool)
    except (TypeError, ValueError, RecursionError):  # not JSON data: normalise it uncached
        return _normalize_tool(tool)
    if len(key) > TOOL_CACHE_MAX_CHARS:
        return _normalize_tool(tool)
    return cast(dict[str, Any], json.loads(_normalized_tool_json(key)))


@functools.lru_cache(maxsize=TOOL_CACHE_SIZE)
def _normalized_tool_json(key: str) -> str:
    """`normalize_tool` of the tool `key` encodes, as JSON text (errors are not cached)."""
    return json.dumps(_normalize_tool(json.loads(key)))


def _normalize_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ConversationError("bad_tool", f"tool has no function name: {tool!r:.80}")
    function = {"name": fn["name"], "description": fn.get("description", "")}
    function["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
    try:  # BFCL's `dict`/`float`, xLAM's `str`: JSON Schema from here on, for template and checks
        (normalized,) = normalize_tools([function])
    except ToolSchemaError as e:
        raise ConversationError("bad_tool", str(e)) from e
    return {"type": "function", "function": normalized}


def parse_arguments(raw: Any, tool: str) -> dict[str, Any]:
    """Tool-call arguments as a dict; a JSON string is decoded. Anything else is an error."""
    if isinstance(raw, str) and not raw.strip():
        raw = {}
    elif isinstance(raw, str):
        raw = decode_json(raw, f"arguments of {tool!r}", "arguments_not_object")
    if not isinstance(raw, dict):
        raise ConversationError(
            "arguments_not_object", f"arguments of {tool!r} are not a JSON object: {raw!r:.80}"
        )
    return raw


def check_role(role: Any) -> Role:
    if role not in ROLES:
        raise ConversationError("unknown_role", f"unknown role {role!r}")
    return cast(Role, role)


def build(
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]] = (),
    *,
    source_line: int = 0,
    meta: Mapping[str, Any] | None = None,
    known_tools_only: bool = True,
) -> Conversation:
    """A validated `Conversation`; raises `ConversationError` on the first problem found."""
    conv = Conversation(tuple(messages), tuple(tools), source_line, dict(meta or {}))
    validate(conv, known_tools_only=known_tools_only)
    return conv


def validate(conv: Conversation, *, known_tools_only: bool = True) -> None:
    """Check what training relies on: known roles and tools, object arguments, calls before results.

    Raises `ConversationError` whose `kind` is one of: empty, no_assistant, unknown_role,
    unknown_tool, arguments_not_object, orphan_tool_result, duplicate_tool.
    `known_tools_only=False` lets calls name tools that are not offered: a preference pair's
    rejected completion may hallucinate one, since that is a mistake worth training against.
    """
    if not conv.messages:
        raise ConversationError("empty", "conversation has no messages")
    names = [t["function"]["name"] for t in conv.tools]
    if len(set(names)) != len(names):
        raise ConversationError("duplicate_tool", f"tools declare a name twice: {names}")
    known = set(names)
    open_calls = 0  # calls of the latest assistant turn not yet answered by a tool message
    for i, m in enumerate(conv.messages):
        check_role(m.role)
        if m.role == "assistant":
            for c in m.tool_calls:
                if known_tools_only and c.name not in known:
                    raise ConversationError(
                        "unknown_tool",
                        f"message {i} calls {c.name!r}, which is not among the tools"
                        f" {sorted(known)}",
                    )
                if not isinstance(c.arguments, dict):
                    raise ConversationError(
                        "arguments_not_object", f"message {i}: arguments of {c.name!r} not a dict"
                    )
            open_calls = len(m.tool_calls)
        elif m.role == "tool":
            if open_calls == 0:
                raise ConversationError(
                    "orphan_tool_result", f"message {i} is a tool result with no call before it"
                )
            open_calls -= 1
        else:
            open_calls = 0
    if not any(m.role == "assistant" for m in conv.messages):
        raise ConversationError("no_assistant", "conversation has no assistant turn to learn from")
