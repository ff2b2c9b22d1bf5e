"""Smoke-test a deployed endpoint: is it InService, does it reason, does it call the tool right?

    python -m inference.smoke --endpoint qwen3-tools --region eu-west-1
    python -m inference.smoke --endpoint qwen3-tools --stream --no-thinking

Prints the region and where it came from, the endpoint status, the reasoning, the parsed tool
call and the latency, and exits 0 only when the endpoint is InService and answered a weather
question with reasoning (unless ``--no-thinking``) and a valid ``get_weather`` call for Paris;
1 otherwise; 2 on bad usage (no region, an unknown profile).

The region is ``--region``, else ``AWS_DEFAULT_REGION``, else the active profile's ``region``:
the order boto3 itself follows (botocore 1.44 reads ``AWS_DEFAULT_REGION``, not ``AWS_REGION``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from core import cli
from core.aws_region import RegionNotSetError, region_option, resolve_region
from inference.client import (
    ChatResult,
    EndpointClient,
    EndpointError,
    Sampling,
    default_runtime_client,
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
MAX_TOKENS = 1024  # the smoke request's completion budget (--max-tokens)
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools when they help."},
    {"role": "user", "content": "What's the weather like in Paris right now, in celsius?"},
]


@dataclass(frozen=True)
class Clients:
    """The boto3 clients to use (tests pass stubbed ones); `None` builds the default."""

    sagemaker: Any = None
    runtime: Any = None


def _problems(result: ChatResult, *, want_reasoning: bool) -> list[str]:
    problems = [f"{e.kind.value}: {e.reason}" for e in result.errors]
    if want_reasoning and not (result.reasoning or "").strip():
        problems.append("no reasoning in the answer")
    calls = [c for c in result.tool_calls if c.name == "get_weather"]
    if not calls:
        problems.append("no valid get_weather call")
    elif "paris" not in str(calls[0].arguments.get("city", "")).lower():
        problems.append(f"get_weather called for {calls[0].arguments.get('city')!r}, not Paris")
    return problems


def run(
    endpoint: str,
    *,
    clients: Clients,
    thinking: bool = True,
    stream: bool = False,
    max_tokens: int = MAX_TOKENS,
    out: TextIO = sys.stdout,
) -> int:
    """The smoke test proper; `main` only parses arguments and builds the clients."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        description = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    except (ClientError, BotoCoreError) as exc:
        print(f"status: unknown ({exc})", file=out)
        return 1
    status = description.get("EndpointStatus", "unknown")
    print(f"status: {status}", file=out)
    if status != "InService":
        reason = description.get("FailureReason")
        print(f"FAIL: endpoint is {status}" + (f": {reason}" if reason else ""), file=out)
        return 1
    client = EndpointClient(endpoint, runtime_client=clients.runtime)
    try:
        result = client.chat(
            MESSAGES,
            tools=[WEATHER_TOOL],
            thinking=thinking,
            sampling=Sampling(max_tokens=max_tokens),
            stream=stream,
        )
    except EndpointError as exc:
        print(f"FAIL: {type(exc).__name__}: {exc}", file=out)
        return 1
    print(f"reasoning: {(result.reasoning or '').strip() or '<none>'}", file=out)
    for tool_call in result.tool_calls:
        print(f"tool_call: {tool_call.name} {json.dumps(tool_call.arguments)}", file=out)
    if not result.tool_calls:
        print("tool_call: <none>", file=out)
    if result.text:
        print(f"content: {result.text}", file=out)
    print(f"latency_s: {result.latency_s:.3f}", file=out)
    if result.usage is not None:
        usage = result.usage
        print(
            f"tokens: prompt {usage.prompt_tokens}, completion {usage.completion_tokens}", file=out
        )
    problems = _problems(result, want_reasoning=thinking)
    for problem in problems:
        print(f"FAIL: {problem}", file=out)
    if not problems:
        print("OK", file=out)
    return 1 if problems else 0


def default_clients(region: str | None) -> Clients:
    """Real sagemaker and sagemaker-runtime clients for `region` (None: the profile's)."""
    import boto3

    return Clients(
        sagemaker=boto3.client("sagemaker", region_name=region),
        runtime=default_runtime_client(region),
    )


@dataclass(frozen=True)
class SmokeArgs:
    endpoint: str = field(metadata={"help": "SageMaker endpoint name"})
    region: str | None = region_option("the endpoint's")
    no_thinking: bool = cli.switch("ask for no reasoning")
    stream: bool = cli.switch("use the streaming API")
    max_tokens: int = field(
        default=MAX_TOKENS,
        metadata={"help": "completion budget; reasoning counts against it (default: %(default)s)"},
    )


def _parser() -> argparse.ArgumentParser:
    return cli.build_parser(SmokeArgs, __doc__, module="inference.smoke", with_examples=True)


parse_args = cli.args_parser(SmokeArgs, __doc__, module="inference.smoke", with_examples=True)


def main(args: SmokeArgs, *, clients: Clients | None = None, out: TextIO = sys.stdout) -> int:
    """Build the clients `clients` leaves out (for the resolved region), then `run`; a missing
    region is a usage error (exit 2)."""
    if clients is None or clients.sagemaker is None or clients.runtime is None:
        try:
            region = resolve_region(args.region)
        except RegionNotSetError as exc:
            _parser().error(str(exc))
        built = default_clients(region.name)
        given = clients or Clients()
        clients = Clients(given.sagemaker or built.sagemaker, given.runtime or built.runtime)
        print(region.describe(), file=out)
    return run(
        args.endpoint,
        clients=clients,
        thinking=not args.no_thinking,
        stream=args.stream,
        max_tokens=args.max_tokens,
        out=out,
    )


if __name__ == "__main__":
    sys.exit(main(parse_args()))
