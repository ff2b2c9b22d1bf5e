"""The security gates over every synthesized BU: each cdk-nag pack and cfn-lint, zero findings."""

import json

import pytest

from platform_constructs.gates import PACKS
from scripts.gates import cfn_lint_all, stack_templates, validation_findings


@pytest.mark.parametrize("pack", [p.__name__ for p in PACKS])
def test_nag_pack_has_zero_unacknowledged_findings(synthesized, pack: str) -> None:
    report = synthesized.nag[pack]
    findings = [
        f"{v.rule_name} at {c.construct_path}"
        for v in report.violations
        for c in v.violating_constructs
    ]
    assert findings == []
    assert report.success


def test_cfn_lint_has_no_errors_or_warnings(synthesized) -> None:
    templates = stack_templates(synthesized.outdir)
    assert {t.bu for t in templates} == set(synthesized.stages)
    assert len(templates) == len(synthesized.templates)  # every stack of every stage
    results = cfn_lint_all(templates)
    problems = [line for r in results for line in r.errors + r.warnings]
    assert problems == []


def test_gates_registered_on_the_app_report_nothing(synthesized) -> None:
    # app.synth() ran the packs as plugins; the report lists a plugin only when it found something.
    assert sum(validation_findings(synthesized.outdir).values()) == 0


def test_synthesis_needs_no_context_lookup(synthesized) -> None:
    # A "missing" entry means CDK wanted to ask AWS (e.g. for AZs): offline synth would retry.
    for manifest in synthesized.outdir.rglob("manifest.json"):
        assert "missing" not in json.loads(manifest.read_text(encoding="utf-8")), manifest
