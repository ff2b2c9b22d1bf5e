"""Fixtures for the inference tests: the tools offered to the model in every table."""

from __future__ import annotations

from typing import Any

import pytest

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
