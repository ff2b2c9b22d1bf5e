"""The replacement guard: which stateful resources a change would remove or replace.

Small in-process syntheses of one BU's real stacks (no gates, no CLI); tests/e2e runs the CLI.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from harness.cdk_context import cdk_json_context

import stacks.security_stack
from config.naming import BUCKET_PURPOSES, Naming
from config.schema import BusinessUnitConfig
from scripts import replacements
from scripts.replacements import STATEFUL_TYPES, Finding, Stack, compare, compare_stack
from stacks.stage import BusinessUnitStage

BU: dict[str, Any] = {
    "name": "guard",
    "account": "333333333333",
    "region": "us-west-2",
    "network": {"cidr": "10.80.0.0/16", "availability_zones": ["us-west-2a", "us-west-2b"]},
    "tags": {"owner": "guard-ml", "cost_center": "CC-1"},
}


def _synth(raw: dict[str, Any]) -> dict[str, Stack]:
    """The BU's stacks as the guard reads them, keyed by stack id ("network", "security")."""
    config = BusinessUnitConfig.model_validate(raw)
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    stage = BusinessUnitStage(app, config=config)
    out = {}
    for stack in (stage.network, stage.security):
        resources = Template.from_stack(stack).to_json()["Resources"]
        out[stack.node.id] = Stack(config.account, config.region, stack.stack_name, resources)
    return out


@pytest.fixture(scope="module")
def base() -> dict[str, Stack]:
    return _synth(BU)


def _changed(base: dict[str, Stack], head: dict[str, Stack]) -> list[Finding]:
    findings, notes = compare(list(base.values()), list(head.values()))
    assert notes == []
    return findings


def test_nothing_changed_nothing_reported(base: dict[str, Stack]) -> None:
    assert _changed(base, _synth(BU)) == []


def test_tags_and_retention_are_in_place_updates(base: dict[str, Stack]) -> None:
    raw = copy.deepcopy(BU)
    raw["tags"] = {"owner": "another-team", "cost_center": "CC-2", "extra": {"project": "x"}}
    raw["network"]["flow_log_retention_days"] = 731
    head = _synth(raw)
    assert head["network"].resources != base["network"].resources  # the change is real
    assert _changed(base, head) == []


def test_a_new_vpc_cidr_replaces_the_vpc_and_every_subnet(base: dict[str, Stack]) -> None:
    raw = copy.deepcopy(BU)
    raw["network"]["cidr"] = "10.81.0.0/16"
    findings = _changed(base, _synth(raw))
    by_type: dict[str, list[Finding]] = {}
    for finding in findings:
        by_type.setdefault(finding.resource_type, []).append(finding)
    assert set(by_type) == {"AWS::EC2::VPC", "AWS::EC2::Subnet"}
    (vpc,) = by_type["AWS::EC2::VPC"]
    assert vpc.change == "replaced"
    assert '"10.80.0.0/16" -> "10.81.0.0/16"' in vpc.reason
    assert len(by_type["AWS::EC2::Subnet"]) == 2  # one per AZ, each replaced
    assert all(f.stack == "guard-network" for f in findings)


def test_renaming_a_bucket_purpose_removes_its_bucket_key_and_alias(
    base: dict[str, Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A purpose no stack of this BU references by name (the training stack uses "data").
    renamed = tuple("lifecycle" if p == "hyperpod-lifecycle" else p for p in BUCKET_PURPOSES)
    monkeypatch.setattr(stacks.security_stack, "BUCKET_PURPOSES", renamed)
    findings = _changed(base, _synth(BU))
    assert {(f.resource_type, f.change) for f in findings} == {
        ("AWS::S3::Bucket", "removed"),
        ("AWS::KMS::Key", "removed"),
        ("AWS::KMS::Alias", "removed"),
    }
    assert all(
        f.stack == "guard-security" and f.logical_id.startswith("HyperpodLifecycle")
        for f in findings
    )
    assert all(
        "DeletionPolicy keeps it" in f.reason for f in findings if "Alias" not in f.resource_type
    )


def test_a_new_key_alias_replaces_the_alias(
    base: dict[str, Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Naming, "key_alias", lambda self, purpose: f"alias/{self.bu}/k/{purpose}")
    findings = _changed(base, _synth(BU))
    assert findings
    assert {(f.resource_type, f.change) for f in findings} == {("AWS::KMS::Alias", "replaced")}
    assert any('"alias/guard/logs" -> "alias/guard/k/logs"' in f.reason for f in findings)


def _stack(resources: dict[str, Any]) -> Stack:
    return Stack("1", "us-east-1", "s", resources)


def test_replacement_cascades_through_create_only_references() -> None:
    # A (non-stateful) security group replaced by a new VpcId, an EFS mount target is not
    # stateful, but an FSx file system whose SecurityGroupIds refer to it is.
    old = {
        "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "a"}},
        "Fs": {
            "Type": "AWS::FSx::FileSystem",
            "Properties": {
                "FileSystemType": "LUSTRE",
                "SubnetIds": ["subnet-1"],
                "SecurityGroupIds": [{"Fn::GetAtt": ["Sg", "GroupId"]}],
            },
        },
    }
    new = copy.deepcopy(old)
    new["Sg"]["Properties"]["GroupDescription"] = "b"  # create-only: the group is replaced
    (finding,) = compare_stack(_stack(old), _stack(new))
    assert (finding.logical_id, finding.change) == ("Fs", "replaced")
    assert "SecurityGroupIds refers to Sg" in finding.reason


def test_stateful_types_come_from_cfn_lint_plus_the_platform_list() -> None:
    # cfn-lint's list brings the data stores; ours adds what a running platform lives in.
    assert {"AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Logs::LogGroup"} <= STATEFUL_TYPES
    assert {"AWS::EC2::VPC", "AWS::EKS::Cluster", "AWS::SageMaker::Domain"} <= STATEFUL_TYPES
    assert "AWS::EC2::SecurityGroup" not in STATEFUL_TYPES


def test_create_only_properties_come_from_the_registry_schema() -> None:
    assert ("CidrBlock",) in replacements.create_only_properties("AWS::EC2::VPC", "us-east-1")
    assert replacements.create_only_properties("AWS::KMS::Key", "us-east-1") == []
    assert replacements.create_only_properties("AWS::Nope::Thing", "us-east-1") == []


@pytest.fixture
def assemblies(tmp_path: Path) -> Callable[[str, str], Path]:
    """A cloud assembly with one stack holding one bucket named as given."""

    def write(name: str, bucket_name: str) -> Path:
        outdir = tmp_path / name
        app = cdk.App(outdir=str(outdir), builtin_cloud_formation_validation=False)
        stack = cdk.Stack(
            app, "store", env=cdk.Environment(account="111111111111", region="us-east-1")
        )
        cdk.CfnResource(
            stack, "Bucket", type="AWS::S3::Bucket", properties={"BucketName": bucket_name}
        )
        app.synth()
        return outdir

    return write


def _ack(tmp_path: Path, entries: list[dict[str, str]]) -> Path:
    path = tmp_path / "ack.yaml"
    path.write_text(json.dumps(entries), encoding="utf-8")  # JSON is YAML
    return path


def test_cli_fails_until_the_replacement_is_acknowledged(
    assemblies: Callable[[str, str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_out, head_out = assemblies("base", "old-name"), assemblies("head", "new-name")
    args = ["--base-outdir", str(base_out), "--head-outdir", str(head_out)]
    none = tmp_path / "absent.yaml"
    assert replacements.main([*args, "--acknowledged", str(none)]) == 1
    out = capsys.readouterr().out
    assert "STATEFUL: store/Bucket (AWS::S3::Bucket) replaced" in out
    assert '"old-name" -> "new-name"' in out

    reason = "The bucket moves to the new naming scheme; data copied by the runbook first."
    ack = _ack(tmp_path, [{"resource": "store/Bucket", "reason": reason}])
    assert replacements.main([*args, "--acknowledged", str(ack)]) == 0
    assert "acknowledged: store/Bucket" in capsys.readouterr().out

    unchanged = ["--base-outdir", str(base_out), "--head-outdir", str(base_out)]
    assert replacements.main([*unchanged, "--acknowledged", str(ack)]) == 0
    assert "does not touch" in capsys.readouterr().out  # a stale entry is pointed out


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"resource": "store/Bucket", "reason": "ok"}], "specific reason"),
        ([{"resource": "Bucket", "reason": "x" * 50}], "<stack name>/<logical ID>"),
        ([{"resource": "store/Bucket"}], "exactly `resource` and `reason`"),
    ],
)
def test_a_vague_or_malformed_acknowledgement_is_a_usage_error(
    assemblies: Callable[[str, str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    entries: list[dict[str, str]],
    message: str,
) -> None:
    out = assemblies("base", "a")
    code = replacements.main(
        [
            "--base-outdir",
            str(out),
            "--head-outdir",
            str(out),
            "--acknowledged",
            str(_ack(tmp_path, entries)),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_base_ref_is_extracted_with_the_shared_installs(tmp_path: Path) -> None:
    tree = replacements.checkout("HEAD", tmp_path)
    assert (tree / "app.py").is_file()
    assert (tree / "cdk.json").is_file()
    for name in replacements.SHARED_PATHS:
        assert (tree / name).resolve() == (replacements.ROOT / name).resolve()


def test_stateless_replacements_are_listed_only_on_request() -> None:
    old = {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "a"}}}
    new = {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "b"}}}
    assert compare_stack(_stack(old), _stack(new)) == []
    (finding,) = compare_stack(_stack(old), _stack(new), stateful_only=False)
    assert (finding.logical_id, finding.change) == ("Sg", "replaced")
