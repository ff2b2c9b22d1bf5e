"""BFCL-style scoring of predicted calls against expected ones (shared with the evaluation)."""

from __future__ import annotations

from typing import Any

import pytest

from inference.parsing import ToolCall
from inference.scoring import score_calls, values_equal


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(name=name, arguments=arguments, raw="")


def test_exact_single_call_with_normalised_values() -> None:
    score = score_calls(
        [call("get_weather", city=" paris ", days=3.0)],
        [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}],
    )
    assert score.exact
    assert (score.precision, score.recall) == (1.0, 1.0)


def test_parallel_calls_match_in_any_order() -> None:
    predicted = [call("get_time", timezone="UTC"), call("get_weather", city="Rome")]
    expected: list[dict[str, Any]] = [
        {"name": "get_weather", "arguments": {"city": "Rome"}},
        {"name": "get_time", "arguments": '{"timezone": "UTC"}'},  # JSON-string arguments too
    ]
    assert score_calls(predicted, expected).exact


def test_wrong_value_counts_as_name_match_only() -> None:
    score = score_calls([call("get_weather", city="Rome")], [call("get_weather", city="Paris")])
    assert not score.exact
    assert (score.matched, score.name_matched) == (0, 1)
    assert score.mismatches == ["get_weather: city='Rome', expected 'Paris'"]


@pytest.mark.parametrize(
    ("predicted", "reason"),
    [
        (call("get_weather"), "get_weather: missing argument(s) city"),
        (call("get_weather", city="Paris", days=2), "get_weather: unexpected argument 'days'"),
        (call("get_forecast", city="Paris"), "name 'get_forecast' != 'get_weather'"),
    ],
    ids=["missing", "unexpected", "wrong name"],
)
def test_argument_and_name_mismatches(predicted: ToolCall, reason: str) -> None:
    score = score_calls([predicted], [call("get_weather", city="Paris")])
    assert score.mismatches == [reason]
    assert score.matched == 0


def test_optional_argument_at_its_default_is_accepted_with_tools() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": "string", "default": "celsius"},
                    },
                    "required": ["city"],
                },
            },
        }
    ]
    expected = [call("get_weather", city="Paris")]
    assert score_calls([call("get_weather", city="Paris", unit="celsius")], expected, tools).exact
    assert not score_calls(
        [call("get_weather", city="Paris", unit="kelvin")], expected, tools
    ).exact
    assert not score_calls([call("get_weather", city="Paris", unit="celsius")], expected).exact


def test_missing_and_extra_calls() -> None:
    expected = [call("a", x=1), call("b", y=2)]
    score = score_calls([call("a", x=1)], expected)
    assert (score.matched, score.recall, score.precision) == (1, 0.5, 1.0)
    assert score.mismatches == ["missing call 'b'"]
    score = score_calls([call("a", x=1), call("a", x=1)], expected[:1])
    assert score.mismatches == ["unexpected call 'a'"]
    assert score.precision == 0.5


def test_no_calls_expected_and_none_made_is_exact() -> None:
    assert score_calls([], []).exact
    assert not score_calls([call("a")], []).exact


def test_assignment_prefers_exact_pairs_over_greedy_order() -> None:
    # A greedy left-to-right pairing would match the first prediction to the first gold call.
    predicted = [call("f", x=1), call("f", x=2)]
    expected = [call("f", x=2), call("f", x=1)]
    assert score_calls(predicted, expected).matched == 2


def test_many_parallel_calls_fall_back_to_greedy_but_still_match() -> None:
    expected = [call("f", i=i) for i in range(10)]
    assert score_calls(list(reversed(expected)), expected).exact


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, False, True),
        ("New York ", "new york", True),
        ([1, "A"], [1.0, "a"], True),
        ([1, 2], [2, 1], False),
        ({"k": "V"}, {"k": "v"}, True),
        ({"k": 1}, {"k": 1, "j": 2}, False),
        (None, None, True),
        ("1", 1, False),
    ],
)
def test_values_equal(a: Any, b: Any, equal: bool) -> None:
    assert values_equal(a, b) is equal


def test_malformed_expected_entry_raises() -> None:
    with pytest.raises(ValueError, match="name"):
        score_calls([], [{"arguments": {}}])
