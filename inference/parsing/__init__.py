"""One parser for Qwen3 completions, shared by the endpoint client and the training evaluation.

It turns what a model or server produced into reasoning, visible text and schema-validated tool
calls, and reports every malformed piece as a typed `ParseError` instead of raising or dropping it.

Public API (stable; additions only):

    parse_completion(text, tools=None, *, strict=True) -> ParsedCompletion
        Raw generated text: the continuation after ``<|im_start|>assistant\\n``. It may open with
        ``<think>``, carry only the closing ``</think>`` (when the prompt opened the block), or
        have reasoning already closed by the prompt; a trailing ``<|im_end|>``/``<|endoftext|>``
        (and anything after it) is cut off. Calls come from ``<tool_call>{json}</tool_call>``.
    parse_chat_response(response, tools=None, *, strict=True) -> ParsedCompletion
        An OpenAI-style chat completion: ``choices[0].message``.
    parse_message(message, tools=None, *, strict=True) -> ParsedCompletion
        One OpenAI-style assistant message: ``content``, ``reasoning_content``/``reasoning`` and
        ``tool_calls`` (``function.arguments`` a JSON string). Raw ``<think>``/``<tool_call>``
        left in ``content`` by a server without reasoning/tool parsers are parsed as well.
    normalize_tools(tools) -> list[dict]
        Tools written in the schema dialects datasets use (BFCL/Gorilla ``dict``/``float``/
        ``tuple``/``any``, xLAM ``str``/``List[str]``) as JSON Schema; call it where tools enter
        (prepare, evaluate, ``python -m inference.parsing``, the client). An unknown type name
        raises `ToolSchemaError` naming the tool and the field.
    compile_tools(tools, *, strict=True) -> Toolset
        Pre-compiles the validators; pass the `Toolset` as ``tools`` on hot paths (it carries its
        own `strict`). Plain lists are compiled once and cached by content.
    ParsedCompletion(reasoning, content, tool_calls, errors); .ok, .to_dict(), .to_json()
    ToolCall(name, arguments, raw, id=None)
    ParseError(kind, reason, raw, tool=None); ErrorKind (a str enum, values below)
    decode_json(text, what) -> value | ParseError
        The one JSON decoder for model and server output: refuses duplicate keys, NaN/Infinity,
        integers over MAX_INT_DIGITS digits and nesting over MAX_JSON_DEPTH levels.

Bounds: a completion (or a message's content plus reasoning) over MAX_COMPLETION_CHARS is one
``malformed_response`` error; below it, time and memory are linear in the text (one pass over
the tags).

Tools are accepted in OpenAI form ``{"type": "function", "function": {name, description,
parameters}}`` or bare ``{name, description, parameters}``. With ``tools=None`` calls are parsed but
not validated (no unknown-tool check either). With ``strict=True`` (the default, as BFCL-style
checkers expect) an argument missing from the schema's ``properties`` is an error even when the
schema does not set ``additionalProperties: false``; an explicit ``additionalProperties`` wins.

Reasoning is ``None`` when the completion has no think block and ``""`` when the block is empty
(thinking switched off by the prompt). A ``<tool_call>`` inside reasoning is a thought, not a call.
A call present both in ``tool_calls`` and as a raw block in ``content`` is reported once. Complete
``<tool_call>`` blocks in a server's *reasoning field* count as calls when the message has no
other call (vLLM's qwen3 reasoning parser misfiles non-thinking answers there, vllm#19513).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, relevance

__all__ = [
    "ErrorKind",
    "ParseError",
    "ParsedCompletion",
    "ToolCall",
    "ToolSchemaError",
    "Toolset",
    "compile_tools",
    "decode_json",
    "dialect_type",
    "normalize_tools",
    "parse_chat_response",
    "parse_completion",
    "parse_message",
]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
END_TOKENS = ("<|im_end|>", "<|endoftext|>")
_ASSISTANT_HEADER = "<|im_start|>assistant\n"
_END_RE = re.compile("|".join(re.escape(t) for t in END_TOKENS))
_CALL_TAG_RE = re.compile(f"{re.escape(CALL_OPEN)}|{re.escape(CALL_CLOSE)}")

# Bounds on what the parser reads, so that any input is answered in linear time and memory.
# 131,072 tokens (Qwen3's longest context, with YaRN) at 16 characters a token: far above any
# real completion; a longer text is refused whole rather than scanned.
MAX_COMPLETION_CHARS = 2 * 1024 * 1024
MAX_JSON_DEPTH = 64  # nesting of one JSON document; tool arguments need a handful of levels
MAX_INT_DIGITS = 4300  # CPython's default int limit, enforced whatever the interpreter's setting
_RAW_LIMIT = 2000  # characters of the raw input quoted in a whole-input error


class ErrorKind(StrEnum):
    """Why a piece of model output was rejected; values are stable strings for JSON and metrics."""

    UNCLOSED_TAG = "unclosed_tag"  # <think> or <tool_call> never closed (truncated output)
    STRAY_TAG = "stray_tag"  # a closing </tool_call> with no opening tag
    INVALID_JSON = "invalid_json"  # the call body (or function.arguments string) is not JSON
    NOT_AN_OBJECT = "not_an_object"  # the call body is JSON but not an object
    MISSING_NAME = "missing_name"  # no non-empty string "name"
    INVALID_ARGUMENTS = "invalid_arguments"  # "arguments" is not an object
    UNKNOWN_TOOL = "unknown_tool"  # the name is not among the offered tools
    MISSING_ARGUMENT = "missing_argument"  # a required argument is absent
    UNEXPECTED_ARGUMENT = "unexpected_argument"  # an argument the schema does not declare
    WRONG_TYPE = "wrong_type"  # an argument of the wrong JSON type
    SCHEMA_VIOLATION = "schema_violation"  # any other JSON-schema failure (enum, range, ...)
    MALFORMED_RESPONSE = "malformed_response"  # the server's JSON lacks choices/message


class ToolSchemaError(ValueError):
    """A tool definition given by the caller is unusable (a programming error, so it raises)."""


@dataclass(frozen=True)
class ToolCall:
    """A call whose arguments passed validation (or were not validated: ``tools=None``)."""

    name: str
    arguments: dict[str, Any]
    raw: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class ParseError:
    """One rejected piece of output: the raw text it came from and why it was rejected."""

    kind: ErrorKind
    reason: str
    raw: str
    tool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "reason": self.reason, "raw": self.raw, "tool": self.tool}


@dataclass(frozen=True)
class ParsedCompletion:
    """What the parser made of one completion."""

    reasoning: str | None
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error at all: every tag closed and every call valid."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "reasoning": self.reasoning,
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "errors": [e.to_dict() for e in self.errors],
        }

    def to_json(self, indent: int | None = None) -> str:
        """The dict of `to_dict` as a JSON string (what ``python -m inference.parsing`` prints)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


# --- tools ------------------------------------------------------------------------------------

# --- schema dialects ----------------------------------------------------------------------------

# The one table from the type names datasets write to JSON Schema's (None: no type constraint).
# BFCL/Gorilla (`dict`, `float`, `tuple`, `any`) and xLAM/Python (`str`, `int`, `List[...]`)
# both appear in real tool lists; jsonschema refuses them, so they are translated once, at entry.
DIALECT_TYPES: dict[str, str | None] = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "object": "object",
    "dict": "object",
    "null": "null",
    "any": None,
}
_GENERIC_RE = re.compile(r"(\w+)\[(.*)\]")


def split_optional(type_name: str) -> tuple[str, bool]:
    """``Optional[int]``, ``Union[int, None]`` and ``int, optional`` -> (``int``, True)."""
    t, optional = type_name.strip(), False
    if t.lower().endswith(", optional"):
        t, optional = t[: -len(", optional")].strip(), True
    if m := re.fullmatch(r"(?i:optional)\[(.*)\]", t):
        t, optional = m.group(1).strip(), True
    if m := re.fullmatch(r"(?i:union)\[(.*),\s*None\]", t):
        t, optional = m.group(1).strip(), True
    return t, optional


def dialect_type(type_name: str) -> tuple[dict[str, Any], bool] | None:
    """JSON Schema for one dialect type name and whether it says optional; None when unknown.

    ``"List[str]"`` -> array of strings, ``"Optional[int]"`` -> (integer, True), ``"any"`` -> {}.
    """
    t, optional = split_optional(type_name)
    if m := _GENERIC_RE.fullmatch(t):
        outer, inner = m.group(1).lower(), m.group(2)
        if DIALECT_TYPES.get(outer, "") == "array" and "," not in inner:
            items = dialect_type(inner)
            if items is None:
                return None
            return (
                {"type": "array", "items": items[0]} if items[0] else {"type": "array"}
            ), optional
        t = outer
    if t.lower() not in DIALECT_TYPES:
        return None
    base = DIALECT_TYPES[t.lower()]
    return ({"type": base} if base else {}), optional


def _json_types(declared: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """The JSON Schema ``type`` for a declared one (None: unconstrained) and implied keywords."""
    implied: dict[str, Any] = {}
    types: list[str] = []
    for name in declared if isinstance(declared, list) else [declared]:
        found = dialect_type(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(sorted(DIALECT_TYPES))
            raise ToolSchemaError(f"{where}: unknown type {name!r} (known: {known}, List[...])")
        schema = dict(found[0])
        if "type" not in schema:  # `any` anywhere in a list: no constraint at all
            return None, {}
        types.append(schema.pop("type"))
        implied.update(schema)
    return (types if isinstance(declared, list) else types[0]), implied


def _normalized_type(node: dict[str, Any], where: str) -> dict[str, Any]:
    """`node` with its ``type`` in JSON Schema terms, keys kept in place (the template prints
    them in order); declared keywords (``items``) win over implied ones."""
    json_type, implied = _json_types(node["type"], where)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key != "type":
            out[key] = value
        elif json_type is not None:
            out[key] = json_type
            out.update((k, v) for k, v in implied.items() if k not in node)
    return out


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_ONES = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")


def _normalize_schema(node: Any, where: str) -> Any:
    """One schema node and everything under it in JSON Schema terms."""
    if not isinstance(node, Mapping):
        return node
    out = dict(node)
    if "type" in out:
        out = _normalized_type(out, where)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {k: _normalize_schema(v, f"{where}.{k}") for k, v in out[key].items()}
    for key in _SCHEMA_ONES:
        if isinstance(out.get(key), Mapping):
            out[key] = _normalize_schema(out[key], f"{where}[{key}]")
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_normalize_schema(v, f"{where}[{key}]") for v in out[key]]
    return out


def normalize_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`tools` (OpenAI or bare form, kept) with every parameter schema in JSON Schema terms.

    Raises `ToolSchemaError` for a tool that is not a tool or a type name no dialect knows,
    naming the tool and the field (``tool 'f': invalid JSON schema: parameters.unit: unknown
    type 'money' ...``).
    """
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise ToolSchemaError("tools must be a list of tool definitions")
    out = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            raise ToolSchemaError(f"tool must be an object, got {type(tool).__name__}")
        name, parameters = _tool_name_and_parameters(tool)
        spec = dict(tool.get("function", tool))
        spec["parameters"] = _normalize_schema(
            parameters, f"tool {name!r}: invalid JSON schema: parameters"
        )
        out.append({**tool, "function": spec} if "function" in tool else spec)
    return out


@dataclass(frozen=True)
class Toolset:
    """Offered tools by name, each with a compiled Draft 2020-12 validator for its arguments."""

    validators: Mapping[str, Draft202012Validator]
    strict: bool

    @property
    def names(self) -> list[str]:
        return sorted(self.validators)


def _tool_name_and_parameters(tool: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    spec = tool.get("function", tool) if tool.get("type", "function") == "function" else None
    if not isinstance(spec, Mapping):
        raise ToolSchemaError(f"tool is neither OpenAI nor bare function form: {tool!r:.200}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ToolSchemaError(f"tool without a name: {tool!r:.200}")
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise ToolSchemaError(f"tool {name!r}: parameters must be a JSON schema object")
    return name, dict(parameters)


def _compile(tools: Sequence[Mapping[str, Any]], strict: bool) -> Toolset:
    validators: dict[str, Draft202012Validator] = {}
    for tool in tools:
        if not isinstance(tool, Mapping):
            raise ToolSchemaError(f"tool must be an object, got {type(tool).__name__}")
        name, schema = _tool_name_and_parameters(tool)
        if name in validators:
            raise ToolSchemaError(f"tool {name!r} is defined twice")
        if strict and "additionalProperties" not in schema:
            # BFCL-style: undeclared arguments are hallucinations even if the schema is lenient.
            schema["additionalProperties"] = False
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ToolSchemaError(f"tool {name!r}: invalid JSON schema: {exc.message}") from exc
        validators[name] = Draft202012Validator(schema)
    return Toolset(validators=validators, strict=strict)


@lru_cache(maxsize=256)
def _compile_cached(key: str, strict: bool) -> Toolset:
    return _compile(json.loads(key), strict)


def compile_tools(tools: Sequence[Mapping[str, Any]] | Toolset, *, strict: bool = True) -> Toolset:
    """Compile (or fetch from the cache) the validators for an OpenAI-style `tools` list."""
    if isinstance(tools, Toolset):
        return tools
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise ToolSchemaError("tools must be a list of tool definitions")
    try:
        key = json.dumps(list(tools), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(f"tools are not JSON-serialisable: {exc}") from exc
    return _compile_cached(key, strict)


def _resolve(tools: Sequence[Mapping[str, Any]] | Toolset | None, strict: bool) -> Toolset | None:
    return None if tools is None else compile_tools(tools, strict=strict)


# --- validation of one call -------------------------------------------------------------------

_KIND_BY_VALIDATOR = {
    "required": ErrorKind.MISSING_ARGUMENT,
    "additionalProperties": ErrorKind.UNEXPECTED_ARGUMENT,
    "type": ErrorKind.WRONG_TYPE,
}


def _check_call(
    name: str, arguments: dict[str, Any], raw: str, toolset: Toolset | None, call_id: str | None
) -> ToolCall | ParseError:
    if toolset is None:
        return ToolCall(name=name, arguments=arguments, raw=raw, id=call_id)
    validator = toolset.validators.get(name)
    if validator is None:
        offered = ", ".join(toolset.names) or "none"
        return ParseError(
            ErrorKind.UNKNOWN_TOOL, f"unknown tool {name!r} (offered: {offered})", raw, name
        )
    try:
        problems = sorted(validator.iter_errors(arguments), key=relevance, reverse=True)
    except Exception as exc:  # e.g. an unresolvable $ref: report it, never crash
        reason = f"the schema of {name!r} could not be applied: {type(exc).__name__}: {exc}"
        return ParseError(ErrorKind.SCHEMA_VIOLATION, reason, raw, name)
    if not problems:
        return ToolCall(name=name, arguments=arguments, raw=raw, id=call_id)
    top = problems[0]
    kind = _KIND_BY_VALIDATOR.get(str(top.validator), ErrorKind.SCHEMA_VIOLATION)
    if top.validator in ("required", "additionalProperties") and top.path:
        kind = ErrorKind.SCHEMA_VIOLATION  # nested objects: not an argument of the tool itself
    details = "; ".join(
        f"{'/'.join(map(str, p.absolute_path)) or '<arguments>'}: {p.message}" for p in problems
    )
    return ParseError(kind, f"arguments of {name!r} do not match its schema: {details}", raw, name)


def _call_from_object(
    obj: Any, raw: str, toolset: Toolset | None, call_id: str | None = None
) -> ToolCall | ParseError:
    """Validate one decoded ``{"name": ..., "arguments": {...}}`` object."""
    if not isinstance(obj, dict):
        return ParseError(
            ErrorKind.NOT_AN_OBJECT, f"tool call is a JSON {type(obj).__name__}, not an object", raw
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return ParseError(ErrorKind.MISSING_NAME, "tool call has no non-empty string 'name'", raw)
    arguments = obj.get("arguments", {})  # a zero-argument call may omit them
    if not isinstance(arguments, dict):
        return ParseError(
            ErrorKind.INVALID_ARGUMENTS,
            f"'arguments' of {name!r} is a JSON {type(arguments).__name__}, not an object",
            raw,
            name,
        )
    return _check_call(name, arguments, raw, toolset, call_id)


# --- JSON ---------------------------------------------------------------------------------------


class _RefusedError(Exception):
    """Raised by the decoder hooks: JSON that `json` accepts but a tool call cannot mean."""

    def __init__(self, kind: ErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _refuse_constant(name: str) -> Any:
    raise _RefusedError(ErrorKind.INVALID_ARGUMENTS, f"non-finite number {name} (not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to infinity
        raise _RefusedError(
            ErrorKind.INVALID_ARGUMENTS, f"number {text[:40]} overflows to infinity"
        )
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        reason = f"an integer of {digits:,} digits (at most {MAX_INT_DIGITS:,})"
        raise _RefusedError(ErrorKind.INVALID_JSON, reason)
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()  # json alone keeps the last of {"name": "a", "name": "b"} silently
    for key, _ in pairs:
        if key in seen:
            raise _RefusedError(ErrorKind.INVALID_JSON, f"duplicate key {key!r}")
        seen.add(key)
    raise AssertionError("unreachable: a shorter dict has a repeated key")


def _too_deep(value: Any) -> bool:
    """Whether `value` nests deeper than MAX_JSON_DEPTH (iterative: no recursion to overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def decode_json(text: str, what: str) -> Any:
    """`json.loads` under the parser's rules, or a `ParseError` (raw = `text`) saying why not.

    Refused beyond what `json` refuses: duplicate keys (`invalid_json`, naming the key), NaN,
    Infinity and numbers that overflow to infinity (`invalid_arguments`), integers over
    MAX_INT_DIGITS digits and nesting over MAX_JSON_DEPTH levels (`invalid_json`).
    """
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except _RefusedError as exc:
        return ParseError(exc.kind, f"{what} is refused: {exc}", text)
    except json.JSONDecodeError as exc:
        reason = f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        return ParseError(ErrorKind.INVALID_JSON, reason, text)
    except ValueError as exc:  # anything else json refuses
        return ParseError(ErrorKind.INVALID_JSON, f"{what} is not valid JSON: {exc}", text)
    except RecursionError:
        return ParseError(ErrorKind.INVALID_JSON, f"{what} nests too deep", text)
    nested = text.count("{") + text.count("[") > MAX_JSON_DEPTH  # cheap test before the walk
    if nested and isinstance(value, dict | list) and _too_deep(value):
        reason = f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
        return ParseError(ErrorKind.INVALID_JSON, reason, text)
    return value


# --- raw text ---------------------------------------------------------------------------------


def _split_reasoning(text: str) -> tuple[str | None, str, list[ParseError]]:
    """Separate the think block from the rest; an unclosed block swallows the rest as reasoning."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        body = stripped[len(THINK_OPEN) :]
        end = body.find(THINK_CLOSE)
        if end < 0:
            error = ParseError(
                ErrorKind.UNCLOSED_TAG, "<think> is never closed (output truncated?)", stripped
            )
            return body.strip(), "", [error]
        return body[:end].strip(), body[end + len(THINK_CLOSE) :], []
    end = text.find(THINK_CLOSE)
    if end >= 0 and CALL_OPEN not in text[:end]:
        # The prompt opened the block (thinking-mode templates do): only the close is generated.
        return text[:end].strip(), text[end + len(THINK_CLOSE) :], []
    return None, text, []


def _kept_text(segment: str, results: list[ToolCall | ParseError]) -> str:
    """Text between calls; a closing tag in it is stray (one error per segment)."""
    if CALL_CLOSE not in segment:
        return segment
    results.append(ParseError(ErrorKind.STRAY_TAG, "</tool_call> without an opening tag", segment))
    return segment.replace(CALL_CLOSE, "")


def _block_result(
    text: str, start: int, end: int, toolset: Toolset | None
) -> ToolCall | ParseError:
    """The call (or error) of the complete block ``text[start:end]``."""
    raw = text[start:end]
    body = text[start + len(CALL_OPEN) : end - len(CALL_CLOSE)].strip()
    decoded = decode_json(body, "tool call body")
    if isinstance(decoded, ParseError):
        return replace(decoded, raw=raw)
    return _call_from_object(decoded, raw, toolset)


def _unclosed(raw: str) -> ParseError:
    return ParseError(ErrorKind.UNCLOSED_TAG, "<tool_call> is never closed", raw.strip())


def _scan_tool_calls(text: str, toolset: Toolset | None) -> tuple[str, list[ToolCall | ParseError]]:
    """Cut every ``<tool_call>`` block out of `text`; returns the leftover text and the results.

    One pass over the tags (linear in the text): an opening tag followed by another opening tag
    before any close is unclosed up to that next tag.
    """
    results: list[ToolCall | ParseError] = []
    kept: list[str] = []
    pos, open_at = 0, -1  # end of the last block; start of the block being read (-1: none)
    for tag in _CALL_TAG_RE.finditer(text):
        if tag.group() == CALL_OPEN:
            if open_at < 0:
                kept.append(_kept_text(text[pos : tag.start()], results))
            else:
                results.append(_unclosed(text[open_at : tag.start()]))
            open_at = tag.start()
        elif open_at >= 0:  # a close outside a block stays in the kept text, reported there
            results.append(_block_result(text, open_at, tag.end(), toolset))
            pos, open_at = tag.end(), -1
    if open_at >= 0:
        results.append(_unclosed(text[open_at:]))
    else:
        kept.append(_kept_text(text[pos:], results))
    return "".join(kept).strip(), results


def _raw_of(value: Any, *, sort_keys: bool = False) -> str:
    """`value` as JSON text for an error's ``raw``; never raises (a cycle or a deep caller-built
    object falls back to its truncated repr)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False, sort_keys=sort_keys)
    except (ValueError, TypeError, RecursionError):
        return repr(value)[:_RAW_LIMIT]


def _unparseable(reason: str, value: Any) -> ParsedCompletion:
    """A completion that is not even text or a message: one `malformed_response` error."""
    error = ParseError(ErrorKind.MALFORMED_RESPONSE, reason, _raw_of(value)[:_RAW_LIMIT])
    return ParsedCompletion(reasoning=None, content="", errors=[error])


def _too_long(length: int, text: str) -> ParsedCompletion:
    reason = (
        f"completion is {length:,} characters; the parser reads at most {MAX_COMPLETION_CHARS:,}"
    )
    return _unparseable(reason, text[:_RAW_LIMIT])


def _strip_envelope(text: str) -> str:
    if text.startswith(_ASSISTANT_HEADER):
        text = text[len(_ASSISTANT_HEADER) :]
    match = _END_RE.search(text)
    return text if match is None else text[: match.start()]


def _assemble(
    reasoning: str | None,
    content: str,
    results: list[ToolCall | ParseError],
    errors: list[ParseError],
) -> ParsedCompletion:
    calls = [r for r in results if isinstance(r, ToolCall)]
    errors = errors + [r for r in results if isinstance(r, ParseError)]
    return ParsedCompletion(reasoning=reasoning, content=content, tool_calls=calls, errors=errors)


def parse_completion(
    text: str,
    tools: Sequence[Mapping[str, Any]] | Toolset | None = None,
    *,
    strict: bool = True,
) -> ParsedCompletion:
    """Parse raw generated text into reasoning, content and validated tool calls."""
    toolset = _resolve(tools, strict)
    if not isinstance(text, str):
        return _unparseable("completion is not a string", repr(text))
    if len(text) > MAX_COMPLETION_CHARS:  # refused whole, without reading it
        return _too_long(len(text), text)
    reasoning, rest, errors = _split_reasoning(_strip_envelope(text))
    content, results = _scan_tool_calls(rest, toolset)
    return _assemble(reasoning, content, list(results), errors)


# --- OpenAI-style responses -------------------------------------------------------------------


def _part_text(part: Any) -> str | None:
    """One content part's text: a string, or a ``{"type": "text", "text": ...}`` object."""
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        text = part.get("text", "")
        return text if isinstance(text, str) else None
    return None


def content_text(value: Any, where: str = "content") -> str | ParseError:
    """A chat message's text: a string, None, or a list of text parts (strings or
    ``{"type": "text", "text": ...}``); anything else is an error. The one rule for a response
    the client reads and a training record's content (``training.data.formats``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [_part_text(p) for p in value]
        if all(p is not None for p in parts):
            return "".join(p for p in parts if p is not None)
        return ParseError(
            ErrorKind.MALFORMED_RESPONSE, f"{where} has a part without text", _raw_of(value)
        )
    reason = f"{where} is a JSON {type(value).__name__}, not text"
    return ParseError(ErrorKind.MALFORMED_RESPONSE, reason, _raw_of(value))


def _field_call(item: Any, toolset: Toolset | None) -> ToolCall | ParseError:
    """One entry of ``message.tool_calls`` (``function.arguments`` is a JSON string)."""
    raw = _raw_of(item)
    if not isinstance(item, Mapping):
        return ParseError(ErrorKind.NOT_AN_OBJECT, "tool_calls entry is not an object", raw)
    function = item.get("function")
    if not isinstance(function, Mapping):
        return ParseError(ErrorKind.NOT_AN_OBJECT, "tool_calls entry has no 'function' object", raw)
    call_id = item.get("id") if isinstance(item.get("id"), str) else None
    arguments: Any = function.get("arguments", {})
    if isinstance(arguments, str):
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = decode_json(arguments, "function.arguments") if arguments.strip() else {}
        if isinstance(arguments, ParseError):
            return replace(arguments, raw=raw, tool=name)
    return _call_from_object(
        {"name": function.get("name"), "arguments": arguments}, raw, toolset, call_id
    )


def _call_key(call: ToolCall) -> tuple[str, str]:
    return call.name, _raw_of(call.arguments, sort_keys=True)


def _message_texts(message: Mapping[str, Any]) -> tuple[str, str, list[ParseError]]:
    """``content`` and the server's reasoning field as text, and what was not text."""
    reasoning: Any = message.get("reasoning_content")
    if reasoning is None or reasoning == "":
        reasoning = message.get("reasoning")
    texts = [
        content_text(message.get("content"), "message.content"),
        content_text(reasoning, "message.reasoning_content"),
    ]
    errors = [t for t in texts if isinstance(t, ParseError)]
    content, server_reasoning = (t if isinstance(t, str) else "" for t in texts)
    return content, server_reasoning, errors


def parse_message(
    message: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]] | Toolset | None = None,
    *,
    strict: bool = True,
) -> ParsedCompletion:
    """Parse one OpenAI-style assistant message, whichever fields the server filled."""
    toolset = _resolve(tools, strict)
    if not isinstance(message, Mapping):
        return _unparseable("message is not an object", message)
    content, server_reasoning, field_errors = _message_texts(message)
    if len(content) + len(server_reasoning) > MAX_COMPLETION_CHARS:
        return _too_long(len(content) + len(server_reasoning), content or server_reasoning)
    from_content = parse_completion(content, toolset)
    results: list[ToolCall | ParseError] = []
    field_calls = message.get("tool_calls") or []
    if not isinstance(field_calls, list):
        field_calls = [field_calls]
    results.extend(_field_call(item, toolset) for item in field_calls)
    # A server that fills tool_calls and also leaves the raw block in content sends one call twice.
    seen = {_call_key(r) for r in results if isinstance(r, ToolCall)}
    results.extend(c for c in from_content.tool_calls if _call_key(c) not in seen)
    if not results and not from_content.errors and CALL_OPEN in server_reasoning:
        # vLLM's qwen3 reasoning parser can file a whole non-thinking answer, calls included,
        # under reasoning (vllm#19513): take the calls back out rather than lose them.
        server_reasoning, misfiled = _scan_tool_calls(server_reasoning, toolset)
        results.extend(misfiled)
    pieces = [p.strip() for p in (server_reasoning, from_content.reasoning or "") if p.strip()]
    reasoning = "\n\n".join(pieces) if pieces else from_content.reasoning
    errors = field_errors + list(from_content.errors)
    return _assemble(reasoning, from_content.content, results, errors)


def parse_chat_response(
    response: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]] | Toolset | None = None,
    *,
    strict: bool = True,
) -> ParsedCompletion:
    """Parse an OpenAI-style chat completion (``choices[0].message``)."""
    toolset = _resolve(tools, strict)
    choices = response.get("choices") if isinstance(response, Mapping) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, Mapping) else None
    if not isinstance(message, Mapping):
        reason = "response has no choices[0].message"
        if isinstance(response, Mapping) and "error" in response:
            reason += f" (server error: {json.dumps(response['error'], default=str)[:500]})"
        return _unparseable(reason, response)
    return parse_message(message, toolset)
