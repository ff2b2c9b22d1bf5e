"""Fixtures for the inference tests: the offered tools and a stubbed SageMaker runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inference_stubs import StubbedRuntime

from inference.smoke import WEATHER_TOOL

# The smoke command's tool: one weather tool across the smoke test, the e2e test and tables.
# Bare form (no "type"/"function" wrapper), as xLAM-style data carries it.
TIME_TOOL: dict[str, Any] = {
    "name": "get_time",
    "description": "Local time in a timezone.",
    "parameters": {
        "type": "object",
        "properties": {"timezone": {"type": "string"}, "hour24": {"type": "boolean"}},
        "required": ["timezone"],
        "additionalProperties": False,
    },
}


@pytest.fixture
def tools() -> list[dict[str, Any]]:
    return [WEATHER_TOOL, TIME_TOOL]


@pytest.fixture
def runtime() -> Iterator[StubbedRuntime]:
    stubbed = StubbedRuntime()
    with stubbed.stubber:
        yield stubbed
    stubbed.stubber.assert_no_pending_responses()


@pytest.fixture(scope="session")
def memorized_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 (offline tokenizer, real template) trained to answer one tool-calling prompt.

    Random tiny weights only babble; a few dozen optimiser steps make greedy decoding of
    `E2E_PROMPT` reproduce `E2E_TARGET` exactly, so the server's tool-call path is exercised.
    """
    from local_server import memorize

    return memorize(tmp_path_factory.mktemp("memorized-qwen3"))


@pytest.fixture(scope="session")
def local_server(memorized_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve` on loopback with the memorized model; yields its base URL."""
    from local_server import serve

    with serve(memorized_model, tmp_path_factory.mktemp("serve-logs")) as base_url:
        yield base_url
