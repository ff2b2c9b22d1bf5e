"""A `sagemaker-runtime` client that answers InvokeEndpoint from a local chat server.

The local stand-in for a deployed endpoint: the pipeline's local profile (`pipelines.local`)
and the end-to-end tests call a local `transformers serve` through it.

`inference.client.EndpointClient` takes any object with `invoke_endpoint`; this one forwards
the exact payload the client would send to a deployed LMI endpoint to a local OpenAI-style
server (`transformers serve`), and answers as SageMaker does: the body as a stream, or a
`ModelError` ClientError carrying the container's status. Every payload is kept for the test.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

# vLLM extensions LMI accepts and `transformers serve` refuses with 422; dropped in transit.
VLLM_ONLY_FIELDS = ("top_k",)


class LocalRuntime:
    def __init__(self, base_url: str, *, model: str, timeout_s: float = 120.0) -> None:
        self.base_url = base_url
        self.model = model  # transformers serve wants the model field LMI does not need
        self.timeout_s = timeout_s
        self.payloads: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("ContentType") != "application/json":
            raise ValueError(f"ContentType {kwargs.get('ContentType')!r}: only application/json")
        sent = json.loads(kwargs["Body"])
        self.payloads.append(sent)
        local = {k: v for k, v in sent.items() if k not in VLLM_ONLY_FIELDS}
        local["model"] = self.model
        request = json_post(f"{self.base_url}/v1/chat/completions", local)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return {"Body": io.BytesIO(response.read()), "ContentType": "application/json"}
        except urllib.error.HTTPError as exc:
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": exc.read().decode(errors="replace")},
                    "OriginalStatusCode": exc.code,
                },
                "InvokeEndpoint",
            ) from exc


def json_post(url: str, body: Any, **headers: str) -> urllib.request.Request:
    """A JSON POST to a local server: one request shape for this runtime and the tests that
    talk to the same server directly. ``headers`` add to the JSON content type."""
    return urllib.request.Request(  # noqa: S310 - loopback only
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )


def serve_command(python: Path, model: Path, port: int) -> list[str]:
    """`transformers serve` pinned to one exported model folder on 127.0.0.1, CPU, seeded: the
    local stand-in for an LMI container (`python` is the interpreter of the environment that
    has transformers; its `transformers` script sits beside it)."""
    return [
        str(python.with_name("transformers")),
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--default-seed",
        "0",
    ]


# Offline and quiet; one thread, because the two cores are shared with whatever runs beside it.
SERVE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "OMP_NUM_THREADS": "1",
}
