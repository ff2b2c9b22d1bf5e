"""The security gates over every synthesized BU: each cdk-nag pack and cfn-lint, zero findings."""

import json

import pytest

from config.schema import RESOURCE_OWN_TAGS
from platform_constructs.gate_report import gate_report
from platform_constructs.gates import PACKS
from scripts.gates import stack_templates
from stacks._common import stage_tags


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


def test_cfn_lint_gate_linted_every_template_with_no_errors_or_warnings(synthesized) -> None:
    # The cfn-lint plugin ran inside app.synth(), over every stack of every BU.
    templates = stack_templates(synthesized.outdir)
    assert {t.bu for t in templates} == set(synthesized.stages)
    assert len(templates) == len(synthesized.templates)  # every stack of every stage
    assert {p.resolve() for p in synthesized.lint.results} == {t.path.resolve() for t in templates}
    problems = [
        f"{path.name}: {f.rule} {f.message}"
        for path, findings in synthesized.lint.results.items()
        for f in findings
        if f.level in {"error", "warning"}
    ]
    assert problems == []


def test_gates_registered_on_the_app_report_nothing(synthesized) -> None:
    # app.synth() ran the packs and cfn-lint as plugins; the report lists a plugin only when it
    # found something.
    report = gate_report(synthesized.outdir)
    assert report.lines == []
    assert not report.failed


def test_synthesis_needs_no_context_lookup(synthesized) -> None:
    # A "missing" entry means CDK wanted to ask AWS (e.g. for AZs): offline synth would retry.
    for manifest in synthesized.outdir.rglob("manifest.json"):
        assert "missing" not in json.loads(manifest.read_text(encoding="utf-8")), manifest


def test_no_resource_carries_more_own_tags_than_the_validator_budgets(synthesized) -> None:
    """``config.schema`` caps ``tags.extra`` so that the Stage's tags plus a resource's own fit
    CloudFormation's 50 per resource; that holds only while no resource has more than
    ``RESOURCE_OWN_TAGS`` tags of its own (a CDK upgrade could add one)."""
    most: dict[str, list[str]] = {}
    for template in stack_templates(synthesized.outdir):
        stage_keys = set(stage_tags(synthesized.configs[template.bu]))
        resources = json.loads(template.path.read_text(encoding="utf-8"))["Resources"]
        for logical_id, resource in resources.items():
            tags = resource.get("Properties", {}).get("Tags")
            keys = [t["Key"] for t in tags] if isinstance(tags, list) else list(tags or {})
            own = [k for k in keys if k not in stage_keys]
            if len(own) > len(most.get("own", [])):
                most = {"own": own, "where": [template.name, logical_id]}
    assert 0 < len(most["own"]) <= RESOURCE_OWN_TAGS, most
