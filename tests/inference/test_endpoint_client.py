"""The endpoint client against botocore's Stubber: requests, retries, limits, streaming."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from inference_stubs import MESSAGES, PARIS_CALL, StubbedRuntime, ticking_client

from inference.client import (
    MAX_PAYLOAD_BYTES,
    Delta,
    EndpointClient,
    EndpointError,
    EndpointTimeoutError,
    ModelError,
    PayloadTooLargeError,
    PromptTooLongError,
    RequestError,
    Sampling,
    ThrottledError,
    build_chat_request,
    estimate_prompt_tokens,
    iter_sse_events,
)
from inference.parsing import ErrorKind


def completion(content: str | None, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": 210, "completion_tokens": 30, "total_tokens": 240},
    }


# --- request building -------------------------------------------------------------------------


def test_request_carries_tools_choice_thinking_and_sampling(tools: list[dict[str, Any]]) -> None:
    body = build_chat_request(
        MESSAGES, tools=tools, tool_choice="required", thinking=False, sampling=Sampling(seed=7)
    )
    assert body["tools"] == tools
    assert body["tool_choice"] == "required"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    # Qwen3's non-thinking recommendation when the caller leaves sampling open.
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.7, 0.8, 20)
    assert body["seed"] == 7
    assert "stream" not in body


def test_thinking_default_is_left_to_the_template() -> None:
    body = build_chat_request(MESSAGES)
    assert "chat_template_kwargs" not in body
    assert body["temperature"] == 0.6


def test_streaming_request_asks_for_usage() -> None:
    body = build_chat_request(MESSAGES, stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user"}]}, "neither content"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
        ({"tools": None, "tool_choice": "required"}, "requires tools"),
        ({"extra": {"messages": []}}, "override"),
    ],
    ids=[
        "empty",
        "bad role",
        "no content",
        "bad choice",
        "unknown forced tool",
        "no tools",
        "extra",
    ],
)
def test_malformed_requests_are_refused(
    tools: list[dict[str, Any]], kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"messages": MESSAGES, "tools": tools, **kwargs}
    with pytest.raises(RequestError, match=message):
        build_chat_request(arguments.pop("messages"), **arguments)


def test_named_tool_choice_is_accepted(tools: list[dict[str, Any]]) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    assert build_chat_request(MESSAGES, tools=tools, tool_choice=choice)["tool_choice"] == choice


def test_prompt_estimate_grows_with_the_prompt(tools: list[dict[str, Any]]) -> None:
    small = estimate_prompt_tokens(build_chat_request(MESSAGES))
    with_tools = estimate_prompt_tokens(build_chat_request(MESSAGES, tools=tools))
    assert 0 < small < with_tools


# --- invoke_endpoint --------------------------------------------------------------------------


def test_success_returns_validated_calls_usage_and_latency(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, _ = ticking_client(runtime.client)
    body = build_chat_request(MESSAGES, tools=tools, thinking=True)
    runtime.respond(
        completion("<think>\nNeed the weather.\n</think>\n\n" + PARIS_CALL),
        expected={
            "EndpointName": "qwen3-tools",
            "Body": json.dumps(body).encode(),
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    result = client.chat(MESSAGES, tools=tools, thinking=True)
    assert result.ok
    assert result.reasoning == "Need the weather."
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (210, 240)
    assert result.latency_s == 1.0
    assert result.attempts == 1


def test_server_parsed_tool_calls_are_validated_too(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, _ = ticking_client(runtime.client)
    calls = [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {
            "id": "b",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"timezone": "UTC"}'},
        },
    ]
    runtime.respond(completion(None, tool_calls=calls, reasoning_content="two calls"))
    result = client.chat(MESSAGES, tools=tools)
    assert [c.id for c in result.tool_calls] == ["b"]
    assert [e.kind for e in result.errors] == [ErrorKind.MISSING_ARGUMENT]
    assert result.finish_reason == "tool_calls"


def test_throttling_then_success_retries_with_backoff(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, sleeps = ticking_client(runtime.client, backoff_s=0.5)
    runtime.error("invoke_endpoint", "ThrottlingException", 400)
    runtime.error("invoke_endpoint", "ModelNotReadyException", 429)
    runtime.respond(completion(PARIS_CALL))
    result = client.chat(MESSAGES, tools=tools)
    assert result.attempts == 3
    assert result.tool_calls[0].name == "get_weather"
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


def test_throttling_gives_up_after_max_attempts(runtime: StubbedRuntime) -> None:
    client, sleeps = ticking_client(runtime.client, max_attempts=2)
    runtime.error("invoke_endpoint", "ThrottlingException", 400)
    runtime.error("invoke_endpoint", "ThrottlingException", 400)
    with pytest.raises(ThrottledError, match="after 2 attempts"):
        client.chat(MESSAGES)
    assert len(sleeps) == 1


def test_model_error_is_raised_with_its_log_stream(runtime: StubbedRuntime) -> None:
    client, sleeps = ticking_client(runtime.client)
    runtime.error(
        "invoke_endpoint",
        "ModelError",
        424,
        OriginalStatusCode=500,
        OriginalMessage="CUDA out of memory",
        LogStreamArn="arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/x",
    )
    with pytest.raises(ModelError, match="CUDA out of memory") as info:
        client.chat(MESSAGES)
    assert info.value.status == 500
    assert info.value.log_stream_arn is not None
    assert sleeps == [], "a model failure is not retried"


def test_model_error_saying_busy_is_retried(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.error("invoke_endpoint", "ModelError", 424, OriginalStatusCode=429)
    runtime.respond(completion("Sunny."))
    assert client.chat(MESSAGES).text == "Sunny."


def test_validation_error_is_not_retried(runtime: StubbedRuntime) -> None:
    client, sleeps = ticking_client(runtime.client)
    runtime.error("invoke_endpoint", "ValidationError", 400)
    with pytest.raises(EndpointError, match="ValidationError"):
        client.chat(MESSAGES)
    assert sleeps == []


def test_oversize_payload_is_refused_before_sending(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, max_model_len=10**9)
    huge = [{"role": "user", "content": "x" * (MAX_PAYLOAD_BYTES + 1)}]
    with pytest.raises(PayloadTooLargeError, match="6 MB"):
        client.chat(huge)  # the Stubber holds no response: any call would fail the test


def test_prompt_over_budget_is_refused_before_sending(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, max_model_len=2048)
    long = [{"role": "user", "content": "word " * 2000}]
    with pytest.raises(PromptTooLongError, match="budget is 1,024"):
        client.chat(long, sampling=Sampling(max_tokens=1024))


def test_prompt_budget_uses_the_tokenizer_when_given(runtime: StubbedRuntime) -> None:
    class CountingTokenizer:
        def apply_chat_template(self, messages: Any, **_: Any) -> list[int]:
            return [0] * 5000

    client, _ = ticking_client(runtime.client, max_model_len=4096, tokenizer=CountingTokenizer())
    with pytest.raises(PromptTooLongError, match="counted with the tokenizer"):
        client.chat(MESSAGES, sampling=Sampling(max_tokens=64))


def test_read_timeout_names_the_60_second_limit(runtime: StubbedRuntime) -> None:
    class TimingOut:
        def invoke_endpoint(self, **_: Any) -> Any:
            raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker")

    client = EndpointClient("qwen3-tools", runtime_client=TimingOut())
    with pytest.raises(EndpointTimeoutError, match=r"60 s.*stream=True"):
        client.chat(MESSAGES)


def test_non_json_body_is_a_typed_error(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.respond(b"upstream connect error")
    result = client.chat(MESSAGES)
    assert [e.kind for e in result.errors] == [ErrorKind.MALFORMED_RESPONSE]


# --- streaming --------------------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    )


def chunk(**delta: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_streaming_yields_text_as_it_arrives_and_parses_the_whole(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, _ = ticking_client(runtime.client)
    pieces = ["<think>\nCity", " is Paris.\n</think>\n\n", PARIS_CALL[:30], PARIS_CALL[30:]]
    stream = sse(
        chunk(role="assistant"),
        *(chunk(content=p) for p in pieces),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
    )
    runtime.stream(split_every(stream, 7))  # PayloadParts split lines and JSON anywhere
    seen: list[Delta] = []
    result = client.chat(MESSAGES, tools=tools, stream=True, on_delta=seen.append)
    assert "".join(d.text for d in seen) == "".join(pieces)
    assert result.reasoning == "City is Paris."
    assert [c.arguments for c in result.tool_calls] == [{"city": "Paris"}]
    assert result.usage is not None
    assert result.usage.total_tokens == 13
    assert result.finish_reason == "stop"
    assert result.time_to_first_token_s is not None
    assert result.time_to_first_token_s <= result.latency_s


def test_streamed_reasoning_field_and_tool_call_deltas(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, _ = ticking_client(runtime.client)
    stream = sse(
        chunk(reasoning_content="Weather "),
        chunk(reasoning_content="question."),
        chunk(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "get_weather"}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )
    runtime.stream(split_every(stream, 5))
    seen: list[Delta] = []
    result = client.chat(MESSAGES, tools=tools, stream=True, on_delta=seen.append)
    assert [d.kind for d in seen] == ["reasoning", "reasoning"]
    assert result.reasoning == "Weather question."
    assert [(c.id, c.arguments) for c in result.tool_calls] == [("c1", {"city": "Paris"})]


def test_stream_error_event_becomes_a_typed_error(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.stream(
        [sse(chunk(content="Partial"))[: -len(b"data: [DONE]\n\n")]],
        extra_events=[{"ModelStreamError": {"Message": "worker died", "ErrorCode": "500"}}],
    )
    result = client.chat(MESSAGES, stream=True)
    assert result.text == "Partial"
    assert [e.kind for e in result.errors] == [ErrorKind.MALFORMED_RESPONSE]
    assert "worker died" in result.errors[0].reason


def test_sse_reassembly_handles_split_utf8_and_json_lines() -> None:
    data = 'data: {"choices": [{"delta": {"content": "Zürich ☀"}}]}\n\n{"token": {"text": "x"}}\n'
    raw = data.encode()
    events = list(iter_sse_events(split_every(raw, 3)))
    assert events[0]["choices"][0]["delta"]["content"] == "Zürich ☀"
    assert events[1] == {"token": {"text": "x"}}
    (unparsed,) = iter_sse_events([b"data: not json\n"])
    assert unparsed["_unparsed"] == "not json"
    assert "not valid JSON" in unparsed["_reason"]


def test_client_for_a_serving_config_takes_its_budget_and_thinking_default(
    runtime: StubbedRuntime,
) -> None:
    from inference.serving import ServingConfig

    config = ServingConfig(max_model_len=4096, thinking_default=False)
    client = EndpointClient.for_serving("qwen3-tools", config, runtime_client=runtime.client)
    assert client.max_model_len == 4096
    body = build_chat_request(MESSAGES, thinking=False)
    runtime.respond(
        completion("Hi."),
        expected={
            "EndpointName": "qwen3-tools",
            "Body": json.dumps(body).encode(),
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    assert client.chat(MESSAGES).text == "Hi."  # enable_thinking false was sent


def test_stream_error_raised_by_botocore_becomes_a_typed_error() -> None:
    from botocore.exceptions import EventStreamError

    def events() -> Any:
        yield {"PayloadPart": {"Bytes": sse(chunk(content="Part"))}}
        raise EventStreamError(
            {"Error": {"Code": "ModelStreamError", "Message": "worker died"}},
            "InvokeEndpointWithResponseStream",
        )

    class Streaming:
        def invoke_endpoint_with_response_stream(self, **_: Any) -> Any:
            return {"Body": events()}

    client = EndpointClient("qwen3-tools", runtime_client=Streaming())
    result = client.chat(MESSAGES, stream=True)
    assert result.text == "Part"
    assert "ModelStreamError: worker died" in result.errors[0].reason


def test_broken_tool_schema_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="invalid JSON schema"):
        build_chat_request(MESSAGES, tools=[{"name": "f", "parameters": {"type": "objekt"}}])
