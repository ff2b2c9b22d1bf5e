"""Fixtures for config tests: a valid BU as a dict, and a writer of YAML files into tmp_path."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VALID: dict[str, Any] = {
    "name": "payments",
    "account": "333333333333",
    "region": "us-west-2",
    "network": {
        "cidr": "10.80.0.0/16",
        "availability_zones": ["us-west-2a", "us-west-2b"],
    },
    "tags": {"owner": "payments-ml", "cost_center": "CC-9000"},
}


@pytest.fixture
def valid_bu() -> dict[str, Any]:
    return copy.deepcopy(VALID)


@pytest.fixture
def write_bu(tmp_path: Path) -> Callable[..., Path]:
    def write(raw: dict[str, Any], name: str = "bu") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path

    return write
