"""The replacement plan behind ``make replacements``: given each stack's base and head
templates, which resources CloudFormation would replace (by a change of their own, or because a
create-only value refers to a replaced resource, within a stack or through another stack's
export), which in-place updates cannot follow a resource into a new VPC, and which resources a
change stops retaining. ``scripts.replacements`` turns it into findings and runs the CLI.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from cfnlint.schema._exceptions import ResourceNotFoundError

from scripts.replacement_rules import replacing_properties, vpc_bound_properties


@dataclass(frozen=True)
class Stack:
    """One synthesized stack, keyed by what CloudFormation identifies it by."""

    account: str
    region: str
    name: str
    resources: Mapping[str, Any]  # logical ID -> template resource
    outputs: Mapping[str, Any] = field(default_factory=dict)  # exports other stacks import

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.name)


def _schema(resource_type: str, region: str) -> dict[str, Any]:
    try:
        schema: dict[str, Any] = PROVIDER_SCHEMA_MANAGER.get_resource_schema(
            region, resource_type
        ).schema
    except ResourceNotFoundError:
        return {}  # a custom resource, or a type unknown in this region: nothing to compare
    return schema


def _paths(pointers: Iterable[str]) -> list[tuple[str, ...]]:
    paths = []
    for pointer in pointers:
        parts = pointer.split("/")[1:]  # "/properties/VpcConfig/SubnetIds"
        if parts and parts[0] == "properties":
            paths.append(tuple(parts[1:]))
    return paths


def create_only_properties(resource_type: str, region: str) -> list[tuple[str, ...]]:
    """The registry schema's ``createOnlyProperties`` as paths under ``Properties``."""
    return _paths(_schema(resource_type, region).get("createOnlyProperties", []))


def _identifier_paths(resource_type: str, region: str) -> list[tuple[str, ...]]:
    """Properties that name the resource (the schema's primary and additional identifiers)."""
    schema = _schema(resource_type, region)
    pointers = list(schema.get("primaryIdentifier", []))
    for extra in schema.get("additionalIdentifiers", []):
        pointers += extra
    return _paths(pointers)


_MISSING = object()


def _lookup(properties: Any, path: tuple[str, ...]) -> Any:
    value = properties
    for part in path:
        if not isinstance(value, dict):
            return value  # a list or intrinsic on the way: compare the whole subtree
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _references(value: Any) -> set[str]:
    """Logical IDs a template value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", str(text))}
                found |= _references(inner[1] if isinstance(inner, list) else None)
            else:
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def _literal(value: Any, stack: Stack) -> str | None:
    """A string the template spells out, with the stack's pseudo parameters filled in (export
    names are ``"<stack>:..."`` literals in CDK, ``${AWS::StackName}-...`` in hand-written
    templates); None for anything only known at deploy time."""
    pseudo = {"AWS::StackName": stack.name, "AWS::Region": stack.region}
    pseudo["AWS::AccountId"] = stack.account
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref" and inner in pseudo:
            return pseudo[inner]
        if key == "Fn::Sub" and isinstance(inner, str):
            text = re.sub(r"\$\{(AWS::\w+)\}", lambda m: pseudo.get(m[1], m[0]), inner)
            return None if re.search(r"\$\{[^!]", text) else text.replace("${!", "${")
        if key == "Fn::Join" and isinstance(inner, list) and len(inner) == 2:
            parts = [_literal(part, stack) for part in inner[1]]
            return None if None in parts else str(inner[0]).join(str(p) for p in parts)
    return None


def _imports(value: Any, stack: Stack) -> set[str]:
    """Export names a template value imports (``Fn::ImportValue``)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            name = _literal(inner, stack) if key == "Fn::ImportValue" else None
            found |= {name} if name is not None else _imports(inner, stack)
    elif isinstance(value, list):
        for inner in value:
            found |= _imports(inner, stack)
    return found


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value, sort_keys=True)


ResourceKey = tuple[tuple[str, str, str], str]  # (stack key, logical ID)
_VPC_ID = ("VpcId",)


class _Target(NamedTuple):
    """A resource a value points at: in its own stack, or through another stack's export."""

    key: ResourceKey
    stack: str
    logical_id: str
    export: str | None  # the export it came through, None within one stack


@dataclass(frozen=True)
class _Replaced:
    reason: str
    root: str  # "<stack>/<logical ID>" of the change that started it


@dataclass(frozen=True)
class _Change:
    path: tuple[str, ...]
    before: Any
    after: Any
    source: str | None  # the AWS page (scripts.replacement_rules), None for the registry


Exports = dict[tuple[str, str, str], tuple[Stack, set[str]]]  # (account, region, name) -> ...


def _exports(stacks: Iterable[Stack]) -> Exports:
    exports: Exports = {}
    for stack in stacks:
        for output in stack.outputs.values():
            export = output.get("Export") if isinstance(output, dict) else None
            name = _literal(export.get("Name"), stack) if isinstance(export, dict) else None
            if name is not None:
                refs = _references(output.get("Value"))
                exports[(stack.account, stack.region, name)] = (stack, refs)
    return exports


def _targets(value: Any, stack: Stack, exports: Exports) -> list[_Target]:
    found = [_Target((stack.key, lid), stack.name, lid, None) for lid in _references(value)]
    for name in _imports(value, stack):
        producer, refs = exports.get((stack.account, stack.region, name), (None, set()))
        if producer is not None:
            found += [_Target((producer.key, lid), producer.name, lid, name) for lid in refs]
    return sorted(found, key=lambda t: (t.export is None, t.key))  # another stack's first


def _says(path: tuple[str, ...], target: _Target) -> str:
    if target.export is None:
        return f"{'.'.join(path)} refers to {target.logical_id}"
    return f"{'.'.join(path)} imports {target.logical_id} in {target.stack}"


Watched = list[tuple[tuple[str, ...], Any]]  # (path under Properties, the head's value)


def _changes(base: Stack, old: Any, new: Any) -> tuple[list[_Change], Watched]:
    """A paired resource's changed create-only values (registry and sourced table), and every
    create-only (path, head value) it has, which the cascade follows."""
    resource_type = str(old.get("Type"))
    old_props, new_props = old.get("Properties", {}), new.get("Properties", {})
    changes: list[_Change] = []
    watched: Watched = []
    for path in create_only_properties(resource_type, base.region):
        before, after = _lookup(old_props, path), _lookup(new_props, path)
        watched.append((path, after))
        if before != after:
            changes.append(_Change(path, before, after, None))
    for rule in replacing_properties(resource_type):
        before, after = _lookup(old_props, rule.path), _lookup(new_props, rule.path)
        if rule.only_when_set and before is _MISSING:
            continue  # setting it the first time is an in-place update
        watched.append((rule.path, after))
        if before != after:
            changes.append(_Change(rule.path, before, after, rule.source))
    return changes, watched


def _names(stack: Stack, resource: Any) -> list[str]:
    """The literal names a resource goes by (its identifier properties): other stacks pass
    these as plain strings (bucket names, cluster names), not as exports."""
    props = resource.get("Properties", {})
    found = []
    for path in _identifier_paths(str(resource.get("Type")), stack.region):
        value = _lookup(props, path)
        if isinstance(value, str) and len(value) >= 3:
            found.append(value)
    return found


def _named_by(change: _Change, names: dict[str, tuple[str, str, str]]) -> str | None:
    """'because X in S is replaced' when the old value of a change spells the name of a
    resource another change replaces or removes."""
    if change.before is _MISSING:
        return None
    text = json.dumps(change.before)
    for name, (stack, logical_id, fate) in sorted(names.items()):
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text):
            return f"because {logical_id} in {stack} is {fate} ({'.'.join(change.path)} names it)"
    return None


def _reason(changes: list[_Change], because: str | None) -> str:
    def diff(change: _Change) -> str:
        return f"{'.'.join(change.path)} {_show(change.before)} -> {_show(change.after)}"

    registry = [diff(c) for c in changes if c.source is None]
    parts = ["create-only " + "; ".join(registry)] if registry else []
    parts += [f"{diff(c)} replaces it ({c.source})" for c in changes if c.source is not None]
    text = "; ".join(parts)
    return f"{because}: {text}" if because else text


class Plan:
    """What deploying every head stack over its base does: replaced resources (by a change of
    their own, or cascading through references and exports, across stacks) and resources whose
    in-place update cannot follow a replaced resource into a new VPC."""

    def __init__(self, pairs: list[tuple[Stack, Stack]]) -> None:
        self.pairs = pairs
        self.replaced: dict[ResourceKey, _Replaced] = {}
        self.moved: set[ResourceKey] = set()  # replaced ones that come back in another VPC
        self.stuck: dict[ResourceKey, str] = {}
        exports = _exports(head for _, head in pairs)
        watched: dict[ResourceKey, tuple[Stack, Watched]] = {}
        direct: dict[ResourceKey, tuple[Stack, str, Any, list[_Change]]] = {}
        names: dict[str, tuple[str, str, str]] = {}  # name -> (stack, logical ID, fate)
        for base, head in pairs:
            for logical_id, old in base.resources.items():
                key = (base.key, logical_id)
                new = head.resources.get(logical_id)
                if new is None or old.get("Type") != new.get("Type"):
                    fate = "removed" if new is None else "replaced"
                    names |= dict.fromkeys(_names(base, old), (base.name, logical_id, fate))
                    if new is not None:
                        why = f"type {old.get('Type')} -> {new.get('Type')}"
                        self.replaced[key] = _Replaced(why, f"{base.name}/{logical_id}")
                    continue
                changes, values = _changes(base, old, new)
                watched[key] = (head, values)
                if changes:
                    direct[key] = (base, logical_id, old, changes)
                    fate_names = _names(base, old)
                    names |= dict.fromkeys(fate_names, (base.name, logical_id, "replaced"))
        for key, (base, logical_id, old, changes) in direct.items():
            own = set(_names(base, old))
            others = {n: v for n, v in names.items() if n not in own}
            because = next(filter(None, (_named_by(c, others) for c in changes)), None)
            if old.get("Type") == "AWS::EC2::VPC" or any(c.path[-1:] == _VPC_ID for c in changes):
                self.moved.add(key)
            root = f"{base.name}/{logical_id}"
            self.replaced[key] = _Replaced(_reason(changes, because), root)
        self._cascade(watched, exports)
        self._follow_vpcs(watched, exports)
        self._stuck(exports)

    def _cascade(
        self,
        watched: dict[ResourceKey, tuple[Stack, Watched]],
        exports: Exports,
    ) -> None:
        """A create-only value that refers to a replaced resource gets a new value (a new VPC
        ID, subnet, key ARN, ...): its resource is replaced too, transitively and across
        stacks."""
        grew = True
        while grew:
            grew = False
            for key, (stack, values) in watched.items():
                if key in self.replaced:
                    continue
                hits = [
                    (target.export is None, i, path, target)
                    for i, (path, value) in enumerate(values)
                    for target in _targets(value, stack, exports)
                    if target.key in self.replaced
                ]
                if not hits:
                    continue
                *_, path, hit = min(hits)  # another stack's resource first: the wider reach
                cause = self.replaced[hit.key]
                if hit.export is None:
                    reason = f"{_says(path, hit)}, which is replaced"
                else:
                    reason = f"because {hit.logical_id} in {hit.stack} is replaced"
                    reason += f" ({'.'.join(path)} imports it)"
                if cause.root != f"{hit.stack}/{hit.logical_id}":
                    reason += f"; it starts at {cause.root}"
                self.replaced[key] = _Replaced(reason, cause.root)
                grew = True

    def _follow_vpcs(
        self, watched: dict[ResourceKey, tuple[Stack, Watched]], exports: Exports
    ) -> None:
        """Replaced resources whose VpcId refers to a moved one (a subnet or security group of
        a new VPC) move with it, whatever else replaced them (a new CIDR block, say)."""
        grew = True
        while grew:
            grew = False
            for key, (stack, values) in watched.items():
                if key not in self.replaced or key in self.moved:
                    continue
                if any(
                    target.key in self.moved
                    for path, value in values
                    if path[-1:] == _VPC_ID
                    for target in _targets(value, stack, exports)
                ):
                    self.moved.add(key)
                    grew = True

    def _stuck(self, exports: Exports) -> None:
        for base, head in self.pairs:
            for logical_id, new in head.resources.items():
                key = (base.key, logical_id)
                if key in self.replaced or logical_id not in base.resources:
                    continue
                for rule in vpc_bound_properties(str(new.get("Type"))):
                    value = _lookup(new.get("Properties", {}), rule.path)
                    hits = [t for t in _targets(value, head, exports) if t.key in self.moved]
                    if hits:
                        self.stuck[key] = (
                            f"{_says(rule.path, hits[0])}, which is replaced in a new VPC, and "
                            f'AWS updates this property only within one VPC ("{rule.says}", '
                            f"{rule.source}): the deploy fails here; plan a new one deliberately"
                        )
                        break


# How much of a resource a DeletionPolicy/UpdateReplacePolicy keeps (CloudFormation's
# DeletionPolicy and UpdateReplacePolicy attribute pages): the resource, a snapshot, nothing.
KEEPS = {"Retain": 2, "RetainExceptOnCreate": 2, "Snapshot": 1, "Delete": 0}
POLICY_CONSEQUENCE = {
    "DeletionPolicy": "removing it from the template or deleting the stack now deletes it",
    "UpdateReplacePolicy": "a replacement now deletes the old one",
}


def retention_drop(resource_type: str, old: Any, new: Any) -> str | None:
    """Retain -> Delete (or Snapshot) on DeletionPolicy or UpdateReplacePolicy."""
    drops = []
    for attribute, consequence in POLICY_CONSEQUENCE.items():
        before, after = (
            side.get(attribute) or _default_policy(attribute, resource_type, side)
            for side in (old, new)
        )
        if KEEPS.get(before, 0) > KEEPS.get(after, 0):
            drops.append(f"{attribute} {before} -> {after} ({consequence})")
    return "; ".join(drops) or None


def _default_policy(attribute: str, resource_type: str, resource: Any) -> str:
    """CloudFormation's default when the attribute is absent: Delete, except DeletionPolicy
    Snapshot for RDS clusters and for instances outside a cluster."""
    if attribute == "DeletionPolicy" and (
        resource_type == "AWS::RDS::DBCluster"
        or (
            resource_type == "AWS::RDS::DBInstance"
            and "DBClusterIdentifier" not in resource.get("Properties", {})
        )
    ):
        return "Snapshot"
    return "Delete"
