"""Every pattern-checked field matches the whole value in ASCII: a trailing newline or another
script's digits is refused at validation (not later, by jsii or an AWS API)."""

import copy
import importlib
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.bu_configs import add_hyperpod

import config
import core
from config.loader import load_all

ARABIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))  # Arabic-Indic


@pytest.fixture
def full_bu(valid_bu: dict[str, Any]) -> dict[str, Any]:
    """A valid BU with every section, so every pattern-checked field has a value."""
    raw = add_hyperpod(valid_bu)
    raw["tags"]["extra"] = {"team": "payments"}
    raw["hyperpod"]["scheduler"] = {"priority_classes": [{"name": "training", "weight": 70}]}
    raw["hyperpod"]["addons"] = {"cert_manager": "v1.18.2-eksbuild.2"}
    raw["studio"] = {
        "identity_center": {
            "instance_arn": "arn:aws:sso:::instance/ssoins-7223a1b2c3d4e5f6",
            "identity_store_id": "d-9067a1b2c3",
        },
        "users": [
            {
                "user_name": "alice@example.com",
                "user_id": "9067a1b2c3-4f1e2d3c-5b6a-4798-8a9b-0c1d2e3f4a5b",
                "profile_name": "alice",
            }
        ],
        "groups": [{"name": "team", "group_id": "9067a1b2c3-1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"}],
        "shared_spaces": [{"name": "team-notebooks", "owner": "alice@example.com"}],
    }
    raw["mlflow"] = {
        "kind": "tracking_server",
        "mlflow_version": "3.0",
        "weekly_maintenance_window_start": "Sun:03:00",
    }
    raw["endpoints"] = {
        "items": [
            {"name": "qwen3", "model": "qwen3/v1/"},
            {
                "name": "qwen3-hp",
                "model": "qwen3/v1/",
                "target": "hyperpod",
                "instance_type": "ml.p5en.48xlarge",
                "mig_profile": "1g.18gb",
            },
        ],
        "hyperpod_addons": {"metrics_server": "v0.7.2-eksbuild.4"},
    }
    return raw


# Each field checked against a pattern (or a character rule), and where its error is reported.
PATTERN_FIELDS = [
    ("name", "name"),
    ("account", "account"),
    ("tags.owner", "tags.owner"),
    ("tags.extra.team", "tags.extra"),
    ("studio.identity_center.instance_arn", "studio.identity_center.instance_arn"),
    ("studio.identity_center.identity_store_id", "studio.identity_center.identity_store_id"),
    ("studio.users.0.user_name", "studio.users.0.user_name"),
    ("studio.users.0.user_id", "studio.users.0.user_id"),
    ("studio.users.0.profile_name", "studio.users.0.profile_name"),
    ("studio.groups.0.group_id", "studio.groups.0.group_id"),
    ("studio.shared_spaces.0.name", "studio.shared_spaces.0.name"),
    ("hyperpod.admin_roles.0", "hyperpod.admin_roles.0"),
    ("hyperpod.addons.cert_manager", "hyperpod.addons.cert_manager"),
    ("hyperpod.dependencies_chart.version", "hyperpod.dependencies_chart.version"),
    ("hyperpod.dependencies_chart.digest", "hyperpod.dependencies_chart.digest"),
    ("hyperpod.dependencies_chart.source_commit", "hyperpod.dependencies_chart.source_commit"),
    ("hyperpod.gpu_groups.1.name", "hyperpod.gpu_groups.1.name"),
    ("hyperpod.gpu_groups.1.instance_type", "hyperpod.gpu_groups.1.instance_type"),
    ("hyperpod.teams.0.name", "hyperpod.teams.0.name"),
    ("hyperpod.quotas.0.team", "hyperpod.quotas.0.team"),
    (
        "hyperpod.scheduler.priority_classes.0.name",
        "hyperpod.scheduler.priority_classes.0.name",
    ),
    ("mlflow.mlflow_version", "mlflow.mlflow_version"),
    ("mlflow.weekly_maintenance_window_start", "mlflow.weekly_maintenance_window_start"),
    ("endpoints.items.0.name", "endpoints.items.0.name"),
    ("endpoints.items.0.model", "endpoints.items.0.model"),
    ("endpoints.items.1.mig_profile", "endpoints.items.1.mig_profile"),
    ("endpoints.hyperpod_addons.metrics_server", "endpoints.hyperpod_addons.metrics_server"),
]
# Fields that hold digits: the same value in Arabic-Indic digits must be refused.
DIGIT_FIELDS = [
    "account",
    "hyperpod.addons.cert_manager",
    "hyperpod.dependencies_chart.version",
    "mlflow.mlflow_version",
    "mlflow.weekly_maintenance_window_start",
    "endpoints.items.1.mig_profile",
    "endpoints.hyperpod_addons.metrics_server",
]


def _node(raw: dict[str, Any], dotted: str) -> tuple[Any, str | int]:
    *parents, leaf = dotted.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, int(leaf) if isinstance(node, list) else leaf


def _errors_after(
    raw: dict[str, Any], write_bu: Callable[..., Path], field: str, change: Callable[[str], str]
) -> list[str]:
    raw = copy.deepcopy(raw)
    node, key = _node(raw, field)
    node[key] = change(node[key])
    path = write_bu(raw)
    loaded, errors = load_all([path])
    assert loaded == []
    return [str(e).removeprefix(f"{path}: ") for e in errors]


def test_the_full_bu_is_valid(full_bu: dict[str, Any], write_bu: Callable[..., Path]) -> None:
    assert load_all([write_bu(full_bu)])[1] == []


@pytest.mark.parametrize(("field", "where"), PATTERN_FIELDS, ids=[f for f, _ in PATTERN_FIELDS])
def test_a_trailing_newline_is_refused(
    full_bu: dict[str, Any], write_bu: Callable[..., Path], field: str, where: str
) -> None:
    lines = _errors_after(full_bu, write_bu, field, lambda value: f"{value}\n")
    assert any(line.startswith(f"{where}: ") for line in lines), lines
    assert all("\n" not in line for line in lines)  # still one line per problem


@pytest.mark.parametrize("field", DIGIT_FIELDS)
def test_digits_of_another_script_are_refused(
    full_bu: dict[str, Any], write_bu: Callable[..., Path], field: str
) -> None:
    lines = _errors_after(full_bu, write_bu, field, lambda value: value.translate(ARABIC))
    assert any(line.startswith(f"{field}: ") for line in lines), lines


def _config_modules() -> list[Any]:
    """The config package's modules and core's (the typed base, naming, parameters and tables
    the config reads)."""
    return [
        importlib.import_module(f"{package.__name__}.{m.name}")
        for package in (config, core)
        for m in pkgutil.iter_modules(package.__path__)
        if m.name != "__main__"
    ]


def test_config_patterns_go_through_the_one_ascii_helper() -> None:
    """`core.base.ascii_pattern`/`matching` only: no `re.match`/`re.search`/`.match(` (which
    stop short of the end), no pydantic `pattern=` (whose `\\d` is any script's digit)."""
    banned = re.compile(r"\bre\.(?:match|search|compile)\(|\.match\(|pattern=")
    for module in _config_modules():
        if module.__name__ == "core.base":
            continue
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert not banned.findall(source), module.__name__


def test_every_compiled_config_pattern_is_ascii() -> None:
    for module in _config_modules():
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                assert value.flags & re.ASCII, f"{module.__name__}.{name}"
