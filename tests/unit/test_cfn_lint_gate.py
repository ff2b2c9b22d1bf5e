"""The cfn-lint gate as a CDK policy-validation plugin: it runs inside every synthesis (so
`cdk synth` and `cdk deploy` apply it), in each stack's region, and its errors fail the synth."""

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from platform_constructs import template_lint
from platform_constructs.gate_report import gate_report
from platform_constructs.gates import CfnLintPlugin, register_gates
from platform_constructs.template_lint import TemplateLinter

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
        app.synth()  # in-process (pytest); under the CLI, app.py exits 1 (tests/e2e/test_gates_cli)
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


def test_one_rule_set_for_many_templates_finds_what_cfn_lint_finds_afresh(tmp_path: Path) -> None:
    """The linter builds cfn-lint's rule set once per process; linting a broken template, a
    clean one and the broken one again (other regions between) matches `cfnlint.api.lint`."""
    from cfnlint.api import lint

    broken = (
        '{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": 3, '
        '"Nope": 1}}, "V": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/33"}}}}'
    )
    clean = '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}'
    unparsable = '{"Resources": '
    cases = [(broken, "eu-west-1"), (clean, "us-east-1"), (unparsable, "us-east-1")]
    cases += [(broken, "us-west-2")]
    for number, (text, region) in enumerate(cases):
        path = tmp_path / f"{number}.template.json"
        path.write_text(text, encoding="utf-8")
        ours = [(f.rule, f.message) for f in template_lint.lint_template(str(path), region)]
        fresh = [(m.rule.id, m.message) for m in lint(text, regions=[region])]
        assert ours == fresh
    assert {rule for rule, _ in ours} == {"E3002", "E3031"}


def _bad_stage(app: cdk.App, name: str) -> cdk.Stage:
    stage = cdk.Stage(app, name, env=cdk.Environment(account="111111111111", region="us-east-1"))
    cdk.CfnResource(
        cdk.Stack(stage, "Net"),
        "Group",
        type="AWS::EC2::SecurityGroup",
        properties={"GroupDescription": "test", "SecurityGroupIngress": [BAD_INGRESS]},
    )
    return stage


def test_a_stage_linted_early_still_fails_the_app_synth(tmp_path: Path) -> None:
    """app.py's path: each stage is synthesized and submitted to the early workers while the
    next is built; the app's synth then validates with those results."""
    app = cdk.App(outdir=str(tmp_path / "out"), builtin_cloud_formation_validation=False)
    plugin = register_gates(app, lint_cache=tmp_path / "cache", early=True)
    plugin.lint_early(_bad_stage(app, "first"))
    env = cdk.Environment(account="111111111111", region="us-east-1")
    clean = cdk.Stage(app, "second", env=env)
    cdk.CfnResource(cdk.Stack(clean, "Topics"), "Topic", type="AWS::SNS::Topic")
    plugin.lint_early(clean)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {path.parent.name: [f.rule for f in fs] for path, fs in plugin.results.items()}
    assert rules == {"assembly-first": ["E3012"], "assembly-second": []}


def test_early_workers_start_only_for_a_template_the_cache_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    for attempt in ("prime", "cached"):
        app = cdk.App(outdir=str(tmp_path / attempt), builtin_cloud_formation_validation=False)
        plugin = CfnLintPlugin(cache_dir=cache, early=True)
        cdk.Validations.of(app).add_plugins(plugin)
        plugin.lint_early(_bad_stage(app, "only"))
        if attempt == "cached":
            assert plugin._linter._pool is None  # every template hit the cache: no fork
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
        assert [f.rule for fs in plugin.results.values() for f in fs] == ["E3012"]
