"""Validate a rendered job against the training operator's published schema (vendored in
``schema/``, see its SOURCE.md), so a typo fails on the laptop rather than as a pending pod."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.crd_schema import schema_problems

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "hyperpodpytorchjob-v1.schema.json"


class ManifestSchemaError(ValueError):
    """The manifest breaks the CRD schema; the message lists each problem with its path."""


def problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every schema violation as ``path.to.field: reason``, shortest paths first."""
    return schema_problems(SCHEMA_PATH, manifest)


def validate(manifest: Mapping[str, Any]) -> None:
    found = problems(manifest)
    if found:
        raise ManifestSchemaError(
            "the job does not match the HyperPodPyTorchJob schema:\n  " + "\n  ".join(found)
        )
