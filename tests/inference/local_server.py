"""Helpers for the local end-to-end test: a memorized tiny Qwen3 and `transformers serve`
(`serve` is the shared harness's `transformers_serve`, also used by the training e2e)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.servers import transformers_serve as serve

from inference.local_runtime import json_post
from inference.smoke import WEATHER_TOOL

E2E_MESSAGES = [{"role": "user", "content": "What's the weather like in Paris?"}]
E2E_REASONING = "The user wants the weather in Paris."
E2E_TARGET = (
    f"<think>\n{E2E_REASONING}\n</think>\n\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'
)
MAX_STEPS = 400
__all__ = [
    "E2E_MESSAGES",
    "E2E_REASONING",
    "E2E_TARGET",
    "WEATHER_TOOL",
    "memorize",
    "post_json",
    "post_stream",
    "serve",
]


def memorize(output: Path) -> Path:
    """Train a tiny random Qwen3 until greedy decoding of the prompt yields `E2E_TARGET`."""
    import torch

    from training.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    # Rendered exactly as the server will render the request (tools in, thinking on).
    prompt = tokenizer.apply_chat_template(
        E2E_MESSAGES,
        tools=[WEATHER_TOOL],
        add_generation_prompt=True,
        enable_thinking=True,
        tokenize=False,
    )
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    t = tokenizer(E2E_TARGET, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + t])
    labels = torch.tensor([[-100] * len(p) + t])
    target = torch.tensor(t)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for step in range(1, MAX_STEPS + 1):
        model.train()
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            model.eval()
            with torch.no_grad():
                predicted = model(input_ids=ids).logits[0, len(p) - 1 : -1].argmax(-1)
            if torch.equal(predicted, target):
                break
    else:
        raise RuntimeError(f"the tiny model did not memorize the target in {MAX_STEPS} steps")
    model.eval()
    with torch.no_grad():
        generated = model.generate(torch.tensor([p]), max_new_tokens=len(t) + 8, do_sample=False)
    text = tokenizer.decode(generated[0, len(p) :])
    if text != E2E_TARGET:
        raise RuntimeError(f"greedy decoding gives {text!r}, not the memorized target")
    tokenizer.save_pretrained(output)
    model.save_pretrained(output)
    return output


def post_json(
    base_url: str, body: dict[str, Any], route: str = "/v1/chat/completions"
) -> tuple[int, Any]:
    """POST JSON to the server; returns the status and the decoded JSON (or text) body."""
    request = json_post(f"{base_url}{route}", body)
    try:
        with urllib.request.urlopen(request, timeout=120.0) as response:  # noqa: S310
            raw = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", errors="replace")


def post_stream(base_url: str, body: dict[str, Any], read_size: int = 37) -> Iterator[bytes]:
    """POST a streaming chat completion and yield the raw bytes in small, line-splitting reads."""
    request = json_post(f"{base_url}/v1/chat/completions", body, Accept="text/event-stream")
    with urllib.request.urlopen(request, timeout=120.0) as response:  # noqa: S310
        if response.status != 200:
            raise RuntimeError(f"stream answered HTTP {response.status}")
        while chunk := response.read(read_size):
            yield chunk
