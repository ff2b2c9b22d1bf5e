"""The sourced table of replacing properties the registry misses: each entry replaces its
resource, is still missing from the registry, and names the AWS page that says so."""

import copy
from typing import Any

import pytest

from scripts import replacements
from scripts.replacement_rules import (
    REPLACING_PROPERTIES,
    VPC_BOUND_PROPERTIES,
    ReplacingProperty,
    VpcBoundProperty,
    replacing_properties,
)
from scripts.replacements import STATEFUL_TYPES, Stack, compare_stack


def _stack(resources: dict[str, Any]) -> Stack:
    return Stack("111111111111", "us-east-1", "s", resources)


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def _lustre(deployment_type: str) -> dict[str, Any]:
    return {
        "Fs": {
            "Type": "AWS::FSx::FileSystem",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "FileSystemType": "LUSTRE",
                "StorageCapacity": 1200,
                "SubnetIds": ["subnet-1"],
                "LustreConfiguration": {
                    "DeploymentType": deployment_type,
                    "PerUnitStorageThroughput": 250,
                },
            },
        }
    }


def test_fsx_persistent_2_to_persistent_1_replaces_the_file_system() -> None:
    # The review's case: the registry does not list DeploymentType as create-only.
    assert ("LustreConfiguration", "DeploymentType") not in (
        replacements.create_only_properties("AWS::FSx::FileSystem", "us-east-1")
    )
    (finding,) = compare_stack(_stack(_lustre("PERSISTENT_2")), _stack(_lustre("PERSISTENT_1")))
    assert (finding.logical_id, finding.change) == ("Fs", "replaced")
    assert 'LustreConfiguration.DeploymentType "PERSISTENT_2" -> "PERSISTENT_1"' in finding.reason
    assert "aws-properties-fsx-filesystem-lustreconfiguration.html" in finding.reason


def test_in_place_lustre_changes_are_not_reported() -> None:
    old = _lustre("PERSISTENT_2")
    new = copy.deepcopy(old)
    new["Fs"]["Properties"]["StorageCapacity"] = 2400  # UpdateFileSystem grows it in place
    new["Fs"]["Properties"]["LustreConfiguration"]["PerUnitStorageThroughput"] = 500
    assert compare_stack(_stack(old), _stack(new)) == []


@pytest.mark.parametrize("rule", REPLACING_PROPERTIES, ids=lambda r: f"{r.resource_type}.{r.name}")
def test_each_sourced_property_replaces_its_resource(rule: ReplacingProperty) -> None:
    def template(value: str) -> dict[str, Any]:
        return {"R": {"Type": rule.resource_type, "Properties": _nested(rule.path, value)}}

    (finding,) = compare_stack(_stack(template("before")), _stack(template("after")))
    assert finding.change == "replaced"
    assert f'{rule.name} "before" -> "after" replaces it ({rule.source})' in finding.reason


@pytest.mark.parametrize(
    "rule",
    [*REPLACING_PROPERTIES, *VPC_BOUND_PROPERTIES],
    ids=lambda r: f"{r.resource_type}.{r.name}",
)
def test_each_entry_is_sourced_and_still_missing_from_the_registry(
    rule: ReplacingProperty | VpcBoundProperty,
) -> None:
    assert rule.source.startswith("https://docs.aws.amazon.com/")
    assert "#" in rule.source  # the property's own anchor on the page
    assert rule.says
    assert rule.resource_type in STATEFUL_TYPES
    # Once the registry lists it, the entry is redundant: drop it from the table.
    registry = replacements.create_only_properties(rule.resource_type, "us-east-1")
    assert not any(rule.path[: len(p)] == p for p in registry)


def test_a_domain_gets_its_first_vpc_in_place_but_a_new_vpc_replaces_it() -> None:
    (rule,) = [r for r in replacing_properties("AWS::SageMaker::Domain") if r.path == ("VpcId",)]
    assert rule.only_when_set

    def domain(**props: Any) -> dict[str, Any]:
        base = {"DomainName": "d", "AuthMode": "SSO", "DefaultUserSettings": {}}
        return {"Domain": {"Type": "AWS::SageMaker::Domain", "Properties": base | props}}

    assert compare_stack(_stack(domain()), _stack(domain(VpcId="vpc-1"))) == []
    (finding,) = compare_stack(_stack(domain(VpcId="vpc-1")), _stack(domain(VpcId="vpc-2")))
    assert 'VpcId "vpc-1" -> "vpc-2" replaces it' in finding.reason
    # SubnetIds update in place (UpdateDomain), per the CloudFormation page.
    same_vpc = compare_stack(
        _stack(domain(VpcId="vpc-1", SubnetIds=["subnet-1"])),
        _stack(domain(VpcId="vpc-1", SubnetIds=["subnet-2"])),
    )
    assert same_vpc == []


def test_registry_create_only_properties_still_apply_beside_the_table() -> None:
    old = _lustre("PERSISTENT_2")
    new = _lustre("PERSISTENT_1")
    new["Fs"]["Properties"]["KmsKeyId"] = "key-2"  # create-only in the registry
    (finding,) = compare_stack(_stack(old), _stack(new))
    assert finding.reason.startswith('create-only KmsKeyId (absent) -> "key-2"; ')
    assert "LustreConfiguration.DeploymentType" in finding.reason
