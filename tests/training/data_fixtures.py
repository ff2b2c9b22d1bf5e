"""Shared helpers for the data-preparation tests: one tiny tokenizer per process, saved once, and a
realistic multi-turn tool conversation.

Import it as `data_fixtures` (pytest puts this folder on sys.path; a `tests` package in
site-packages shadows ours). Not a conftest: that one belongs to the trainer's tests.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

from training.data.conversation import Conversation, Message, ToolCall, build
from training.tiny import build_model, build_tokenizer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@functools.cache
def tiny_tokenizer() -> Any:
    """Building the BPE takes a second or two on two cores: do it once per process."""
    return build_tokenizer()


@functools.cache
def tiny_tokenizer_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="tiny-tokenizer-"))
    tiny_tokenizer().save_pretrained(path)
    return path


def tool_conversation() -> Conversation:
    """system, user, assistant (reasoning + 2 parallel calls), 2 tool results, assistant answer."""
    return build(
        [
            Message("system", "You are a helpful assistant."),
            Message("user", "Weather in Paris and the time in Tokyo?"),
            Message(
                "assistant",
                "",
                "Two independent lookups.",
                (
                    ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),
                    ToolCall("get_time", {"city": "Tokyo"}),
                ),
            ),
            Message("tool", '{"temperature": 18}'),
            Message("tool", '{"time": "21:00"}'),
            Message("assistant", "It is 18 degrees in Paris and 21:00 in Tokyo."),
        ],
        [WEATHER_TOOL, TIME_TOOL],
    )


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Records as JSONL; a str is written verbatim (for malformed lines)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@functools.cache
def tiny_model(seed: int = 0) -> Any:
    """A random tiny Qwen3 in eval mode (building one takes seconds on a busy CPU: share it)."""
    return build_model(tiny_tokenizer(), seed=seed).eval()


@functools.cache
def tiny_model_dir(seed: int = 0) -> Path:
    """`tiny_model(seed)` + the tiny tokenizer saved in the Hugging Face layout."""
    path = Path(tempfile.mkdtemp(prefix=f"tiny-model-{seed}-"))
    tiny_tokenizer().save_pretrained(path)
    tiny_model(seed).save_pretrained(path)
    return path
