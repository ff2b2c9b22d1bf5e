"""`python -m inference.smoke` against stubbed sagemaker and sagemaker-runtime clients."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from inference_stubs import StubbedRuntime, describe_endpoint_response, sagemaker_client

from inference.smoke import Clients, main, parse_args

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
        parse_args(["--endpoint", "qwen3-tools", *args]),
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
    event = {"choices": [{"index": 0, "delta": {"content": GOOD}, "finish_reason": "stop"}]}
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


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No region anywhere: not in the environment, no config file, the default profile."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the config file it read
    return monkeypatch


def test_missing_region_is_a_one_line_usage_error(
    no_region: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(parse_args(["--endpoint", "e"]))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "no AWS region set: pass --region" in err
    assert "export AWS_DEFAULT_REGION" in err
    assert "Traceback" not in err


def test_aws_region_alone_is_named_as_ignored(
    no_region: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """boto3 (botocore 1.44) reads AWS_DEFAULT_REGION only: saying so beats a silent default."""
    no_region.setenv("AWS_REGION", "eu-west-1")
    with pytest.raises(SystemExit):
        main(parse_args(["--endpoint", "e"]))
    err = capsys.readouterr().err
    assert "AWS_REGION=eu-west-1 is set, but boto3 reads AWS_DEFAULT_REGION, not AWS_REGION" in err


def test_unknown_profile_is_a_usage_error(
    no_region: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_region.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(SystemExit) as caught:
        main(parse_args(["--endpoint", "e"]))
    assert caught.value.code == 2
    assert "nobody" in capsys.readouterr().err


PROFILE_REGION = "us-west-2"


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ("ap-south-1", "eu-west-1", ("ap-south-1", "--region")),
        (None, "eu-west-1", ("eu-west-1", "AWS_DEFAULT_REGION")),
        (None, None, (PROFILE_REGION, "profile default in")),
    ],
    ids=["flag", "environment", "profile"],
)
def test_region_comes_from_one_place_in_boto3_order(
    no_region: pytest.MonkeyPatch,
    tmp_path: Path,
    flag: str | None,
    env: str | None,
    expected: tuple[str, str],
) -> None:
    """smoke uses the platform's one resolver (config.aws_region), in boto3's own order."""
    from core.aws_region import resolve_region
    from inference.client import default_runtime_client

    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {PROFILE_REGION}\n")
    no_region.setenv("AWS_CONFIG_FILE", str(config))
    no_region.setenv("AWS_REGION", "ca-central-1")  # never read: boto3 does not either
    if env:
        no_region.setenv("AWS_DEFAULT_REGION", env)
    region = resolve_region(flag)
    assert region.name == expected[0]
    assert region.source.startswith(expected[1])
    # boto3 lands where the resolver says.
    assert default_runtime_client(region.name).meta.region_name == expected[0]


def test_the_region_and_its_source_are_printed(
    no_region: pytest.MonkeyPatch, control: tuple[Any, Stubber], runtime: StubbedRuntime
) -> None:
    import inference.smoke

    no_region.setenv("AWS_DEFAULT_REGION", "us-east-1")
    built: list[str | None] = []

    def stubbed(region: str | None) -> Clients:
        built.append(region)
        return Clients(sagemaker=control[0], runtime=runtime.client)

    no_region.setattr(inference.smoke, "default_clients", stubbed)
    in_service(control)
    runtime.respond(answer(GOOD))
    out = io.StringIO()
    assert main(parse_args(["--endpoint", "qwen3-tools"]), out=out) == 0
    assert built == ["us-east-1"]
    assert out.getvalue().startswith("region us-east-1 (from AWS_DEFAULT_REGION)\n")
