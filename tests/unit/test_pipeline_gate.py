"""The deployment gate (pipelines.gate): floors, then champion/challenger on the same cases."""

import pytest

from config.pipeline import Gate
from pipelines.gate import EvaluationUnreadableError, decide

GATE = Gate(
    floors={"parse_validity": 0.9, "full_call_accuracy": 0.5},
    compare_on="accuracy",
    min_improvement=0.01,
)
GOOD = {"parse_validity": 1.0, "full_call_accuracy": 0.8, "accuracy": 0.85}


def test_a_candidate_below_a_floor_stops_and_says_which() -> None:
    decision = decide(GATE, {**GOOD, "full_call_accuracy": 0.4}, None)
    assert not decision.deploy
    assert "full_call_accuracy 0.400 < floor 0.500" in decision.reason


def test_with_nothing_served_the_floors_decide() -> None:
    decision = decide(GATE, GOOD, None)
    assert decision.deploy
    assert "no model in production" in decision.reason


def test_the_candidate_must_beat_the_champion_by_more_than_the_margin() -> None:
    assert decide(GATE, GOOD, {"accuracy": 0.80}).deploy
    tie = decide(GATE, GOOD, {"accuracy": 0.84})  # 0.85 is not more than 0.84 + 0.01
    assert not tie.deploy
    assert "does not beat the champion on accuracy: 0.850 vs 0.840" in tie.reason


@pytest.mark.parametrize("bad", [None, "0.9", float("nan"), True])
def test_an_evaluation_without_a_number_cannot_be_gated(bad: object) -> None:
    with pytest.raises(EvaluationUnreadableError, match="parse_validity"):
        decide(GATE, {**GOOD, "parse_validity": bad}, None)
    with pytest.raises(EvaluationUnreadableError, match="champion's evaluation"):
        decide(GATE, GOOD, {"accuracy": bad})
