"""The ``governance`` section: defaults, and each mistake reported with its file and field."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_all
from config.schema import BusinessUnitConfig


def governed(raw: dict[str, Any], **section: Any) -> dict[str, Any]:
    raw["governance"] = {"monthly_limit_usd": 1000, **section}
    return raw


def errors_of(write_bu: Callable[..., Path], raw: dict[str, Any]) -> list[str]:
    path = write_bu(raw)
    loaded, errors = load_all([path])
    assert errors, "the config should have been rejected"
    assert loaded == []
    return [str(e).removeprefix(f"{path}: ") for e in errors]


def test_defaults(valid_bu: dict[str, Any]) -> None:
    cfg = BusinessUnitConfig.model_validate(governed(valid_bu))
    gov = cfg.governance
    assert gov is not None
    assert gov.alert_thresholds_percent == [50, 80, 100]
    assert (gov.sns_topic, gov.budget_action, gov.dashboard) == (True, False, True)
    assert gov.notification_emails == []
    assert gov.log_retention_days == 365
    assert gov.action_threshold == 100  # used only once budget_action is on


def test_a_bu_without_the_section_has_none(valid_bu: dict[str, Any]) -> None:
    assert BusinessUnitConfig.model_validate(valid_bu).governance is None


def test_thresholds_are_sorted_and_action_threshold_kept(valid_bu: dict[str, Any]) -> None:
    raw = governed(
        valid_bu,
        alert_thresholds_percent=[90, 25.5],
        budget_action=True,
        action_threshold_percent=95,
        action_approval="manual",
    )
    gov = BusinessUnitConfig.model_validate(raw).governance
    assert gov is not None
    assert gov.alert_thresholds_percent == [25.5, 90]
    assert (gov.action_threshold, gov.action_approval) == (95, "manual")


@pytest.mark.parametrize(
    "address",
    ["finops", "finops@", "@example.com", "fin ops@example.com", "finops@example", "a..b@x.com",
     "Fin <finops@example.com>", "finops@exa_mple.com", "finöps@example.com"],
)  # fmt: skip
def test_bad_email_is_refused(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any], address: str
) -> None:
    errors = errors_of(write_bu, governed(valid_bu, notification_emails=[address]))
    assert len(errors) == 1
    assert errors[0].startswith("governance.notification_emails.0: ")
    assert "not an email address" in errors[0]


def test_duplicate_emails_are_refused(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any]
) -> None:
    raw = governed(valid_bu, notification_emails=["a@example.com", "A@example.com"])
    assert errors_of(write_bu, raw) == [
        "governance.notification_emails: email addresses must be unique"
    ]


@pytest.mark.parametrize("threshold", [0, -5, 100.5, 150])
def test_threshold_out_of_range_is_refused(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any], threshold: float
) -> None:
    errors = errors_of(write_bu, governed(valid_bu, alert_thresholds_percent=[50, threshold]))
    assert len(errors) == 1
    assert errors[0].startswith("governance.alert_thresholds_percent.1: ")


@pytest.mark.parametrize("threshold", [0, 101])
def test_action_threshold_out_of_range_is_refused(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any], threshold: float
) -> None:
    raw = governed(valid_bu, budget_action=True, action_threshold_percent=threshold)
    errors = errors_of(write_bu, raw)
    assert len(errors) == 1
    assert errors[0].startswith("governance.action_threshold_percent: ")


@pytest.mark.parametrize(
    ("field", "value"), [("action_threshold_percent", 90), ("action_approval", "manual")]
)
def test_action_settings_without_an_action_are_refused(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any], field: str, value: Any
) -> None:
    errors = errors_of(write_bu, governed(valid_bu, **{field: value}))
    assert errors == [f"governance.{field}: only applies when budget_action is true"]


def test_someone_must_hear_of_the_budget(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any]
) -> None:
    errors = errors_of(write_bu, governed(valid_bu, sns_topic=False))
    assert len(errors) == 1
    assert errors[0].startswith("governance.notification_emails: no one would hear")


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"monthly_limit_usd": 0}, "governance.monthly_limit_usd"),
        ({"alert_thresholds_percent": []}, "governance.alert_thresholds_percent"),
        ({"alert_thresholds_percent": [50, 50]}, "governance.alert_thresholds_percent"),
        ({"log_retention_days": 30}, "governance.log_retention_days"),
        ({"budget": 5}, "governance.budget"),
    ],
)
def test_other_mistakes_name_their_field(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any], section: dict[str, Any], field: str
) -> None:
    errors = errors_of(write_bu, governed(valid_bu, **section))
    assert len(errors) == 1
    assert errors[0].startswith(f"{field}: ")
