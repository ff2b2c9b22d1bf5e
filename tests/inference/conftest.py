"""Fixtures for the inference tests: the offered tools and a stubbed SageMaker runtime."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from inference_stubs import StubbedRuntime

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            },
            "required": ["city"],
        },
    },
}
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
