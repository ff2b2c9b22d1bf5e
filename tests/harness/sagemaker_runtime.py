"""A `sagemaker-runtime` client that answers InvokeEndpoint from a local chat server.

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
        assert kwargs["ContentType"] == "application/json"
        sent = json.loads(kwargs["Body"])
        self.payloads.append(sent)
        local = {k: v for k, v in sent.items() if k not in VLLM_ONLY_FIELDS}
        local["model"] = self.model
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.base_url}/v1/chat/completions",
            data=json.dumps(local).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
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
