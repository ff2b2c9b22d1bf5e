"""The endpoint client against broken, hostile and slow answers (issue 23, item 5).

Every case ends as the client's typed errors: a `malformed_response` error in the result when an
answer arrived but cannot be read, `EndpointTimeoutError` when the deadline passed. The Stubber
covers what botocore hands over parsed; `raw_endpoint` goes through botocore's own HTTP and
event-stream code for what only happens on the wire.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.response import StreamingBody
from inference_stubs import MESSAGES, PARIS_CALL, StubbedRuntime, ticking_client
from raw_endpoint import (
    RawEndpoint,
    Reply,
    model_stream_error,
    payload_part,
    raw_endpoint,
    stream_reply,
)

from inference.client import (
    DEADLINE_S,
    MAX_PAYLOAD_BYTES,
    ChatResult,
    EndpointClient,
    EndpointError,
    EndpointTimeoutError,
    iter_sse_events,
)
from inference.parsing import ErrorKind


def answer(content: Any = "Sunny.", **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    return {"choices": [{**choice, "finish_reason": "stop"}], **extra}


def malformed(result: ChatResult) -> str:
    """The one error of `result`, which must be a malformed response; its reason."""
    assert [e.kind for e in result.errors] == [ErrorKind.MALFORMED_RESPONSE], result.errors
    return result.errors[0].reason


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


# --- one JSON document (invoke_endpoint) --------------------------------------------------------


def test_non_utf8_body(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.respond(b'{"choices": [{"message": {"content": "caf\xe9"}}]}')  # Latin-1 é
    assert "not UTF-8" in malformed(client.chat(MESSAGES))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "nests"),
        (b'{"choices": ' + b"9" * 10_000 + b"}", "digits"),
        (b'{"choices": [], "choices": [{"message": {"content": "x"}}]}', "duplicate key"),
        (b'{"choices": [{"message": {"content": "x"}}], "usage": NaN}', "non-finite"),
        (b"upstream connect error", "not valid JSON"),
    ],
    ids=["deep nesting", "huge integer", "duplicate key", "NaN", "not JSON"],
)
def test_unreadable_json_body(runtime: StubbedRuntime, body: bytes, reason: str) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.respond(body)
    assert reason in malformed(client.chat(MESSAGES))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([answer()], "no choices[0].message"),
        ({"choices": {"0": answer()["choices"][0]}}, "no choices[0].message"),
        (answer(content=42), "message.content is a JSON int"),
        (answer(usage={"prompt_tokens": "12", "completion_tokens": 3}), "usage is not"),
        (answer(usage={"prompt_tokens": 1.5}), "usage is not"),
        ({"choices": [{"message": {"content": "x"}, "finish_reason": 1}]}, "finish_reason"),
    ],
    ids=["a list", "choices an object", "number content", "string count", "float count", "finish"],
)
def test_json_of_the_wrong_shape(runtime: StubbedRuntime, document: Any, reason: str) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.respond(document)
    result = client.chat(MESSAGES)
    assert reason in malformed(result)
    assert result.usage is None


def test_function_name_and_arguments_of_the_wrong_type(
    runtime: StubbedRuntime, tools: list[dict[str, Any]]
) -> None:
    client, _ = ticking_client(runtime.client)
    calls = [
        {"id": "a", "type": "function", "function": {"name": 5, "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": 7}},
    ]
    runtime.respond(answer(content=None) | {"choices": [{"message": {"tool_calls": calls}}]})
    result = client.chat(MESSAGES, tools=tools)
    assert [e.kind for e in result.errors] == [ErrorKind.MISSING_NAME, ErrorKind.INVALID_ARGUMENTS]


def test_truncated_body(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    raw = json.dumps(answer()).encode()
    runtime.stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(raw[:25]), len(raw)), "ContentType": "application/json"},
    )
    result = client.chat(MESSAGES)
    assert "broken off" in malformed(result)
    assert result.errors[0].raw == raw[:25].decode()


def test_body_over_the_cap(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, max_response_bytes=100_000)
    runtime.respond(answer("x" * 200_000))
    result = client.chat(MESSAGES)
    assert "over the 100,000-byte cap" in malformed(result)
    assert len(result.errors[0].raw) <= 2000


def test_default_body_cap_is_the_invoke_endpoint_limit(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    assert client.max_response_bytes == MAX_PAYLOAD_BYTES
    assert client.deadline_s == DEADLINE_S


def test_deadline_ends_the_retries(runtime: StubbedRuntime) -> None:
    client, sleeps = ticking_client(runtime.client, deadline_s=2.5, backoff_s=1.0)
    runtime.error("invoke_endpoint", "ThrottlingException", 400)
    runtime.error("invoke_endpoint", "ThrottlingException", 400)
    with pytest.raises(EndpointTimeoutError, match=r"2.5 s deadline passed \(Throttling"):
        client.chat(MESSAGES)
    assert len(sleeps) == 1, "the second backoff would end past the deadline"


def test_deadline_while_reading_a_long_body(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, deadline_s=3)
    runtime.respond(answer("x" * 1_000_000))  # 16 reads of 64 KiB: one clock tick each
    with pytest.raises(EndpointTimeoutError, match="reading the response"):
        client.chat(MESSAGES)


def test_missing_credentials_are_an_endpoint_error() -> None:
    from botocore.exceptions import NoCredentialsError

    class NoCredentials:
        def invoke_endpoint(self, **_: Any) -> Any:
            raise NoCredentialsError

    with pytest.raises(EndpointError, match="NoCredentialsError"):
        EndpointClient("qwen3-tools", runtime_client=NoCredentials()).chat(MESSAGES)


# --- streams (invoke_endpoint_with_response_stream) ---------------------------------------------


def test_stream_of_the_wrong_shape(runtime: StubbedRuntime, tools: list[dict[str, Any]]) -> None:
    client, _ = ticking_client(runtime.client)
    hostile: list[dict[str, Any]] = [
        {"choices": {"0": {}}},
        {"choices": [{"delta": ["content"]}]},
        delta(content=42),
        delta(reasoning_content={"a": 1}),
        delta(tool_calls={"index": 0}),
        delta(tool_calls=[{"index": "0", "function": {"name": "get_weather"}}]),
        delta(tool_calls=[{"index": 0, "function": {"name": 7}}]),
        delta(tool_calls=["get_weather"]),
        delta(content=PARIS_CALL),
        delta(finish="stop"),
    ]
    runtime.stream([sse(*hostile)])
    result = client.chat(MESSAGES, tools=tools, stream=True)
    assert [c.arguments for c in result.tool_calls] == [{"city": "Paris"}], "the valid part"
    reasons = [e.reason for e in result.errors]
    assert len(reasons) == 8
    assert all(e.kind == ErrorKind.MALFORMED_RESPONSE for e in result.errors)
    assert "delta.content is a JSON int, not text" in reasons[2]


def test_stream_lines_that_are_not_utf8_or_not_json(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.stream(
        [b'data: {"x": \xff}\n\n', b"data: [1, 2]\n\n", sse(delta(content="Hi", finish="stop"))]
    )
    result = client.chat(MESSAGES, stream=True)
    assert result.text == "Hi"
    reasons = [e.reason for e in result.errors]
    assert "not UTF-8" in reasons[0]
    assert "not a JSON object" in reasons[1]


def test_stream_cut_at_an_event_boundary(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.stream([sse(delta(content="It is"))])  # no final chunk, no finish_reason
    result = client.chat(MESSAGES, stream=True)
    assert "without a finish_reason" in malformed(result)
    assert result.text == "It is"


def test_stream_cut_inside_an_event(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client)
    runtime.stream([sse(delta(content="It is"), delta(content=" sunny"))[:-20]])
    assert "not valid JSON" in malformed(client.chat(MESSAGES, stream=True))


def test_stream_over_the_cap(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, max_stream_bytes=10_000)
    runtime.stream([sse(delta(content="x" * 1000))] * 20)
    result = client.chat(MESSAGES, stream=True)
    assert "over the 10,000-byte cap" in malformed(result)
    assert 9 * 1000 <= len(result.text) <= 10 * 1000


def test_deadline_mid_stream(runtime: StubbedRuntime) -> None:
    client, _ = ticking_client(runtime.client, deadline_s=5)
    runtime.stream([sse(delta(content="x"))] * 50)
    with pytest.raises(EndpointTimeoutError, match=r"5 s deadline passed \(streaming"):
        client.chat(MESSAGES, stream=True)


def test_sse_reassembly_of_one_long_line_in_tiny_pieces() -> None:
    """A 1 MB line in 1-byte parts: pieces are joined once (the old re-split was quadratic)."""
    line = b"data: " + json.dumps(delta(content="y" * 1_000_000)).encode() + b"\n"
    (event,) = iter_sse_events(line[i : i + 1] for i in range(len(line)))
    assert len(event["choices"][0]["delta"]["content"]) == 1_000_000


# --- over the wire: botocore's HTTP and event-stream code ---------------------------------------


@pytest.fixture(scope="module")
def wire() -> Iterator[RawEndpoint]:
    with raw_endpoint(read_timeout_s=1.0) as endpoint:
        yield endpoint


def wire_client(wire: RawEndpoint, **kwargs: Any) -> EndpointClient:
    return EndpointClient("qwen3-tools", runtime_client=wire.client, **kwargs)


def events(*deltas: dict[str, Any]) -> list[bytes]:
    return [payload_part(sse(d)) for d in deltas]


def test_wire_stream_round_trip(wire: RawEndpoint) -> None:
    wire.reply(stream_reply(events(delta(content="Hel"), delta(content="lo", finish="stop"))))
    result = wire_client(wire).chat(MESSAGES, stream=True)
    assert (result.text, result.errors, result.finish_reason) == ("Hello", [], "stop")


def test_wire_bad_event_stream_checksum(wire: RawEndpoint) -> None:
    first, second = events(delta(content="Hel"), delta(content="lo", finish="stop"))
    corrupt = bytearray(second)
    corrupt[-8] ^= 0xFF  # a payload byte: botocore's message CRC no longer matches
    wire.reply(stream_reply([first, bytes(corrupt)]))
    result = wire_client(wire).chat(MESSAGES, stream=True)
    assert "event stream is corrupt: ChecksumMismatch" in malformed(result)
    assert result.text == "Hel"


def test_wire_stream_broken_off(wire: RawEndpoint) -> None:
    parts = events(delta(content="Hel"), delta(content="lo", finish="stop"))
    wire.reply(stream_reply(parts, cut_short=True))
    result = wire_client(wire).chat(MESSAGES, stream=True)
    assert "response stream broken off" in malformed(result)
    assert result.text == "Hel"


def test_wire_model_stream_error(wire: RawEndpoint) -> None:
    wire.reply(stream_reply([*events(delta(content="Hel")), model_stream_error("worker died")]))
    result = wire_client(wire).chat(MESSAGES, stream=True)
    assert "ModelStreamError: worker died" in malformed(result)


def test_wire_truncated_body(wire: RawEndpoint) -> None:
    raw = json.dumps(answer()).encode()
    wire.reply(Reply((raw[:20],), cut_short=True))
    assert "broken off" in malformed(wire_client(wire).chat(MESSAGES))


def test_wire_dripping_stream_meets_the_deadline(wire: RawEndpoint) -> None:
    wire.reply(stream_reply(events(*[delta(content="x")] * 40), pause_s=0.05))
    with pytest.raises(EndpointTimeoutError, match="deadline passed"):
        wire_client(wire, deadline_s=0.3).chat(MESSAGES, stream=True)


def test_wire_stalled_stream_is_a_read_timeout(wire: RawEndpoint) -> None:
    wire.reply(stream_reply(events(delta(content="x"), delta(content="y")), pause_s=1.5))
    with pytest.raises(EndpointTimeoutError, match="stream stalled"):
        wire_client(wire).chat(MESSAGES, stream=True)
