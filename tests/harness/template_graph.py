"""A synthesized CloudFormation template as a graph the deploy-contract tests can ask questions of:
what depends on what (``DependsOn``, ``Ref``, ``Fn::GetAtt``, transitively), which policies a role
holds, and what an intrinsic-laden string reads as. Resources are found by their properties,
never by their hashed logical IDs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

# Pseudo parameters as a synthesized template of this app resolves them (commercial partition).
PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def _references(value: Any) -> Iterator[str]:
    """Logical IDs ``value`` names through Ref / Fn::GetAtt, at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0] if isinstance(inner, list) else inner.split(".")[0]
            else:
                yield from _references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _references(inner)


class TemplateGraph:
    def __init__(self, template: dict[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = template["Resources"]

    def resource(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id]

    def of_type(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_name}

    def find_one_with_id(
        self, type_name: str, match: Callable[[dict[str, Any]], bool]
    ) -> tuple[str, dict[str, Any]]:
        found = [
            (k, v) for k, v in self.of_type(type_name).items() if match(v.get("Properties", {}))
        ]
        assert len(found) == 1, f"{len(found)} {type_name} match"
        return found[0]

    def find_one(self, type_name: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return self.find_one_with_id(type_name, match)[1]

    def id_of(self, resource: dict[str, Any]) -> str:
        return next(k for k, v in self.resources.items() if v is resource)

    @staticmethod
    def ref_target(value: Any) -> str:
        """The logical ID a ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}`` points at."""
        (target,) = list(_references(value))
        return target

    def direct_dependencies(self, logical_id: str) -> set[str]:
        resource = self.resources[logical_id]
        depends = resource.get("DependsOn", [])
        found = set([depends] if isinstance(depends, str) else depends)
        found |= set(_references(resource.get("Properties", {})))
        return {d for d in found if d in self.resources}

    def depends_on(self, source: str, target: str) -> bool:
        """Does CloudFormation create ``target`` before ``source`` (transitively)?"""
        return target in self._closure(source)

    @cache  # noqa: B019  (one graph per test, kept only for that test)
    def _closure(self, source: str) -> frozenset[str]:
        seen: set[str] = set()
        stack = [source]
        while stack:
            for dependency in self.direct_dependencies(stack.pop()):
                if dependency not in seen:
                    seen.add(dependency)
                    stack.append(dependency)
        return frozenset(seen)

    def policies_of(self, role: dict[str, Any] | str) -> list[dict[str, Any]]:
        """The policy documents a role holds: inline ``Policies`` and ``AWS::IAM::Policy``."""
        role_id = role if isinstance(role, str) else self.id_of(role)
        documents = [p["PolicyDocument"] for p in self.resources[role_id]["Properties"].get(
            "Policies", []
        )]  # fmt: skip
        for policy in self.of_type("AWS::IAM::Policy").values():
            roles = policy["Properties"].get("Roles", [])
            if {"Ref": role_id} in roles:
                documents.append(policy["Properties"]["PolicyDocument"])
        return documents

    def kubectl_handler_timeout(self) -> int:
        """Seconds the EKS kubectl handler Lambda (the one with the kubectl/helm layer) may run."""
        layers = {
            k
            for k, v in self.of_type("AWS::Lambda::LayerVersion").items()
            if "/opt/helm/helm" in v["Properties"].get("Description", "")
        }
        (function,) = [
            f
            for f in self.of_type("AWS::Lambda::Function").values()
            if layers & set(_references(f["Properties"].get("Layers", [])))
        ]
        return int(function["Properties"]["Timeout"])

    @staticmethod
    def render(value: Any) -> str:
        """An intrinsic-laden string as text: pseudo parameters resolved, other references as
        ``<Ref id>`` / ``<GetAtt id.attr>`` (never a wildcard, so nothing matches by accident)."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(TemplateGraph.render(p) for p in parts)
        if isinstance(value, dict) and "Ref" in value:
            return PSEUDO.get(value["Ref"], f"<Ref {value['Ref']}>")
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target, attribute = value["Fn::GetAtt"]
            return f"<GetAtt {target}.{attribute}>"
        if isinstance(value, dict) and len(value) == 1:
            return f"<{next(iter(value))}>"  # another intrinsic (Fn::Select, ...): opaque
        return json.dumps(value)

    @staticmethod
    def json_values(value: Any) -> Any:
        """A JSON property that CDK wrote as an ``Fn::Join`` (tokens inside) parsed back."""
        return json.loads(TemplateGraph.render(value))


def policy_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def resources_of(statement: dict[str, Any]) -> list[str]:
    resources = statement.get("Resource", [])
    resources = resources if isinstance(resources, list) else [resources]
    return [TemplateGraph.render(r) for r in resources]


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]
