"""The benchmark's completions carry the labels they were built with, and its peers are wired the
way the table says (keeps `make bench-inference` honest; no timings here)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from benchmarks.inference import (
    _SCHEDULE,
    DEFECTS,
    EXPECTED_ERROR,
    HARD_NEGATIVES,
    TOOLS,
    VALID_KINDS,
    HandRolled,
    _hostile_inputs,
    format_table,
    generate,
    run,
)
from inference.parsing import parse_completion

SCHEMA_DEFECTS = (
    "unknown_tool",
    "missing_argument",
    "extra_argument",
    "wrong_type",
    "constraint_violation",
    "arguments_not_object",
)


@pytest.fixture(scope="module")
def samples() -> list[Any]:
    return generate(len(_SCHEDULE) * 8, seed=1)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return run(count=len(_SCHEDULE) * 2, repeat=1)


def test_every_kind_is_generated_deterministically(samples: list[Any]) -> None:
    assert {s.kind for s in samples} == set(VALID_KINDS + HARD_NEGATIVES + DEFECTS)
    assert generate(60, seed=4) == generate(60, seed=4)
    assert generate(60, seed=4) != generate(60, seed=5)


def test_valid_completions_parse_to_exactly_their_constructed_calls(samples: list[Any]) -> None:
    for sample in (s for s in samples if not s.malformed):
        parsed = parse_completion(sample.text, TOOLS)
        assert parsed.ok, (sample, parsed.errors)
        assert [(c.name, c.arguments) for c in parsed.tool_calls] == list(sample.calls), sample


def test_constructed_calls_satisfy_the_schemas_without_the_product_parser(
    samples: list[Any],
) -> None:
    validators = {
        t["function"]["name"]: Draft202012Validator(t["function"]["parameters"]) for t in TOOLS
    }
    calls = [c for s in samples if not s.malformed for c in s.calls]
    assert len(calls) > len(samples) // 3
    for name, arguments in calls:
        validators[name].validate(arguments)


def test_each_defect_is_refused_with_exactly_its_error_kind(samples: list[Any]) -> None:
    for sample in (s for s in samples if s.malformed):
        errors = parse_completion(sample.text, TOOLS).errors
        assert [e.kind for e in errors] == [EXPECTED_ERROR[sample.kind]], (sample, errors)


def test_hand_rolled_baseline_catches_schema_errors_and_spares_hard_negatives(
    samples: list[Any],
) -> None:
    baseline = HandRolled(TOOLS)
    for sample in samples:
        outcome = baseline(sample.text)
        if sample.kind in SCHEMA_DEFECTS:
            assert outcome.flagged, sample
        if not sample.malformed:
            assert not outcome.flagged, sample
            assert outcome.calls == list(sample.calls), sample


def test_table_has_a_row_per_peer_and_names_the_unmeasured(results: dict[str, Any]) -> None:
    table = format_table(results)
    names = [p.name for p in results["peers"]]
    assert names[:2] == ["hand-rolled baseline", "inference.parsing"]
    assert any(n.startswith("transformers") for n in names)
    for name in names:
        assert f"| {name} |" in table
    for kind in DEFECTS + HARD_NEGATIVES:
        assert f"| {kind} |" in table
    if importlib.util.find_spec("vllm") is None:
        assert "not measured: vLLM is not installed; its hermes parser imports vllm" in table


def test_scores_follow_the_labels(results: dict[str, Any]) -> None:
    counts, scores = results["counts"], results["scores"]
    product = scores["inference.parsing"]
    assert {k: product.flagged.get(k, 0) for k in DEFECTS} == {k: counts[k] for k in DEFECTS}
    assert not product.wrong_calls
    assert results["named"] == {k: counts[k] for k in DEFECTS}
    # transformers' parse_response refuses broken JSON but has no notion of the offered tools.
    for name in (n for n in scores if n.startswith("transformers")):
        assert scores[name].flagged.get("invalid_json", 0) == counts["invalid_json"]
        assert scores[name].flagged.get("unknown_tool", 0) == 0


def test_hostile_inputs_of_the_adversarial_table_end_in_errors() -> None:
    for what, thunk in _hostile_inputs():
        result = thunk()
        if what.startswith("1 MB SSE line"):
            assert len(result) == 1, "one event, reassembled"
        else:
            assert result.errors, what
