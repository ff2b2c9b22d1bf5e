"""The PR synth's scope (scripts/synth_scope.py): one BU's file changed, one BU built."""

from scripts.synth_scope import scope

BUS = ["credit", "fraud", "marketing"]


def test_only_bu_files_changed_builds_those_bus() -> None:
    assert scope(["config/fraud.yaml"], BUS) == ["fraud"]
    assert scope(["config/fraud.yaml", "config/credit.yaml"], BUS) == ["credit", "fraud"]


def test_any_other_change_builds_every_bu() -> None:
    assert scope(["config/fraud.yaml", "stacks/stage.py"], BUS) == []
    assert scope(["config/schema.py"], BUS) == []
    assert scope([], BUS) == []


def test_a_new_bu_builds_alone_and_a_deleted_one_builds_every_bu() -> None:
    """A new BU's clashes with the others (CIDRs, names) are the validator's, which reads every
    file in any case; a deleted BU file leaves nothing to build by name."""
    assert scope(["config/risk.yaml"], [*BUS, "risk"]) == ["risk"]
    assert scope(["config/risk.yaml"], BUS) == []
