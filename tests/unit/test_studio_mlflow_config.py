"""The ``studio`` and ``mlflow`` sections: defaults, derived names, and every kind of bad input
reported as ``file: field.path: reason`` before anything is synthesized."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.config_errors import DELETE, assert_case_rejected, mistake

from config.schema import BusinessUnitConfig
from config.studio import MAX_PROFILE_NAME, profile_name_for

STORE = "d-9067a1b2c3"
ALICE_ID = "9067a1b2c3-4f1e2d3c-5b6a-4798-8a9b-0c1d2e3f4a5b"
BOB_ID = "9067a1b2c3-6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
STUDIO: dict[str, Any] = {
    "identity_center": {
        "instance_arn": "arn:aws:sso:::instance/ssoins-7223a1b2c3d4e5f6",
        "identity_store_id": STORE,
    },
    "users": [
        {"user_name": "alice.ng@example.com", "user_id": ALICE_ID},
        {"user_name": "bob@example.com", "user_id": BOB_ID},
    ],
    "groups": [{"name": "team", "group_id": "9067a1b2c3-1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"}],
    "shared_spaces": [{"name": "team-notebooks", "owner": "alice.ng@example.com"}],
}


@pytest.fixture
def bu(valid_bu: dict[str, Any]) -> dict[str, Any]:
    return {**valid_bu, "studio": copy.deepcopy(STUDIO), "mlflow": {}}


def test_defaults_suit_most_bus(bu: dict[str, Any]) -> None:
    cfg = BusinessUnitConfig.model_validate(bu)
    studio, mlflow = cfg.studio, cfg.mlflow
    assert studio is not None
    assert mlflow is not None
    assert studio.trusted_identity_propagation is True
    assert studio.remote_access is True
    assert studio.jupyterlab.instance_type == "ml.m5.large"  # 8 GiB: remote access works
    assert (studio.jupyterlab.idle_timeout_minutes, studio.code_editor.idle_timeout_minutes) == (
        60,
        60,
    )
    assert [u.profile for u in studio.users] == ["alice-ng", "bob"]
    assert studio.identity_center is not None
    assert studio.identity_center.portal_url == f"https://{STORE}.awsapps.com/start"
    assert (mlflow.kind, mlflow.automatic_model_registration) == ("app", False)


def test_profile_names_derive_from_the_user_name() -> None:
    assert profile_name_for("Jane.Doe+ml@corp.example") == "jane-doe-ml"
    assert profile_name_for("svc_batch") == "svc-batch"


def test_a_tracking_server_takes_size_and_version(bu: dict[str, Any]) -> None:
    bu["mlflow"] = {"kind": "tracking_server", "size": "Large", "mlflow_version": "2.16.2"}
    mlflow = BusinessUnitConfig.model_validate(bu).mlflow
    assert mlflow is not None
    assert (mlflow.size, mlflow.mlflow_version) == ("Large", "2.16.2")


LONG_NAME = "x" * (MAX_PROFILE_NAME + 1) + "@example.com"
# mistake(what is wrong, field path, value, words the reason must contain[, at=the error's path])
CASES = [
    mistake(
        "studio without Identity Center", "studio.identity_center", DELETE, "IAM Identity Center"
    ),
    mistake(
        "bad instance ARN",
        "studio.identity_center.instance_arn",
        "arn:aws:sso:::instance/ins-123",
        "not an Identity Center instance ARN",
    ),
    mistake(
        "bad identity store ID",
        "studio.identity_center.identity_store_id",
        "store-1",
        "not an identity store ID",
    ),
    mistake("duplicate user", "studio.users.1.user_name", "Alice.Ng@example.com", "duplicate user"),
    mistake("duplicate user ID", "studio.users.1.user_id", ALICE_ID, "duplicate user"),
    mistake(
        "user name where the user ID belongs",
        "studio.users.0.user_id",
        "alice.ng@example.com",
        "not an Identity Center user ID",
    ),
    mistake(
        "user of another identity store",
        "studio.users.0.user_id",
        "93670f1e2d-4f1e2d3c-5b6a-4798-8a9b-0c1d2e3f4a5b",
        f"not {STORE}",
    ),
    mistake(
        "profile name Studio refuses",
        "studio.users.0.profile_name",
        "alice_ng",
        "Studio accepts letters, digits and hyphens",
    ),
    mistake(
        "derived profile name too long",
        "studio.users.0.user_name",
        LONG_NAME,
        f"at most {MAX_PROFILE_NAME} characters",
    ),
    mistake(
        "remote access on a too-small instance",
        "studio.jupyterlab",
        {"instance_type": "ml.t3.medium"},
        "needs at least 8 GiB",
        at="studio.jupyterlab.instance_type",
    ),
    mistake(
        "unknown instance type",
        "studio.code_editor",
        {"instance_type": "ml.m5.huge"},
        "is not a Studio instance type this platform knows",
        at="studio.code_editor.instance_type",
    ),
    mistake(
        "idle limit out of range",
        "studio.jupyterlab",
        {"idle_timeout_minutes": 30},
        "greater than or equal to 60",
        at="studio.jupyterlab.idle_timeout_minutes",
    ),
    mistake(
        "idle default outside the user range",
        "studio.code_editor",
        {"idle_timeout_minutes": 600, "max_idle_timeout_minutes": 480},
        "must lie between",
        at="studio.code_editor.idle_timeout_minutes",
    ),
    mistake(
        "disk over the domain maximum",
        "studio.jupyterlab",
        {"ebs_size_gb": 500},
        "over max_ebs_size_gb",
        at="studio.jupyterlab.ebs_size_gb",
    ),
    mistake(
        "shared space owned by a stranger",
        "studio.shared_spaces.0.owner",
        "mallory@example.com",
        "not one of studio.users",
    ),
    mistake(
        "shared space name taken by a private space",
        "studio.shared_spaces.0.name",
        "bob-jupyterlab",
        "already taken",
    ),
    mistake(
        "remote shared space on a too-small instance",
        "studio.shared_spaces.0",
        {
            "name": "team",
            "owner": "bob@example.com",
            "instance_type": "ml.c5.large",
            "remote_access": True,
        },
        "needs at least 8 GiB",
        at="studio.shared_spaces.0.instance_type",
    ),
    mistake("unknown field in studio", "studio.domain_name", "x", "unknown field"),
    mistake("unknown field in a studio user", "studio.users.0.email", "x", "unknown field"),
    mistake("MLflow kind unknown", "mlflow.kind", "serverless", "'app' or"),
    mistake(
        "unknown MLflow size",
        "mlflow",
        {"kind": "tracking_server", "size": "XLarge"},
        "'Small', 'Medium' or 'Large'",
        at="mlflow.size",
    ),
    mistake(
        "size on a serverless app",
        "mlflow",
        {"kind": "app", "size": "Small"},
        "only applies to kind 'tracking_server'",
        at="mlflow.size",
    ),
    mistake(
        "bad MLflow version",
        "mlflow",
        {"kind": "tracking_server", "mlflow_version": "latest"},
        "'latest' is not an MLflow version like 3.0",
        at="mlflow.mlflow_version",
    ),
    mistake(
        "bad maintenance window",
        "mlflow.weekly_maintenance_window_start",
        "Sunday 3am",
        "'Sunday 3am' is not a weekly UTC start like Sun:03:00",
    ),
    mistake("unknown field in mlflow", "mlflow.tracking_uri", "x", "unknown field"),
]


@pytest.mark.parametrize("case", CASES)
def test_invalid_section_names_file_and_field(
    bu: dict[str, Any], write_bu: Callable[..., Path], case: tuple[Any, ...]
) -> None:
    assert_case_rejected(write_bu, bu, case)


def test_the_examples_validate_with_both_sections() -> None:
    from config.loader import config_files, load_valid

    configs = {c.name: c for c in load_valid(config_files())}
    users = {}
    for name in ("fraud", "credit", "marketing"):
        cfg = configs[name]
        assert cfg.studio is not None, name
        assert cfg.mlflow is not None, name
        users[name] = {u.user_name for u in cfg.studio.users}
    assert len({frozenset(u) for u in users.values()}) == 3  # a different team per BU
