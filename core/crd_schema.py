"""Validate a Kubernetes object against an operator's published CRD schema (vendored JSON next
to the code that renders the object), so a typo fails on the laptop, not as a pending pod or a
refused apply. One implementation for the training job and the inference endpoint."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema


@functools.cache
def _validator(schema_path: Path) -> jsonschema.protocols.Validator:
    import jsonschema  # MWAA's DAG imports the renderer; only validating needs this

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """Generated schemas wrap optional fields in ``anyOf: [T, null]``: report the failures
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


def schema_problems(schema_path: Path, obj: Mapping[str, Any]) -> list[str]:
    """Every way ``obj`` breaks the schema, as ``path.to.field[0]: reason`` lines, shortest
    paths first (none: valid). A schema without ``$schema`` is read as draft 7, the dialect
    of Kubernetes' OpenAPI v3 CRD schemas."""
    errors = [leaf for e in _validator(schema_path).iter_errors(dict(obj)) for leaf in _leaves(e)]
    errors.sort(key=lambda e: (len(e.absolute_path), e.json_path))
    return [f"{e.json_path.removeprefix('$.') or '(root)'}: {e.message}" for e in errors]
