"""Validate a rendered job against the training operator's published schema (vendored in
``schema/``, see its SOURCE.md), so a typo fails on the laptop rather than as a pending pod."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "hyperpodpytorchjob-v1.schema.json"


class ManifestSchemaError(ValueError):
    """The manifest breaks the CRD schema; the message lists each problem with its path."""


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The generated schema wraps optional fields in ``anyOf: [T, null]``: report the failures
    inside T (``...imagePullPolicy: 3 is not of type 'string'``), not the whole subtree."""
    if not error.context:
        return [error]
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for inner in error.context:
        branches.setdefault(inner.relative_schema_path[0], []).append(inner)
    real = [
        errs
        for errs in branches.values()
        if not (
            len(errs) == 1 and errs[0].validator == "type" and errs[0].validator_value == "null"
        )
    ]
    if len(real) != 1:  # a genuine choice between schemas: the summary is the useful message
        return [error]
    return [leaf for inner in real[0] for leaf in _leaves(inner)]


def problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every schema violation as ``path.to.field: reason``, shortest paths first."""
    errors = [leaf for e in _validator().iter_errors(manifest) for leaf in _leaves(e)]
    errors.sort(key=lambda e: (len(e.absolute_path), e.json_path))
    return [f"{e.json_path.removeprefix('$.') or '(root)'}: {e.message}" for e in errors]


def validate(manifest: Mapping[str, Any]) -> None:
    found = problems(manifest)
    if found:
        raise ManifestSchemaError(
            "the job does not match the HyperPodPyTorchJob schema:\n  " + "\n  ".join(found)
        )
