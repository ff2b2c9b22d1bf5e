"""The replacement guard: which stateful resources a change would remove or replace.

Small in-process syntheses of one BU's real stacks (no gates, no CLI); tests/e2e runs the CLI.
"""

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from harness.cdk_context import cdk_json_context

import stacks.security_stack
from config.schema import BusinessUnitConfig
from core.naming import BUCKET_PURPOSES, Naming
from scripts import replacements
from scripts.replacements import STATEFUL_TYPES, Finding, Stack, compare, compare_stack
from stacks.stage import BusinessUnitStage


def _replacements(argv: list[str]) -> int:
    """``python -m scripts.replacements ARGV``, as the command runs it."""
    return replacements.main(replacements.parse_args(argv))


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
    assert _replacements([*args, "--acknowledged", str(none)]) == 1
    out = capsys.readouterr().out
    assert "STATEFUL: store/Bucket (AWS::S3::Bucket) replaced" in out
    assert '"old-name" -> "new-name"' in out

    reason = "The bucket moves to the new naming scheme; data copied by the runbook first."
    ack = _ack(tmp_path, [{"resource": "store/Bucket", "reason": reason}])
    assert _replacements([*args, "--acknowledged", str(ack)]) == 0
    assert "acknowledged: store/Bucket" in capsys.readouterr().out

    unchanged = ["--base-outdir", str(base_out), "--head-outdir", str(base_out)]
    assert _replacements([*unchanged, "--acknowledged", str(ack)]) == 0
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
    code = _replacements(
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


# --- across stacks: exports, imports and names ---------------------------------------------------


def _platform(*, vpc_cidr: str = "10.0.0.0/16", subnet_third: int = 0) -> list[Stack]:
    """A tiny Stage shaped like a BU's: a network stack whose VPC and subnets a platform stack
    uses (CDK turns the references into exports and Fn::ImportValue)."""
    app = cdk.App(builtin_cloud_formation_validation=False)
    env = cdk.Environment(account="111111111111", region="us-east-1")
    stage = cdk.Stage(app, "bu", env=env)
    net = cdk.Stack(stage, "network", stack_name="bu-network")
    vpc = cdk.CfnResource(net, "Vpc", type="AWS::EC2::VPC", properties={"CidrBlock": vpc_cidr})
    prefix = vpc_cidr.rsplit(".", 2)[0]
    subnets = [
        cdk.CfnResource(
            net,
            f"Subnet{i}",
            type="AWS::EC2::Subnet",
            properties={
                "VpcId": vpc.ref,
                "AvailabilityZone": f"us-east-1{'ab'[i]}",
                "CidrBlock": f"{prefix}.{subnet_third + i}.0/24",
            },
        )
        for i in range(2)
    ]
    platform = cdk.Stack(stage, "platform", stack_name="bu-platform")
    subnet_ids = [s.ref for s in subnets]
    domain = cdk.CfnResource(
        platform,
        "Domain",
        type="AWS::SageMaker::Domain",
        properties={
            "DomainName": "bu",
            "AuthMode": "SSO",
            "DefaultUserSettings": {"ExecutionRole": "arn:aws:iam::111111111111:role/r"},
            "VpcId": vpc.ref,
            "SubnetIds": subnet_ids,
        },
    )
    cdk.CfnResource(
        platform,
        "Profile",
        type="AWS::SageMaker::UserProfile",
        properties={"DomainId": domain.get_att("DomainId"), "UserProfileName": "alice"},
    )
    cdk.CfnResource(
        platform,
        "Eks",
        type="AWS::EKS::Cluster",
        properties={
            "Name": "bu-eks",
            "RoleArn": "arn:aws:iam::111111111111:role/eks",
            "ResourcesVpcConfig": {"SubnetIds": subnet_ids},
        },
    )
    cdk.CfnResource(
        platform,
        "Fs",
        type="AWS::FSx::FileSystem",
        properties={
            "FileSystemType": "LUSTRE",
            "StorageCapacity": 1200,
            "SubnetIds": subnet_ids[:1],
            "LustreConfiguration": {"DeploymentType": "PERSISTENT_2"},
        },
    )
    return [_from_cdk(stack) for stack in (net, platform)]


def _from_cdk(stack: cdk.Stack) -> Stack:
    template = Template.from_stack(stack).to_json()
    resources, outputs = template["Resources"], template.get("Outputs", {})
    return Stack(stack.account, stack.region, stack.stack_name, resources, outputs)


@pytest.fixture(scope="module")
def platform() -> list[Stack]:
    return _platform()


def _by_resource(findings: list[Finding]) -> dict[str, Finding]:
    return {f.resource: f for f in findings}


def test_a_new_vpc_reaches_the_stacks_that_import_it(platform: list[Stack]) -> None:
    findings, notes = compare(platform, _platform(vpc_cidr="10.1.0.0/16"))
    assert notes == []
    found = _by_resource(findings)
    domain = found["bu-platform/Domain"]
    assert domain.change == "replaced"
    assert str(domain).endswith("replaced because Vpc in bu-network is replaced (VpcId imports it)")
    fs = found["bu-platform/Fs"]
    assert fs.reason.startswith("because Subnet0 in bu-network is replaced (SubnetIds imports")
    # Transitively: the profile's DomainId refers to the replaced domain.
    profile = found["bu-platform/Profile"]
    assert "DomainId refers to Domain, which is replaced; it starts at bu-network/Vpc" in (
        profile.reason
    )
    # EKS takes new subnets in place, but only in the VPC it was created in: the update fails.
    eks = found["bu-platform/Eks"]
    assert eks.change == "cannot be updated"
    assert "ResourcesVpcConfig.SubnetIds imports Subnet0 in bu-network" in eks.reason
    assert "UpdateClusterConfig" in eks.reason
    assert set(found) == {
        "bu-network/Vpc",
        "bu-network/Subnet0",
        "bu-network/Subnet1",
        "bu-platform/Domain",
        "bu-platform/Profile",
        "bu-platform/Eks",
        "bu-platform/Fs",
    }


def test_new_subnets_in_the_same_vpc_replace_only_what_cannot_move(
    platform: list[Stack],
) -> None:
    findings, _ = compare(platform, _platform(subnet_third=10))
    found = _by_resource(findings)
    # FSx SubnetIds is create-only; the domain's and the cluster's subnets update in place.
    assert set(found) == {"bu-network/Subnet0", "bu-network/Subnet1", "bu-platform/Fs"}
    assert found["bu-platform/Fs"].reason.startswith("because Subnet0 in bu-network is replaced")


def test_an_unchanged_producer_reaches_nothing(platform: list[Stack]) -> None:
    assert compare(platform, _platform())[0] == []


def _export(name: Any, value: Any) -> dict[str, Any]:
    return {"Value": value, "Export": {"Name": name}}


def test_replacement_follows_exports_through_several_stacks() -> None:
    # a: VPC -> b: security group (VpcId imports a's VPC) -> c: FSx (SecurityGroupIds imports
    # b's group). Export names as hand-written templates spell them: Fn::Sub with StackName.
    def stacks(cidr: str) -> list[Stack]:
        a = Stack(
            "1",
            "us-east-1",
            "a",
            {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": cidr}}},
            {"VpcOut": _export("a-vpc", {"Ref": "Vpc"})},
        )
        b = Stack(
            "1",
            "us-east-1",
            "b",
            {
                "Sg": {
                    "Type": "AWS::EC2::SecurityGroup",
                    "Properties": {"GroupDescription": "fs", "VpcId": {"Fn::ImportValue": "a-vpc"}},
                }
            },
            {"SgOut": _export({"Fn::Sub": "${AWS::StackName}-sg"}, {"Ref": "Sg"})},
        )
        c = Stack(
            "1",
            "us-east-1",
            "c",
            {
                "Fs": {
                    "Type": "AWS::FSx::FileSystem",
                    "Properties": {
                        "FileSystemType": "LUSTRE",
                        "SubnetIds": ["subnet-1"],
                        "SecurityGroupIds": [{"Fn::ImportValue": "b-sg"}],
                    },
                }
            },
        )
        return [a, b, c]

    findings, _ = compare(stacks("10.0.0.0/16"), stacks("10.9.0.0/16"))
    found = _by_resource(findings)
    assert set(found) == {"a/Vpc", "c/Fs"}  # the group between them is stateless
    assert str(found["c/Fs"]).endswith(
        "replaced because Sg in b is replaced (SecurityGroupIds imports it); it starts at a/Vpc"
    )
    everything = compare(stacks("10.0.0.0/16"), stacks("10.9.0.0/16"), stateful_only=False)[0]
    assert "because Vpc in a is replaced (VpcId imports it)" in (
        _by_resource(everything)["b/Sg"].reason
    )


def test_exports_of_another_account_or_region_are_not_followed() -> None:
    vpc = {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}}
    out = {"VpcOut": _export("a-vpc", {"Ref": "Vpc"})}
    new_vpc = {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}}}
    domain = {
        "Domain": {
            "Type": "AWS::SageMaker::Domain",
            "Properties": {"VpcId": {"Fn::ImportValue": "a-vpc"}, "DomainName": "d"},
        }
    }
    base = [Stack("1", "us-east-1", "a", vpc, out), Stack("1", "eu-west-1", "b", domain)]
    head = [Stack("1", "us-east-1", "a", new_vpc, out), Stack("1", "eu-west-1", "b", domain)]
    assert {f.resource for f in compare(base, head)[0]} == {"a/Vpc"}


def test_a_name_passed_between_stacks_is_traced_to_its_resource() -> None:
    # Stacks also pass physical names as plain strings (the naming helper's cluster and bucket
    # names): a renamed cluster replaces the add-on that names it in another stack.
    def stacks(name: str) -> list[Stack]:
        cluster = {
            "Eks": {
                "Type": "AWS::EKS::Cluster",
                "Properties": {"Name": name, "RoleArn": "arn:aws:iam::1:role/eks"},
            }
        }
        arn = f"arn:aws:eks:us-east-1:1:cluster/{name}"
        users = {
            "HyperPod": {
                "Type": "AWS::SageMaker::Cluster",
                "Properties": {"ClusterName": "hp", "Orchestrator": {"Eks": {"ClusterArn": arn}}},
            }
        }
        return [Stack("1", "us-east-1", "a", cluster), Stack("1", "us-east-1", "b", users)]

    found = _by_resource(compare(stacks("bu-eks"), stacks("bu-eks-2"))[0])
    assert found["a/Eks"].reason == 'create-only Name "bu-eks" -> "bu-eks-2"'
    assert str(found["b/HyperPod"]).startswith(
        "b/HyperPod (AWS::SageMaker::Cluster) replaced because Eks in a is replaced "
        "(Orchestrator.Eks names it): create-only Orchestrator.Eks"
    )


def test_cli_acknowledges_a_finding_in_another_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def write(name: str, cidr: str) -> Path:
        outdir = tmp_path / name
        app = cdk.App(outdir=str(outdir), builtin_cloud_formation_validation=False)
        env = cdk.Environment(account="111111111111", region="us-east-1")
        net = cdk.Stack(app, "net", env=env)
        vpc = cdk.CfnResource(net, "Vpc", type="AWS::EC2::VPC", properties={"CidrBlock": cidr})
        fs_stack = cdk.Stack(app, "fs", env=env)
        cdk.CfnResource(
            fs_stack,
            "Sg",
            type="AWS::EC2::SecurityGroup",
            properties={"GroupDescription": "fs", "VpcId": vpc.ref},
        )
        cdk.CfnResource(
            fs_stack,
            "Fs",
            type="AWS::FSx::FileSystem",
            properties={
                "FileSystemType": "LUSTRE",
                "SubnetIds": ["subnet-1"],
                "SecurityGroupIds": [cdk.Fn.get_att("Sg", "GroupId").to_string()],
            },
        )
        app.synth()
        return outdir

    base, head = write("base", "10.0.0.0/16"), write("head", "10.5.0.0/16")
    args = ["--base-outdir", str(base), "--head-outdir", str(head)]
    assert _replacements([*args, "--acknowledged", str(tmp_path / "none.yaml")]) == 1
    out = capsys.readouterr().out
    assert "STATEFUL: fs/Fs (AWS::FSx::FileSystem) replaced: SecurityGroupIds refers to Sg" in out
    assert "it starts at net/Vpc" in out
    reason = "Moving the scratch file system with the VPC; its data is re-imported from S3."
    entries = [{"resource": r, "reason": reason} for r in ("net/Vpc", "fs/Fs")]
    assert _replacements([*args, "--acknowledged", str(_ack(tmp_path, entries))]) == 0
    assert "acknowledged: fs/Fs" in capsys.readouterr().out


# --- retention ------------------------------------------------------------------------------------


def test_removal_policy_retain_to_destroy_is_reported(base: dict[str, Stack]) -> None:
    raw = copy.deepcopy(BU)
    raw["removal_policy"] = "destroy"
    findings = _changed(base, _synth(raw))
    assert findings
    assert {f.change for f in findings} == {"no longer retained"}
    types = {f.resource_type for f in findings}
    assert {"AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Logs::LogGroup"} <= types
    bucket = next(f for f in findings if f.resource_type == "AWS::S3::Bucket")
    assert "DeletionPolicy Retain -> Delete" in bucket.reason
    assert "UpdateReplacePolicy Retain -> Delete" in bucket.reason
    # The way back (destroy -> retain) protects more: nothing to report.
    assert _changed(_synth(raw), base) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"UpdateReplacePolicy": "Retain"}, {}, "UpdateReplacePolicy Retain -> Delete"),
        ({"DeletionPolicy": "RetainExceptOnCreate"}, {"DeletionPolicy": "Retain"}, None),
        ({"DeletionPolicy": "Snapshot"}, {"DeletionPolicy": "Delete"}, "Snapshot -> Delete"),
        ({"DeletionPolicy": "Delete"}, {"DeletionPolicy": "Retain"}, None),
    ],
)
def test_retention_compares_what_each_policy_keeps(
    old: dict[str, str], new: dict[str, str], expected: str | None
) -> None:
    def volume(policies: dict[str, str]) -> dict[str, Any]:
        return {"Vol": {"Type": "AWS::EC2::Volume", "Properties": {"Size": 10}, **policies}}

    findings = compare_stack(_stack(volume(old)), _stack(volume(new)))
    if expected is None:
        assert findings == []
    else:
        (finding,) = findings
        assert (finding.change, expected in finding.reason) == ("no longer retained", True)


def test_an_rds_instance_defaults_to_a_snapshot() -> None:
    def db(policies: dict[str, str]) -> dict[str, Any]:
        props = {"Engine": "postgres", "DBInstanceClass": "db.t4g.micro"}
        return {"Db": {"Type": "AWS::RDS::DBInstance", "Properties": props, **policies}}

    (finding,) = compare_stack(_stack(db({"DeletionPolicy": "Retain"})), _stack(db({})))
    assert "DeletionPolicy Retain -> Snapshot" in finding.reason


# --- the base ref ---------------------------------------------------------------------------------


def test_a_missing_base_ref_is_one_line_with_gits_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _replacements(
        ["--base", "no-such-ref-4f1e", "--acknowledged", str(tmp_path / "none.yaml")]
    )
    assert code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert "base ref 'no-such-ref-4f1e' not found" in line
    assert "fatal:" in line  # git's own message, kept
    assert "make replacements BASE=<ref>" in line
    assert "Traceback" not in captured.err


def test_a_clone_without_origin_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "clone"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "app.py").write_text("", encoding="utf-8")
    subprocess.run([*git, "add", "app.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    monkeypatch.setattr(replacements, "ROOT", repo)
    code = _replacements(["--base", "origin/main", "--acknowledged", str(tmp_path / "n")])
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "base ref 'origin/main' not found" in line
    assert "origin/main" in line.split("(git: ", 1)[1]


def test_a_failed_command_with_byte_output_is_reported_not_a_type_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: object) -> None:
        raise subprocess.CalledProcessError(2, ["tar", "-x"], stderr=b"tar: unexpected EOF")

    monkeypatch.setattr(replacements, "_both_sides", fail)
    code = _replacements(["--base", "HEAD", "--acknowledged", str(tmp_path / "none.yaml")])
    assert code == 2
    assert "tar: unexpected EOF" in capsys.readouterr().err
