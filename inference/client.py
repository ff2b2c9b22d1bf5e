"""Call a SageMaker LMI endpoint with OpenAI-style chat requests and get validated tool calls back.

`build_chat_request` makes the request body (also sent as-is to any OpenAI-compatible server, as
the local end-to-end test does); `EndpointClient.chat` sends it with boto3
(`invoke_endpoint`, `invoke_endpoint_with_response_stream`) and return one `ChatResult`, parsed by
`inference.parsing` so that the endpoint and the training evaluation read completions alike.

Checked before sending: the prompt-token budget and the 6 MB InvokeEndpoint payload limit.
Throttling and not-ready errors are retried a bounded number of times with backoff; a read
timeout (InvokeEndpoint answers within 60 s) raises `EndpointTimeoutError` with what to change.

Bounded: one `chat` call ends within its `deadline_s` (plus at most one socket timeout) and reads
at most `max_response_bytes` (`max_stream_bytes` streamed). An answer that arrives but cannot be
read (not UTF-8, not acceptable JSON, the wrong shape, cut short, a corrupt event stream, over a
cap) is a `malformed_response` error in the result; running out of time raises.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, InitVar, dataclass, field, replace
from typing import Any, Literal

from inference.parsing import (
    ErrorKind,
    ParsedCompletion,
    ParseError,
    ToolCall,
    ToolSchemaError,
    Toolset,
    compile_tools,
    decode_json,
    normalize_tools,
    parse_chat_response,
    parse_message,
)
from inference.serving import ServingConfig

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint request and response limit
# A streamed answer: 131,072 tokens (Qwen3's longest context) at about 250 bytes of SSE JSON per
# token event is 32 MiB; twice that is the cap.
MAX_STREAM_BYTES = 64 * 1024 * 1024
INVOKE_TIMEOUT_S = 60  # InvokeEndpoint's own response limit
DEADLINE_S = 300.0  # one chat call, retries and backoff and streaming included
READ_TIMEOUT_S = 70.0  # a little over InvokeEndpoint's 60 s, so its own error wins
CONNECT_TIMEOUT_S = 10.0
_READ_CHUNK = 64 * 1024
_RAW_LIMIT = 2000  # bytes of an unusable body quoted in its error
CHARS_PER_TOKEN = 4.0  # estimate without a tokenizer; the budget leaves headroom for JSON's density
ROLES = frozenset({"system", "user", "assistant", "tool"})
# Error codes worth another try: the endpoint is busy or warming up, not wrong.
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "InternalFailure"}
)
RETRYABLE_MODEL_STATUS = frozenset({429, 503})  # LMI's own "queue full"/"not ready" answers

ToolChoice = Literal["auto", "none", "required"] | Mapping[str, Any]


class EndpointError(Exception):
    """Base class for everything this client raises."""


class RequestError(EndpointError, ValueError):
    """The request is malformed; nothing was sent."""


class PayloadTooLargeError(RequestError):
    """The JSON body exceeds InvokeEndpoint's 6 MB limit; nothing was sent."""


class PromptTooLongError(RequestError):
    """The prompt exceeds the token budget (max model length minus max_tokens); nothing was sent."""


class EndpointTimeoutError(EndpointError):
    """No response in time: a socket timeout, or the client's overall deadline passed."""


class ThrottledError(EndpointError):
    """Still throttled (or not ready) after every retry."""


class ModelError(EndpointError):
    """The model container answered with an error (InvokeEndpoint's ModelError)."""

    def __init__(self, message: str, status: int | None, log_stream_arn: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.log_stream_arn = log_stream_arn


# --- request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; `None` fields take Qwen3's recommendation for the thinking mode."""

    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_body(self, thinking: bool | None, *, top_k: bool = True) -> dict[str, Any]:
        # Qwen3's model card: thinking 0.6/0.95/20, non-thinking 0.7/0.8/20 (greedy decoding loops).
        temp, top_p = (0.6, 0.95) if thinking is not False else (0.7, 0.8)
        body: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": temp if self.temperature is None else self.temperature,
            "top_p": top_p if self.top_p is None else self.top_p,
        }
        if top_k:  # a vLLM extension; plain OpenAI servers reject it
            body["top_k"] = 20 if self.top_k is None else self.top_k
        if self.presence_penalty is not None:
            body["presence_penalty"] = self.presence_penalty
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = list(self.stop)
        return body


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestError(f"messages[{i}] is not an object")
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"messages[{i}].role {role!r} is not one of {sorted(ROLES)}")
        if "content" not in message and not message.get("tool_calls"):
            raise RequestError(f"messages[{i}] has neither content nor tool_calls")


def _check_tool_choice(tool_choice: ToolChoice, names: Sequence[str]) -> None:
    if isinstance(tool_choice, str):
        if tool_choice not in ("auto", "none", "required"):
            raise RequestError(f"tool_choice {tool_choice!r} is not auto, none or required")
        if tool_choice == "required" and not names:
            raise RequestError("tool_choice 'required' needs tools")
        return
    function = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if name not in names:
        raise RequestError(f"tool_choice names {name!r}, which is not among the tools {names}")


def build_chat_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: ToolChoice = "auto",
    thinking: bool | None = None,
    sampling: Sampling | None = None,
    stream: bool = False,
    model: str | None = None,
    extra: Mapping[str, Any] | None = None,
    dialect: Literal["vllm", "openai"] = "vllm",
) -> dict[str, Any]:
    """An OpenAI-style chat completion body; raises `RequestError` when it cannot be valid.

    `thinking` None leaves Qwen3's template default (thinking on, or the server's default);
    True/False sends ``chat_template_kwargs.enable_thinking``. `extra` adds server-specific fields.
    `dialect="openai"` leaves out vLLM's extensions (``top_k``) for servers that refuse them,
    such as ``transformers serve``; LMI endpoints run vLLM and take the default.
    """
    _check_messages(messages)
    body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
    if model is not None:
        body["model"] = model
    if tools:
        try:  # a broken schema fails here, not as a 424 from the endpoint
            tools = normalize_tools(tools)  # the server's template sees JSON Schema too
            toolset = compile_tools(tools)
        except ToolSchemaError as exc:
            raise RequestError(str(exc)) from exc
        body["tools"] = tools
        _check_tool_choice(tool_choice, toolset.names)
        body["tool_choice"] = tool_choice
    elif tool_choice not in ("auto", "none"):
        raise RequestError("tool_choice requires tools")
    if thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": thinking}
    body.update((sampling or Sampling()).to_body(thinking, top_k=dialect == "vllm"))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for key, value in (extra or {}).items():
        if key in body and key != "chat_template_kwargs":
            raise RequestError(f"extra field {key!r} would override a built field")
        body[key] = value
    return body


def estimate_prompt_tokens(body: Mapping[str, Any], tokenizer: Any | None = None) -> int:
    """Prompt tokens: exact with a tokenizer (its chat template), else chars / 4 plus framing."""
    messages = body.get("messages", [])
    tools = body.get("tools")
    if tokenizer is not None:
        kwargs = dict(body.get("chat_template_kwargs") or {})
        ids = tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=True, **kwargs
        )
        ids = ids["input_ids"] if isinstance(ids, Mapping) else ids
        return len(ids)
    chars = sum(len(json.dumps(m.get("content", ""), ensure_ascii=False)) for m in messages)
    chars += len(json.dumps(tools, ensure_ascii=False)) if tools else 0
    return math.ceil(chars / CHARS_PER_TOKEN) + 5 * len(messages) + (120 if tools else 0)


# --- result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_json(cls, value: Any) -> Usage | None:
        """The ``usage`` object; None when absent or when a count is not a non-negative integer."""
        if not isinstance(value, Mapping):
            return None
        prompt = _count(value.get("prompt_tokens"), 0)
        completion = _count(value.get("completion_tokens"), 0)
        if prompt is None or completion is None:
            return None
        total = _count(value.get("total_tokens"), prompt + completion)
        return None if total is None else cls(prompt, completion, total)


def _count(value: Any, default: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _malformed(reason: str, raw: Any) -> ParseError:
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str, ensure_ascii=False)
    return ParseError(ErrorKind.MALFORMED_RESPONSE, reason, text[:_RAW_LIMIT])


def _usage(value: Any) -> tuple[Usage | None, list[ParseError]]:
    """Usage, and an error when the server sent one that is not token counts."""
    usage = Usage.from_json(value)
    if value is None or usage is not None:
        return usage, []
    return None, [_malformed("usage is not a set of non-negative token counts", value)]


def _finish_reason(value: Any) -> tuple[str | None, list[ParseError]]:
    if value is None or isinstance(value, str):
        return value, []
    return None, [_malformed(f"finish_reason is a JSON {type(value).__name__}, not text", value)]


@dataclass(frozen=True)
class ChatResult:
    """One answer: what the model said, its validated calls, what was wrong, and what it cost."""

    reasoning: str | None
    text: str
    tool_calls: list[ToolCall]
    errors: list[ParseError]
    usage: Usage | None
    latency_s: float
    finish_reason: str | None = None
    attempts: int = 1
    time_to_first_token_s: float | None = None  # streaming only
    raw: Any = None  # the response JSON, or the reassembled stream message

    @property
    def ok(self) -> bool:
        return not self.errors

    @classmethod
    def from_parsed(cls, parsed: ParsedCompletion, **kwargs: Any) -> ChatResult:
        return cls(
            reasoning=parsed.reasoning,
            text=parsed.content,
            tool_calls=list(parsed.tool_calls),
            errors=list(parsed.errors),
            **kwargs,
        )


@dataclass(frozen=True)
class Delta:
    """A piece of streamed text as it arrives."""

    kind: Literal["content", "reasoning"]
    text: str


# --- streaming --------------------------------------------------------------------------------


def iter_sse_events(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """JSON events from byte chunks that split lines anywhere (even inside a UTF-8 character).

    Accepts Server-Sent Events (``data: {...}``) and JSON lines (``{...}``); skips ``[DONE]``,
    comments and blank lines. A line that is not an acceptable JSON object (see
    `inference.parsing.decode_json`) or not UTF-8 yields ``{"_unparsed": line, "_reason": why}``.
    Linear in the bytes: a partial line is kept as pieces, never re-scanned.
    """
    pending: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        first, *middle, rest = chunk.split(b"\n")
        for line in (b"".join([*pending, first]), *middle):
            if (event := _sse_line(line)) is not None:
                yield event
        pending = [rest]
    tail = b"".join(pending)
    if tail.strip() and (event := _sse_line(tail)) is not None:
        yield event


def _sse_line(line: bytes) -> dict[str, Any] | None:
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        reason = f"stream line is not UTF-8 ({exc.reason} at byte {exc.start})"
        return {"_unparsed": line.decode("utf-8", errors="replace"), "_reason": reason}
    if text.startswith("data:"):
        text = text[len("data:") :].strip()
    elif not text.startswith("{"):
        return None  # blank separators, "event:", "id:", ": comment"
    if not text or text == "[DONE]":
        return None
    event = decode_json(text, "stream event")
    if isinstance(event, ParseError):
        return {"_unparsed": text, "_reason": event.reason}
    if not isinstance(event, dict):
        return {"_unparsed": text, "_reason": "stream event is not a JSON object"}
    return event


@dataclass
class StreamAssembler:
    """Folds chat.completion.chunk events (from `iter_sse_events`) into one assistant message;
    `add` returns the text deltas of each event, `message()` the message for `parse_message`.
    A field of the wrong type is skipped and recorded in `errors` (``malformed_response``)."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Any = None
    finish_reason: str | None = None
    errors: list[ParseError] = field(default_factory=list)
    chat_events: int = 0  # events with choices: such a stream ends with a finish_reason

    def add(self, event: Mapping[str, Any]) -> list[Delta]:
        if "_unparsed" in event:
            reason = str(event.get("_reason", "stream event is not JSON"))
            self.errors.append(_malformed(reason, str(event["_unparsed"])))
            return []
        if event.get("usage"):
            self.usage = event["usage"]
        token = event.get("token")
        if isinstance(token, Mapping):  # LMI jsonlines format
            return self._text("content", token.get("text"), "token.text", event)
        choices = event.get("choices")
        if not choices:
            return []
        if not isinstance(choices, list) or not isinstance(choices[0], Mapping):
            self._wrong("choices is not a list of objects", event)
            return []
        self.chat_events += 1
        return self._choice(choices[0], event)

    def cut_short(self) -> ParseError | None:
        """An error when a chat stream ended without its final chunk (no finish_reason): cut at
        an event boundary, which neither botocore nor the SSE framing would notice."""
        if not self.chat_events or self.finish_reason is not None:
            return None
        return _malformed("the stream ended without a finish_reason: cut short?", self.message())

    def _wrong(self, what: str, event: Mapping[str, Any]) -> None:
        self.errors.append(_malformed(f"stream event: {what}", dict(event)))

    def _choice(self, choice: Mapping[str, Any], event: Mapping[str, Any]) -> list[Delta]:
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        elif finish is not None:
            self._wrong("choices[0].finish_reason is not text", event)
        delta = choice.get("delta")
        if delta is None:
            return []
        if not isinstance(delta, Mapping):
            self._wrong("choices[0].delta is not an object", event)
            return []
        reasoning = delta.get("reasoning_content")
        if reasoning is None or reasoning == "":
            reasoning = delta.get("reasoning")
        out = self._text("reasoning", reasoning, "delta.reasoning_content", event)
        out += self._text("content", delta.get("content"), "delta.content", event)
        for part in self._list(delta.get("tool_calls"), "delta.tool_calls", event):
            self._tool_call_part(part, event)
        return out

    def _text(
        self,
        kind: Literal["content", "reasoning"],
        value: Any,
        where: str,
        event: Mapping[str, Any],
    ) -> list[Delta]:
        if value is None or value == "":
            return []
        if not isinstance(value, str):
            self._wrong(f"{where} is a JSON {type(value).__name__}, not text", event)
            return []
        (self.reasoning if kind == "reasoning" else self.content).append(value)
        return [Delta(kind, value)]

    def _list(self, value: Any, where: str, event: Mapping[str, Any]) -> list[Any]:
        if value is None or isinstance(value, list):
            return value or []
        self._wrong(f"{where} is a JSON {type(value).__name__}, not a list", event)
        return []

    def _tool_call_part(self, part: Any, event: Mapping[str, Any]) -> None:
        """One streamed piece of a call: name and arguments arrive as string fragments."""
        if not isinstance(part, Mapping) or not isinstance(part.get("function") or {}, Mapping):
            self._wrong("a tool_calls part is not an object with a function object", event)
            return
        function = part.get("function") or {}
        index = part.get("index", len(self.calls))
        name = function.get("name") or ""
        arguments = function.get("arguments") or ""
        if isinstance(arguments, Mapping):  # some servers send whole objects
            arguments = json.dumps(arguments)
        if not _is_index(index) or not isinstance(name, str) or not isinstance(arguments, str):
            self._wrong("a tool_calls part lacks an integer index or text name/arguments", event)
            return
        slot = self.calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if isinstance(part.get("id"), str) and part["id"]:
            slot["id"] = part["id"]
        slot["function"]["name"] += name
        slot["function"]["arguments"] += arguments

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        return message


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- client -----------------------------------------------------------------------------------


def runtime_config(
    read_timeout_s: float = READ_TIMEOUT_S, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> Any:
    """The botocore ``Config`` of a sagemaker-runtime client whose own retries are off:
    `EndpointClient` retries itself."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=read_timeout_s,  # per socket read: bounds one blocked read
        connect_timeout=connect_timeout_s,
    )


def default_runtime_client(
    region: str | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> Any:
    """A sagemaker-runtime client with `runtime_config`'s retries and timeouts."""
    import boto3

    config = runtime_config(read_timeout_s, connect_timeout_s)
    return boto3.client("sagemaker-runtime", region_name=region, config=config)


@dataclass(eq=False, repr=False)
class EndpointClient:
    """Chat with one SageMaker endpoint; see the module docstring for what is checked.

    Bounds: `deadline_s` of wall-clock time per `chat` call (checked before each retry, between
    response reads and between stream events; one blocked socket read can add the runtime
    client's read timeout), `max_response_bytes` of JSON body and `max_stream_bytes` of stream.
    `runtime_client` (default: `default_runtime_client(region)`) becomes `runtime`.
    """

    endpoint_name: str
    _: KW_ONLY
    runtime_client: InitVar[Any | None] = None
    region: InitVar[str | None] = None
    inference_component: str | None = None
    max_model_len: int = 16_384
    thinking_default: bool | None = None
    tokenizer: Any | None = None
    max_attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    deadline_s: float = DEADLINE_S
    max_response_bytes: int = MAX_PAYLOAD_BYTES
    max_stream_bytes: int = MAX_STREAM_BYTES
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.perf_counter
    runtime: Any = field(init=False)

    def __post_init__(self, runtime_client: Any | None, region: str | None) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.deadline_s <= 0 or self.max_response_bytes < 1 or self.max_stream_bytes < 1:
            raise ValueError("deadline_s, max_response_bytes and max_stream_bytes must be positive")
        self.runtime = runtime_client or default_runtime_client(region)

    @classmethod
    def for_serving(
        cls, endpoint_name: str, config: ServingConfig, **kwargs: Any
    ) -> EndpointClient:
        """A client whose token budget and thinking default come from the endpoint's config."""
        return cls(
            endpoint_name,
            max_model_len=config.max_model_len,
            thinking_default=config.request_thinking,
            **kwargs,
        )

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice = "auto",
        thinking: bool | None = None,
        sampling: Sampling | None = None,
        extra: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_delta: Callable[[Delta], None] | None = None,
    ) -> ChatResult:
        """Send one chat request; see the module docstring for the checks and retries.

        Without `stream` the answer is one JSON document (InvokeEndpoint must finish within
        60 s); with it, `invoke_endpoint_with_response_stream` is used and `on_delta` sees the
        reasoning and text as they arrive. `thinking` None takes the client's `thinking_default`.
        """
        body = build_chat_request(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            thinking=self.thinking_default if thinking is None else thinking,
            sampling=sampling,
            stream=stream,
            extra=extra,
        )
        payload = self._checked_payload(body)
        toolset = compile_tools(body["tools"]) if tools else None  # normalised by the builder
        if stream:
            return self._streamed(payload, toolset, on_delta)
        return self._complete(payload, toolset)

    def _complete(self, payload: bytes, toolset: Toolset | None) -> ChatResult:
        start = self.clock()
        deadline = start + self.deadline_s
        response, attempts = self._invoke("invoke_endpoint", payload, "application/json", deadline)
        document = self._read_document(response["Body"], deadline)
        latency = self.clock() - start
        if isinstance(document, ParseError):
            empty = ParsedCompletion(reasoning=None, content="", errors=[document])
            return ChatResult.from_parsed(
                empty, usage=None, latency_s=latency, attempts=attempts, raw=document.raw
            )
        parsed = parse_chat_response(document, toolset)
        usage, usage_errors = _usage(document.get("usage") if isinstance(document, dict) else None)
        finish, finish_errors = _finish_reason(_first_choice(document).get("finish_reason"))
        return ChatResult.from_parsed(
            replace(parsed, errors=[*parsed.errors, *usage_errors, *finish_errors]),
            usage=usage,
            latency_s=latency,
            finish_reason=finish,
            attempts=attempts,
            raw=document,
        )

    def _streamed(
        self,
        payload: bytes,
        toolset: Toolset | None,
        on_delta: Callable[[Delta], None] | None,
    ) -> ChatResult:
        start = self.clock()
        deadline = start + self.deadline_s
        response, attempts = self._invoke(
            "invoke_endpoint_with_response_stream", payload, "text/event-stream", deadline
        )
        assembler = StreamAssembler()
        first: float | None = None
        stream_errors: list[ParseError] = []
        parts = self._payload_parts(response["Body"], stream_errors, deadline)
        for event in iter_sse_events(parts):
            for delta in assembler.add(event):
                if first is None:
                    first = self.clock() - start
                if on_delta is not None:
                    on_delta(delta)
        latency = self.clock() - start
        message = assembler.message()
        parsed = parse_message(message, toolset)
        usage, usage_errors = _usage(assembler.usage)
        no_other = not stream_errors and not assembler.errors  # a broken stream is cut anyway
        if no_other and (cut := assembler.cut_short()) is not None:
            stream_errors.append(cut)
        errors = [*parsed.errors, *stream_errors, *assembler.errors, *usage_errors]
        return ChatResult.from_parsed(
            replace(parsed, errors=errors),
            usage=usage,
            latency_s=latency,
            finish_reason=assembler.finish_reason,
            attempts=attempts,
            time_to_first_token_s=first,
            raw=message,
        )

    # --- internals ------------------------------------------------------------------------

    def _checked_payload(self, body: Mapping[str, Any]) -> bytes:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(
                f"request body is {len(payload):,} bytes; InvokeEndpoint accepts at most "
                f"{MAX_PAYLOAD_BYTES:,} (6 MB). Shorten the conversation or the tool list."
            )
        budget = self.max_model_len - int(body.get("max_tokens", 0))
        tokens = estimate_prompt_tokens(body, self.tokenizer)
        if tokens > budget:
            how = "counted with the tokenizer" if self.tokenizer is not None else "estimated"
            raise PromptTooLongError(
                f"prompt is {tokens:,} tokens ({how}); the budget is {budget:,} "
                f"(max_model_len {self.max_model_len:,} minus max_tokens {body.get('max_tokens')})"
            )
        return payload

    def _invoke(
        self, operation: str, payload: bytes, accept: str, deadline: float
    ) -> tuple[dict[str, Any], int]:
        """Call `operation`, retrying throttling with backoff until `max_attempts` or `deadline`."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": payload,
            "ContentType": "application/json",
            "Accept": accept,
        }
        if self.inference_component:
            kwargs["InferenceComponentName"] = self.inference_component
        call = getattr(self.runtime, operation)
        streaming = operation != "invoke_endpoint"
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call(**kwargs), attempt
            except ClientError as exc:
                code = self._client_error_code(exc)
                if attempt == self.max_attempts:
                    raise ThrottledError(
                        f"{self.endpoint_name}: {code} after {attempt} attempts; "
                        "add instances or lower the request rate"
                    ) from exc
            except BotoCoreError as exc:
                if _is_stub_complaint(exc):
                    raise
                raise self._transport_error(exc, streaming=streaming) from exc
            self._wait(self._backoff(attempt), deadline, f"{code} after {attempt} attempt(s)")
        raise AssertionError("unreachable")  # the loop returns or raises

    def _transport_error(self, exc: Exception, *, streaming: bool) -> EndpointError:
        """The typed error for a botocore failure that is not the service's answer."""
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ReadTimeoutError

        if isinstance(exc, ReadTimeoutError):
            return EndpointTimeoutError(_timeout_message(self.endpoint_name, streaming=streaming))
        if isinstance(exc, BotoConnectionError):
            return EndpointError(f"cannot reach the SageMaker runtime: {exc}")
        return EndpointError(f"{self.endpoint_name}: {type(exc).__name__}: {exc}")

    def _client_error_code(self, exc: Any) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("OriginalStatusCode")
        if code == "ModelError" and status not in RETRYABLE_MODEL_STATUS:
            detail = exc.response.get("OriginalMessage") or error.get("Message")
            raise ModelError(
                f"{self.endpoint_name}: the model returned an error (status {status}): {detail}",
                status=int(status) if isinstance(status, int) else None,
                log_stream_arn=exc.response.get("LogStreamArn"),
            ) from exc
        if code not in RETRYABLE_CODES and code != "ModelError":
            raise EndpointError(
                f"{self.endpoint_name}: {code}: {error.get('Message', exc)}"
            ) from exc
        return code

    def _wait(self, delay: float, deadline: float, doing: str) -> None:
        """Sleep `delay` unless that would pass the deadline, which raises instead."""
        self._check_deadline(deadline, doing, ahead=delay)
        self.sleep(delay)

    def _check_deadline(self, deadline: float, doing: str, ahead: float = 0.0) -> None:
        if self.clock() + ahead > deadline:
            raise EndpointTimeoutError(
                f"{self.endpoint_name}: the client's {self.deadline_s:g} s deadline passed "
                f"({doing}); raise deadline_s, lower max_tokens or switch thinking off"
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, capped, with jitter in its upper half (spreads retrying clients)."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography

    def _read_document(self, body: Any, deadline: float) -> Any:
        """The JSON document of a non-streamed answer, or a `malformed_response` error."""
        raw = self._read_body(body, deadline)
        if isinstance(raw, ParseError):
            return raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"response body is not UTF-8 ({exc.reason} at byte {exc.start})"
            return _malformed(reason, raw[:_RAW_LIMIT].decode("utf-8", errors="replace"))
        document = decode_json(text, "response body")
        if isinstance(document, ParseError):
            return _malformed(document.reason, text)
        return document

    def _read_body(self, body: Any, deadline: float) -> bytes | ParseError:
        """At most `max_response_bytes` (one chunk more) of `body`; a broken body is an error."""
        from botocore.exceptions import (
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        parts: list[bytes] = []
        size = 0
        try:
            while chunk := body.read(_READ_CHUNK):
                parts.append(chunk)
                size += len(chunk)
                if size > self.max_response_bytes:
                    _close(body)
                    reason = f"response body is over the {self.max_response_bytes:,}-byte cap"
                    return _malformed(reason, _prefix(parts))
                if len(chunk) == _READ_CHUNK:  # a short read is the last one
                    self._check_deadline(deadline, f"reading the response, {size:,} bytes in")
        except (IncompleteReadError, ResponseStreamingError) as exc:
            return _malformed(f"response body broken off: {exc}", _prefix(parts))
        except ReadTimeoutError as exc:
            message = _timeout_message(self.endpoint_name, streaming=False)
            raise EndpointTimeoutError(message) from exc
        return b"".join(parts)

    def _payload_parts(
        self, stream: Iterable[Mapping[str, Any]], errors: list[ParseError], deadline: float
    ) -> Iterator[bytes]:
        """The bytes of each PayloadPart; a stream error ends the stream as a ParseError.

        botocore raises `EventStreamError` for ModelStreamError/InternalStreamFailure events;
        already-decoded error events (as some test doubles and proxies give) count the same. A
        corrupt event stream (bad checksum or lengths), a connection broken off and a stream over
        `max_stream_bytes` end it the same way; the deadline raises `EndpointTimeoutError`.
        """
        size = 0
        try:
            for event in stream:
                self._check_deadline(deadline, f"streaming, {size:,} bytes in")
                data = _payload_bytes(event, errors)
                if data is None:
                    return
                size += len(data)
                if size > self.max_stream_bytes:
                    reason = f"response stream is over the {self.max_stream_bytes:,}-byte cap"
                    errors.append(_malformed(reason, data[:_RAW_LIMIT].decode(errors="replace")))
                    return
                yield data
        except EndpointTimeoutError:
            raise
        except Exception as exc:
            errors.append(_stream_failure(exc, self.endpoint_name))
        finally:
            _close(stream)


def _stream_failure(exc: Exception, endpoint: str) -> ParseError:
    """The error for what an event stream raised mid-read; a read timeout raises
    `EndpointTimeoutError`, and an exception of no known kind (a bug) is re-raised."""
    from botocore.eventstream import ParserError
    from botocore.exceptions import (
        EventStreamError,
        HTTPClientError,
        IncompleteReadError,
        ReadTimeoutError,
    )
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeoutError

    if isinstance(exc, EventStreamError):  # a ModelStreamError/InternalStreamFailure event
        error = exc.response.get("Error", {})
        return _stream_error(str(error.get("Code", "EventStreamError")), error)
    if isinstance(exc, ParserError):  # ChecksumMismatch, InvalidPayloadLength, ...
        return _malformed(f"event stream is corrupt: {type(exc).__name__}: {exc}", "")
    if isinstance(exc, ReadTimeoutError | Urllib3ReadTimeoutError):
        raise EndpointTimeoutError(_timeout_message(endpoint, streaming=True)) from exc
    if isinstance(exc, HTTPClientError | IncompleteReadError | Urllib3Error):
        return _malformed(f"response stream broken off: {type(exc).__name__}: {exc}", "")
    raise exc


def _first_choice(document: Any) -> Mapping[str, Any]:
    choices = document.get("choices") if isinstance(document, Mapping) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, Mapping) else {}


def _payload_bytes(event: Any, errors: list[ParseError]) -> bytes | None:
    """A PayloadPart's bytes (b"" for other events); None, with an error, for an error event."""
    if not isinstance(event, Mapping):
        return b""
    for kind in ("ModelStreamError", "InternalStreamFailure"):
        if kind in event:
            errors.append(_stream_error(kind, event[kind]))
            return None
    part = event.get("PayloadPart")
    data = part.get("Bytes", b"") if isinstance(part, Mapping) else b""
    return data if isinstance(data, bytes) else b""


def _stream_error(kind: str, detail: Any) -> ParseError:
    message = detail.get("Message", "") if isinstance(detail, Mapping) else ""
    return _malformed(f"{kind}: {message}", detail)


def _prefix(parts: list[bytes]) -> str:
    return b"".join(parts)[:_RAW_LIMIT].decode("utf-8", errors="replace")


def _close(body: Any) -> None:
    """Release the connection of a body read only in part (stub iterators have no close)."""
    close = getattr(body, "close", None)
    if callable(close):
        close()


def _is_stub_complaint(exc: Exception) -> bool:
    """botocore's Stubber reports a test's mistake as a BotoCoreError: let it through."""
    from botocore.exceptions import StubResponseError

    return isinstance(exc, StubResponseError)


def _timeout_message(endpoint: str, *, streaming: bool) -> str:
    hint = (
        "the stream stalled; check the endpoint's CloudWatch logs"
        if streaming
        else f"InvokeEndpoint must answer within {INVOKE_TIMEOUT_S} s: lower max_tokens, switch "
        "thinking off, or stream (chat(..., stream=True))"
    )
    return f"{endpoint}: no response in time; {hint}"
