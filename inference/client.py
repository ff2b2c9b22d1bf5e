"""Call a SageMaker LMI endpoint with OpenAI-style chat requests and get validated tool calls back.

`build_chat_request` makes the request body (also sent as-is to any OpenAI-compatible server, as
the local end-to-end test does); `EndpointClient.chat` sends it with boto3
(`invoke_endpoint`, `invoke_endpoint_with_response_stream`) and return one `ChatResult`, parsed by
`inference.parsing` so that the endpoint and the training evaluation read completions alike.

Checked before sending: the prompt-token budget and the 6 MB InvokeEndpoint payload limit.
Throttling and not-ready errors are retried a bounded number of times with backoff; a read
timeout (InvokeEndpoint answers within 60 s) raises `EndpointTimeoutError` with what to change.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from inference.parsing import (
    ErrorKind,
    ParsedCompletion,
    ParseError,
    ToolCall,
    ToolSchemaError,
    Toolset,
    compile_tools,
    parse_chat_response,
    parse_message,
)
from inference.serving import ServingConfig

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint request and response limit
INVOKE_TIMEOUT_S = 60  # InvokeEndpoint's own response limit
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
    """No response in time."""


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
            toolset = compile_tools(tools)
        except ToolSchemaError as exc:
            raise RequestError(str(exc)) from exc
        body["tools"] = [dict(t) for t in tools]
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
        if not isinstance(value, Mapping):
            return None
        prompt = int(value.get("prompt_tokens") or 0)
        completion = int(value.get("completion_tokens") or 0)
        return cls(prompt, completion, int(value.get("total_tokens") or prompt + completion))


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
    comments and blank lines; a line that is not JSON yields ``{"_unparsed": line}``.
    """
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            event = _sse_line(line)
            if event is not None:
                yield event
    if buffer.strip():
        event = _sse_line(buffer)
        if event is not None:
            yield event


def _sse_line(line: bytes) -> dict[str, Any] | None:
    text = line.decode("utf-8", errors="replace").strip()
    if text.startswith("data:"):
        text = text[len("data:") :].strip()
    elif not text.startswith("{"):
        return None  # blank separators, "event:", "id:", ": comment"
    if not text or text == "[DONE]":
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return {"_unparsed": text}
    return event if isinstance(event, dict) else {"_unparsed": text}


@dataclass
class StreamAssembler:
    """Folds chat.completion.chunk events (from `iter_sse_events`) into one assistant message;
    `add` returns the text deltas of each event, `message()` the message for `parse_message`."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Any = None
    finish_reason: str | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, event: Mapping[str, Any]) -> list[Delta]:
        if "_unparsed" in event:
            self.problems.append(str(event["_unparsed"]))
            return []
        if event.get("usage"):
            self.usage = event["usage"]
        if "token" in event and isinstance(event["token"], Mapping):  # LMI jsonlines format
            text = str(event["token"].get("text", ""))
            self.content.append(text)
            return [Delta("content", text)] if text else []
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], Mapping):
            return []
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta") or {}
        out: list[Delta] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self.reasoning.append(reasoning)
            out.append(Delta("reasoning", reasoning))
        if delta.get("content"):
            self.content.append(delta["content"])
            out.append(Delta("content", delta["content"]))
        for part in delta.get("tool_calls") or []:
            slot = self.calls.setdefault(
                int(part.get("index", len(self.calls))),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            slot["id"] = part.get("id") or slot["id"]
            function = part.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            arguments = function.get("arguments")
            if isinstance(arguments, Mapping):  # some servers send whole objects
                arguments = json.dumps(arguments)
            slot["function"]["arguments"] += arguments or ""
        return out

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        return message


# --- client -----------------------------------------------------------------------------------


def default_runtime_client(region: str | None = None, read_timeout_s: float = 70.0) -> Any:
    """A sagemaker-runtime client whose own retries are off: `EndpointClient` retries itself."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=read_timeout_s,  # a little over InvokeEndpoint's 60 s, so its error wins
        connect_timeout=10,
    )
    return boto3.client("sagemaker-runtime", region_name=region, config=config)


class EndpointClient:
    """Chat with one SageMaker endpoint; see the module docstring for what is checked."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        runtime_client: Any | None = None,
        region: str | None = None,
        inference_component: str | None = None,
        max_model_len: int = 16_384,
        thinking_default: bool | None = None,
        tokenizer: Any | None = None,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.endpoint_name = endpoint_name
        self.runtime = runtime_client or default_runtime_client(region)
        self.inference_component = inference_component
        self.max_model_len = max_model_len
        self.thinking_default = thinking_default
        self.tokenizer = tokenizer
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def for_serving(
        cls, endpoint_name: str, config: ServingConfig, **kwargs: Any
    ) -> EndpointClient:
        """A client whose token budget and thinking default come from the endpoint's config."""
        thinking = config.thinking_default if config.supports_thinking else None
        return cls(
            endpoint_name, max_model_len=config.max_model_len, thinking_default=thinking, **kwargs
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
        toolset = compile_tools(tools) if tools else None
        if stream:
            return self._streamed(payload, toolset, on_delta)
        return self._complete(payload, toolset)

    def _complete(self, payload: bytes, toolset: Toolset | None) -> ChatResult:
        start = self._clock()
        response, attempts = self._invoke("invoke_endpoint", payload, "application/json")
        raw_bytes = response["Body"].read()
        latency = self._clock() - start
        try:
            document = json.loads(raw_bytes)
        except json.JSONDecodeError:
            document = {"_unparsed": raw_bytes.decode("utf-8", errors="replace")}
        parsed = parse_chat_response(document, toolset)
        choices = document.get("choices") if isinstance(document, dict) else None
        finish = (
            choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
        )
        return ChatResult.from_parsed(
            parsed,
            usage=Usage.from_json(document.get("usage") if isinstance(document, dict) else None),
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
        start = self._clock()
        response, attempts = self._invoke(
            "invoke_endpoint_with_response_stream", payload, "text/event-stream"
        )
        assembler = StreamAssembler()
        first: float | None = None
        stream_errors: list[ParseError] = []
        for event in iter_sse_events(self._payload_parts(response["Body"], stream_errors)):
            for delta in assembler.add(event):
                if first is None:
                    first = self._clock() - start
                if on_delta is not None:
                    on_delta(delta)
        latency = self._clock() - start
        message = assembler.message()
        parsed = parse_message(message, toolset)
        not_json = [
            ParseError(ErrorKind.MALFORMED_RESPONSE, "stream event is not JSON", p)
            for p in assembler.problems
        ]
        return ChatResult.from_parsed(
            replace(parsed, errors=[*parsed.errors, *stream_errors, *not_json]),
            usage=Usage.from_json(assembler.usage),
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

    def _invoke(self, operation: str, payload: bytes, accept: str) -> tuple[dict[str, Any], int]:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        kwargs: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": payload,
            "ContentType": "application/json",
            "Accept": accept,
        }
        if self.inference_component:
            kwargs["InferenceComponentName"] = self.inference_component
        call = getattr(self.runtime, operation)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call(**kwargs), attempt
            except ReadTimeoutError as exc:
                raise EndpointTimeoutError(
                    _timeout_message(self.endpoint_name, streaming=operation != "invoke_endpoint")
                ) from exc
            except (ConnectTimeoutError, EndpointConnectionError) as exc:
                raise EndpointError(f"cannot reach the SageMaker runtime: {exc}") from exc
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = exc.response.get("OriginalStatusCode")
                if code == "ModelError" and status not in RETRYABLE_MODEL_STATUS:
                    detail = exc.response.get("OriginalMessage") or error.get("Message")
                    raise ModelError(
                        f"{self.endpoint_name}: the model returned an error (status {status}): "
                        f"{detail}",
                        status=int(status) if status is not None else None,
                        log_stream_arn=exc.response.get("LogStreamArn"),
                    ) from exc
                retryable = code in RETRYABLE_CODES or code == "ModelError"
                if not retryable:
                    raise EndpointError(
                        f"{self.endpoint_name}: {code}: {error.get('Message', exc)}"
                    ) from exc
                if attempt == self.max_attempts:
                    raise ThrottledError(
                        f"{self.endpoint_name}: {code} after {attempt} attempts; "
                        "add instances or lower the request rate"
                    ) from exc
                self._sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff, capped, with jitter in its upper half (spreads retrying clients)."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography

    def _payload_parts(
        self, stream: Iterable[Mapping[str, Any]], errors: list[ParseError]
    ) -> Iterator[bytes]:
        """The bytes of each PayloadPart; a stream error ends the stream as a ParseError.

        botocore raises `EventStreamError` for ModelStreamError/InternalStreamFailure events;
        already-decoded error events (as some test doubles and proxies give) count the same.
        """
        from botocore.exceptions import EventStreamError, ReadTimeoutError

        def stream_error(kind: str, detail: Mapping[str, Any]) -> None:
            raw = json.dumps(detail, default=str)
            reason = f"{kind}: {detail.get('Message', '')}"
            errors.append(ParseError(ErrorKind.MALFORMED_RESPONSE, reason, raw))

        try:
            for event in stream:
                if "PayloadPart" in event:
                    yield event["PayloadPart"].get("Bytes", b"")
                for kind in ("ModelStreamError", "InternalStreamFailure"):
                    if kind in event:
                        stream_error(kind, event[kind])
                        return
        except EventStreamError as exc:
            error = exc.response.get("Error", {})
            stream_error(str(error.get("Code", "EventStreamError")), error)
        except ReadTimeoutError as exc:
            raise EndpointTimeoutError(
                _timeout_message(self.endpoint_name, streaming=True)
            ) from exc


def _timeout_message(endpoint: str, *, streaming: bool) -> str:
    hint = (
        "the stream stalled; check the endpoint's CloudWatch logs"
        if streaming
        else f"InvokeEndpoint must answer within {INVOKE_TIMEOUT_S} s: lower max_tokens, switch "
        "thinking off, or stream (chat(..., stream=True))"
    )
    return f"{endpoint}: no response in time; {hint}"
