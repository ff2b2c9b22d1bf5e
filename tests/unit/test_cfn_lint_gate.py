"""The cfn-lint gate as a CDK policy-validation plugin: it runs inside every synthesis (so
`cdk synth` and `cdk deploy` apply it), in each stack's region, and its errors fail the synth."""

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from platform_constructs import template_lint
from platform_constructs.gates import CfnLintPlugin, register_gates
from platform_constructs.template_lint import TemplateLinter
from scripts.gates import gate_report

# A port that is not a number: cfn-lint E3012 (schema type), an error.
BAD_INGRESS = {"IpProtocol": "tcp", "FromPort": "https", "ToPort": 443, "CidrIp": "10.0.0.0/16"}


def _app(tmp_path: Path, plugin: Any) -> cdk.App:
    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    cdk.Validations.of(app).add_plugins(plugin)
    return app


def _stack(app: cdk.App, name: str, region: str = "us-east-1") -> cdk.Stack:
    return cdk.Stack(app, name, env=cdk.Environment(account="111111111111", region=region))


def test_registered_gates_include_cfn_lint_and_its_error_fails_the_synth(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    register_gates(app)
    stack = _stack(app, "Bad")
    cdk.CfnResource(
        stack,
        "Group",
        type="AWS::EC2::SecurityGroup",
        properties={"GroupDescription": "test", "SecurityGroupIngress": [BAD_INGRESS]},
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()  # `cdk synth` / `cdk deploy` exit 1 the same way
    report = gate_report(tmp_path)
    assert report.lint_errors["Bad"] >= 1
    assert any(line.startswith("cfn-lint: E3012 at Bad/Group (error: ") for line in report.lines)


def test_a_warning_is_reported_without_failing(tmp_path: Path) -> None:
    plugin = CfnLintPlugin(workers=1)
    app = _app(tmp_path, plugin)
    stack = _stack(app, "Warned")
    topic = cdk.CfnResource(stack, "Topic", type="AWS::SNS::Topic")
    # A DependsOn that a Ref already implies: cfn-lint W3005 (a warning).
    subscription = cdk.CfnResource(
        stack,
        "Subscription",
        type="AWS::SNS::Subscription",
        properties={"TopicArn": topic.ref, "Protocol": "email", "Endpoint": "a@example.com"},
    )
    subscription.add_dependency(topic)
    app.synth()  # no exception: warnings do not fail
    report = gate_report(tmp_path)
    assert not report.failed
    assert report.lint_warnings["Warned"] == 1, report.lines
    assert [f.rule for fs in plugin.results.values() for f in fs] == ["W3005"]


def test_each_template_is_linted_in_its_own_region(tmp_path: Path) -> None:
    # AWS::AccessAnalyzer::ArchiveRule is in cfn-lint 1.58's us-east-1 registry, not eu-north-1's.
    plugin = CfnLintPlugin()
    app = _app(tmp_path, plugin)
    for name, region in (("East", "us-east-1"), ("North", "eu-north-1")):
        cdk.CfnResource(
            _stack(app, name, region),
            "Rule",
            type="AWS::AccessAnalyzer::ArchiveRule",
            properties={"AnalyzerName": "a", "RuleName": "r", "Filter": {"p": {"Eq": ["x"]}}},
        )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    errors = {path.name: [f.rule for f in fs] for path, fs in plugin.results.items()}
    assert errors == {"East.template.json": [], "North.template.json": ["E3006"]}


def test_results_are_cached_by_template_content_and_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "t.template.json"
    template.write_text(
        '{"Resources": {"G": {"Type": "AWS::EC2::SecurityGroup", "Properties": '
        '{"GroupDescription": "t", "SecurityGroupIngress": [{"IpProtocol": "tcp", '
        '"FromPort": "https", "ToPort": 443, "CidrIp": "10.0.0.0/16"}]}}}}',
        encoding="utf-8",
    )
    cache = tmp_path / "cache"
    first = TemplateLinter(workers=1, cache_dir=cache).lint([(template, "us-east-1")])
    assert "E3012" in {f.rule for f in first[0]}
    assert len(list(cache.glob("*.json"))) == 1

    def must_not_run(*_: object) -> list[template_lint.Finding]:
        raise AssertionError("an unchanged template was linted again")

    monkeypatch.setattr(template_lint, "lint_template", must_not_run)
    assert TemplateLinter(workers=1, cache_dir=cache).lint([(template, "us-east-1")]) == first
    # Another region or one changed byte is a different key: linted afresh.
    with pytest.raises(AssertionError, match="linted again"):
        TemplateLinter(workers=1, cache_dir=cache).lint([(template, "eu-west-1")])
    template.write_text(template.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(AssertionError, match="linted again"):
        TemplateLinter(workers=1, cache_dir=cache).lint([(template, "us-east-1")])
