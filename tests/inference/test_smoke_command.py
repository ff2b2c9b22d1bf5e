"""`python -m inference.smoke` against stubbed sagemaker and sagemaker-runtime clients."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from inference_stubs import StubbedRuntime, describe_endpoint_response, sagemaker_client

from inference.smoke import Clients, main

GOOD = (
    "<think>\nThe user wants the Paris weather; call get_weather.\n</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
    "\n</tool_call>"
)


def answer(content: str) -> dict[str, Any]:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 250, "completion_tokens": 40, "total_tokens": 290},
    }


@pytest.fixture
def control() -> Iterator[tuple[Any, Stubber]]:
    client, stubber = sagemaker_client()
    with stubber:
        yield client, stubber
    stubber.assert_no_pending_responses()


def smoke(control: tuple[Any, Stubber], runtime: StubbedRuntime, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        ["--endpoint", "qwen3-tools", *args],
        clients=Clients(sagemaker=control[0], runtime=runtime.client),
        out=out,
    )
    return code, out.getvalue()


def in_service(control: tuple[Any, Stubber]) -> None:
    control[1].add_response(
        "describe_endpoint",
        describe_endpoint_response("qwen3-tools", "InService"),
        {"EndpointName": "qwen3-tools"},
    )


def test_healthy_endpoint_passes(control: tuple[Any, Stubber], runtime: StubbedRuntime) -> None:
    in_service(control)
    runtime.respond(answer(GOOD))
    code, out = smoke(control, runtime)
    assert code == 0, out
    assert "status: InService" in out
    assert "reasoning: The user wants the Paris weather" in out
    assert 'tool_call: get_weather {"city": "Paris", "unit": "celsius"}' in out
    assert "latency_s: " in out
    assert out.rstrip().endswith("OK")


def test_streaming_variant(control: tuple[Any, Stubber], runtime: StubbedRuntime) -> None:
    in_service(control)
    event = {"choices": [{"index": 0, "delta": {"content": GOOD}}]}
    runtime.stream([b"data: " + json.dumps(event).encode() + b"\n\n"])
    code, out = smoke(control, runtime, "--stream")
    assert code == 0, out


def test_endpoint_not_in_service_fails_without_invoking(
    control: tuple[Any, Stubber], runtime: StubbedRuntime
) -> None:
    control[1].add_response(
        "describe_endpoint",
        describe_endpoint_response("qwen3-tools", "Failed", FailureReason="image pull failed"),
    )
    code, out = smoke(control, runtime)
    assert code == 1
    assert "FAIL: endpoint is Failed: image pull failed" in out


def test_missing_endpoint_fails(control: tuple[Any, Stubber], runtime: StubbedRuntime) -> None:
    control[1].add_client_error(
        "describe_endpoint", "ValidationException", "Could not find endpoint", 400
    )
    code, out = smoke(control, runtime)
    assert code == 1
    assert "Could not find endpoint" in out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (GOOD.split("</think>")[1], "no reasoning"),
        ("<think>\nhmm\n</think>\n\nIt is sunny.", "no valid get_weather call"),
        (
            '<think>\nx\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {}}\n'
            "</tool_call>",
            "missing_argument",
        ),
        (
            '<think>\nx\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
            '{"city": "Lyon"}}\n</tool_call>',
            "not Paris",
        ),
        ('<think>\nx\n</think>\n\n<tool_call>\n{"name": "get_weather", "argu', "unclosed_tag"),
    ],
    ids=["no reasoning", "no call", "invalid call", "wrong city", "truncated"],
)
def test_missing_or_invalid_answers_fail(
    control: tuple[Any, Stubber], runtime: StubbedRuntime, content: str, problem: str
) -> None:
    in_service(control)
    runtime.respond(answer(content))
    code, out = smoke(control, runtime)
    assert code == 1
    assert problem in out


def test_no_thinking_does_not_require_reasoning(
    control: tuple[Any, Stubber], runtime: StubbedRuntime
) -> None:
    in_service(control)
    runtime.respond(answer(GOOD.split("</think>")[1]))
    code, out = smoke(control, runtime, "--no-thinking")
    assert code == 0, out


def test_model_error_fails(control: tuple[Any, Stubber], runtime: StubbedRuntime) -> None:
    in_service(control)
    runtime.error("invoke_endpoint", "ModelError", 424, OriginalStatusCode=500)
    code, out = smoke(control, runtime)
    assert code == 1
    assert "FAIL: ModelError" in out


def test_missing_region_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as caught:
        main(["--endpoint", "e"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "no AWS region: pass --region" in err
    assert "Traceback" not in err
