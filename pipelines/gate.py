"""The deployment gate: floors first, then champion/challenger on the same held-out cases.

Pure: metrics in, a decision with its reason out, so the rule is tested without Airflow and the
reason the DAG logs (and writes to MLflow) is the one the test reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.pipeline import Gate


class EvaluationUnreadableError(ValueError):
    """The evaluation report lacks what the gate compares: no decision can be made."""


@dataclass(frozen=True)
class Decision:
    deploy: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"deploy": self.deploy, "reason": self.reason}


def _rate(metrics: Mapping[str, Any], name: str, who: str) -> float:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EvaluationUnreadableError(
            f"the {who}'s evaluation has no number for {name} (got {value!r}); it cannot be gated"
        )
    return float(value)


def decide(
    gate: Gate, candidate: Mapping[str, Any], champion: Mapping[str, Any] | None
) -> Decision:
    """Deploy only if every floor holds and the candidate beats the champion by more than the
    margin on ``gate.compare_on``; with no champion (nothing served yet) the floors decide."""
    misses = [
        f"{name} {value:.3f} < floor {floor:.3f}"
        for name, floor in sorted(gate.floors.items())
        if (value := _rate(candidate, name, "candidate")) < floor
    ]
    if misses:
        return Decision(False, "below the floors: " + "; ".join(misses))
    metric = gate.compare_on
    mine = _rate(candidate, metric, "candidate")
    if champion is None:
        return Decision(True, f"no model in production; floors met ({metric} {mine:.3f})")
    theirs = _rate(champion, metric, "champion")
    if mine > theirs + gate.min_improvement:
        return Decision(
            True,
            f"beats the champion on {metric}: {mine:.3f} vs {theirs:.3f} "
            f"(margin {gate.min_improvement:.3f})",
        )
    return Decision(
        False,
        f"does not beat the champion on {metric}: {mine:.3f} vs {theirs:.3f} "
        f"(needs more than {theirs + gate.min_improvement:.3f})",
    )
