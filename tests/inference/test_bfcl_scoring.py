"""Acceptable-value sets in the one scorer: BFCL's possible answers and its AST rules."""

from __future__ import annotations

import pytest

from inference.scoring import OneOf, bfcl_expected, score_calls, standardize_string

TOOLS = [
    {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "x": {"type": "number"},
                "s": {"type": "string", "default": "a"},
                "v": {},
            },
            "required": ["n"],
        },
    }
]
TRUTH = [{"f": {"n": [1], "x": [2.5, ""], "s": ["New York", "NYC"], "v": ["", 3]}}]


def _exact(arguments: dict, *, bfcl: bool = True) -> bool:
    expected = bfcl_expected(TRUTH)
    return score_calls([{"name": "f", "arguments": arguments}], expected, TOOLS, bfcl=bfcl).exact


def test_ground_truth_becomes_expected_calls_with_acceptable_sets():
    assert bfcl_expected(TRUTH) == [
        {
            "name": "f",
            "arguments": {
                "n": OneOf((1,)),
                "x": OneOf((2.5, "")),
                "s": OneOf(("New York", "NYC")),
                "v": OneOf(("", 3)),
            },
        }
    ]


@pytest.mark.parametrize(
    ("arguments", "exact"),
    [
        ({"n": 1, "s": "nyc"}, True),  # optional x and v left out
        ({"n": 1, "s": "new-york"}, True),  # BFCL's standardisation drops - and spaces
        ({"n": 1, "s": "Boston"}, False),
        ({"s": "NYC"}, False),  # n is required and has no ""
        ({"n": 1}, False),  # s has no "": it must be given
        ({"n": True, "s": "NYC"}, False),  # a boolean is not an integer
        ({"n": 1, "s": "NYC", "x": 2.5, "v": 3}, True),
        ({"n": 1, "s": "NYC", "v": "3"}, False),  # untyped: compared by value
    ],
)
def test_bfcl_rules(arguments: dict, exact: bool):
    assert _exact(arguments) is exact


def test_default_exemption_is_the_products_rule_not_bfcls():
    expected = [{"name": "f", "arguments": {"n": 1}}]
    call = [{"name": "f", "arguments": {"n": 1, "s": "a"}}]
    assert score_calls(call, expected, TOOLS).exact
    assert not score_calls(call, expected, TOOLS, bfcl=True).exact


def test_acceptable_sets_work_without_bfcl_rules_too():
    assert _exact({"n": 1, "s": " nyc "}, bfcl=False)
    assert not _exact({"n": 1, "s": "new-york"}, bfcl=False)  # product: strip and case only


def test_standardize_string_matches_bfcl():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024")
    assert standardize_string("it's") == 'it"s'
