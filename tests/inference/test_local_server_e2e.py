"""End to end over real HTTP: the request builder -> `transformers serve` -> the shared parser.

The server (started once per session on loopback) serves a tiny Qwen3 saved by the test: the
offline tokenizer with the real Qwen3 template, and weights trained for a few seconds to answer
one tool-calling prompt, so the whole path (tools rendered into the prompt, `<think>` and
`<tool_call>` generated, the server's own response parsing, our validation) runs for real.
"""

from __future__ import annotations

import copy
from typing import Any

from local_server import (
    E2E_MESSAGES,
    E2E_REASONING,
    WEATHER_TOOL,
    post_json,
    post_stream,
)

from inference.client import (
    Sampling,
    StreamAssembler,
    build_chat_request,
    estimate_prompt_tokens,
    iter_sse_events,
)
from inference.parsing import (
    ErrorKind,
    ParsedCompletion,
    parse_chat_response,
    parse_completion,
    parse_message,
)

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0)


def request(model: str, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "tools": [WEATHER_TOOL],
        "thinking": True,
        "sampling": GREEDY,
        "model": model,
        "dialect": "openai",  # transformers serve refuses vLLM's top_k
        **kwargs,
    }
    return build_chat_request(E2E_MESSAGES, **options)


def assert_weather_call(parsed: ParsedCompletion) -> None:
    assert parsed.errors == []
    assert parsed.reasoning == E2E_REASONING
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]


def test_tool_call_round_trip(local_server: str, memorized_model: Any) -> None:
    status, document = post_json(local_server, request(str(memorized_model)))
    assert status == 200, document
    assert_weather_call(parse_chat_response(document, [WEATHER_TOOL]))
    # transformers serve parses Qwen3 output itself: the call arrives in the tool_calls field
    # (arguments a JSON string), the reasoning in reasoning_content.
    message = document["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert isinstance(message["tool_calls"][0]["function"]["arguments"], str)
    assert document["usage"]["prompt_tokens"] > 100, "the tools were rendered into the prompt"


def test_streamed_round_trip(local_server: str, memorized_model: Any) -> None:
    assembler = StreamAssembler()
    deltas = []
    body = request(str(memorized_model), stream=True)
    for event in iter_sse_events(post_stream(local_server, body)):
        deltas.extend(assembler.add(event))
    assert any(d.kind == "reasoning" for d in deltas), "reasoning streamed as it was generated"
    assert_weather_call(parse_message(assembler.message(), [WEATHER_TOOL]))


def test_real_output_is_validated_against_the_offered_schema(
    local_server: str, memorized_model: Any
) -> None:
    status, document = post_json(local_server, request(str(memorized_model)))
    assert status == 200
    stricter = copy.deepcopy(WEATHER_TOOL)
    stricter["function"]["parameters"]["required"] = ["city", "country"]
    stricter["function"]["parameters"]["properties"]["country"] = {"type": "string"}
    parsed = parse_chat_response(document, [stricter])
    assert parsed.tool_calls == []
    assert [e.kind for e in parsed.errors] == [ErrorKind.MISSING_ARGUMENT]
    assert "country" in parsed.errors[0].reason


def test_babble_from_an_unseen_prompt_parses_without_crashing(
    local_server: str, memorized_model: Any
) -> None:
    body = build_chat_request(
        [{"role": "user", "content": "Book a flight to Tokyo and email the hotel."}],
        tools=[WEATHER_TOOL],
        thinking=False,
        sampling=Sampling(temperature=1.0, max_tokens=24, seed=3),
        model=str(memorized_model),
        dialect="openai",
    )
    status, document = post_json(local_server, body)
    # transformers serve answers 500 when its own Qwen3 parser meets a malformed <tool_call>;
    # either way the client gets a typed result, never an exception.
    assert status in (200, 500), document
    parsed = parse_chat_response(document if isinstance(document, dict) else {"error": document})
    assert isinstance(parsed, ParsedCompletion)
    assert all(isinstance(e.kind, ErrorKind) and e.raw for e in parsed.errors)
    assert status == 200 or parsed.errors


def test_raw_babble_from_the_completions_route(local_server: str, memorized_model: Any) -> None:
    """The raw-text path (what the training evaluation parses): no server-side parsing at all."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(memorized_model)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Cancel my hotel in Rome."}],
        tools=[WEATHER_TOOL],
        add_generation_prompt=True,
        enable_thinking=True,
        tokenize=False,
    )
    body = {"model": str(memorized_model), "prompt": prompt, "max_tokens": 48, "seed": 1}
    status, document = post_json(local_server, body, route="/v1/completions")
    assert status == 200, document
    text = document["choices"][0]["text"]
    parsed = parse_completion(text, [WEATHER_TOOL])
    assert all(isinstance(e.kind, ErrorKind) and e.raw for e in parsed.errors)
    if "<tool_call>" in text:  # a call-shaped block is never silently dropped
        assert parsed.tool_calls or parsed.errors


def test_server_rejection_is_a_typed_error(local_server: str, memorized_model: Any) -> None:
    body = request(str(memorized_model)) | {"top_k": 20}  # the vLLM dialect, refused here
    status, document = post_json(local_server, body)
    assert status == 422
    parsed = parse_chat_response(document if isinstance(document, dict) else {"error": document})
    assert [e.kind for e in parsed.errors] == [ErrorKind.MALFORMED_RESPONSE]


def test_client_token_count_matches_the_server(local_server: str, memorized_model: Any) -> None:
    """The prompt budget check counts what the server will count (same template, same kwargs)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(memorized_model)
    body = request(str(memorized_model))
    status, document = post_json(local_server, body)
    assert status == 200
    assert estimate_prompt_tokens(body, tokenizer) == document["usage"]["prompt_tokens"]
