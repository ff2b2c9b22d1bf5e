"""Test doubles for the AWS clients the inference code calls (imported by conftest and tests)."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber

from inference.client import EndpointClient

# The question the client tests send, and the model's raw answer to it: one weather call.
MESSAGES = [{"role": "user", "content": "What's the weather in Paris?"}]
PARIS_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


class StubbedRuntime:
    """A real sagemaker-runtime client under botocore's Stubber.

    The Stubber validates a streaming response's Body as a structure, so `stream()` queues the
    PayloadPart events separately and an after-call hook puts them in place of the stub's Body,
    where the real client would put its EventStream.
    """

    def __init__(self) -> None:
        self.client = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.stubber = Stubber(self.client)
        self._streams: list[list[dict[str, Any]]] = []
        self.client.meta.events.register(
            "after-call.sagemaker-runtime.InvokeEndpointWithResponseStream", self._swap_body
        )

    def _swap_body(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Body" in parsed and self._streams:
            parsed["Body"] = iter(self._streams.pop(0))

    def respond(self, document: Any, expected: dict[str, Any] | None = None) -> None:
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
            expected,
        )

    def stream(self, chunks: list[bytes], extra_events: list[dict[str, Any]] | None = None) -> None:
        self._streams.append([{"PayloadPart": {"Bytes": c}} for c in chunks] + (extra_events or []))
        self.stubber.add_response(
            "invoke_endpoint_with_response_stream", {"Body": {}, "ContentType": "text/event-stream"}
        )

    def error(self, operation: str, code: str, status: int, **fields: Any) -> None:
        self.stubber.add_client_error(
            operation,
            service_error_code=code,
            http_status_code=status,
            modeled_fields=fields or None,
        )


def sagemaker_client() -> tuple[Any, Stubber]:
    """A real `sagemaker` control-plane client and its Stubber (not yet activated)."""
    client = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


def describe_endpoint_response(name: str, status: str, **extra: Any) -> dict[str, Any]:
    import datetime as dt

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{name}",
        "EndpointConfigName": f"{name}-config",
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
        **extra,
    }


def ticking_client(runtime_client: Any, **kwargs: Any) -> tuple[EndpointClient, list[float]]:
    """A client whose clock advances one second per reading and whose sleeps are recorded, so
    deadlines and backoff are checked without waiting."""
    sleeps: list[float] = []
    ticks = iter(float(i) for i in range(100_000))
    client = EndpointClient(
        "qwen3-tools",
        runtime_client=runtime_client,
        sleep=sleeps.append,
        clock=lambda: next(ticks),
        **kwargs,
    )
    return client, sleeps
