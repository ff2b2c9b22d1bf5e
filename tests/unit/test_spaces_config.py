"""The optional ``hyperpod.spaces`` section: its defaults, and each thing it may ask that the
cluster cannot give, reported as ``file: field.path: reason``."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.bu_configs import add_hyperpod
from harness.config_errors import assert_case_rejected, mistake

from config.hyperpod import SPACES_ADDON_NAMES, spaces_problems
from config.loader import load_all
from config.schema import BusinessUnitConfig

H = "hyperpod"
SPACES: dict[str, Any] = {
    "teams": [{"team": "nlp", "roles": ["ds-nlp"]}, {"team": "vision", "roles": ["ds-vision"]}],
    "default_mig_profile": "1g.18gb",
    "max_mig_profile": "1g.35gb",
}


@pytest.fixture
def bu_with_spaces(valid_bu: dict[str, Any]) -> dict[str, Any]:
    raw = add_hyperpod(valid_bu)
    # A group cut into 1g.35gb slices too, so a default below the maximum can be tested.
    raw[H]["gpu_groups"].append(
        {"name": "mig35", "instance_type": "ml.p5en.48xlarge", "mig": "all-1g.35gb"}
    )
    raw[H]["spaces"] = copy.deepcopy(SPACES)
    return raw


def test_spaces_are_optional(valid_bu: dict[str, Any]) -> None:
    hp = BusinessUnitConfig.model_validate(add_hyperpod(valid_bu)).hyperpod
    assert hp is not None
    assert hp.spaces is None


def test_defaults_pin_both_addons_and_fit_threads_per_core_one(
    bu_with_spaces: dict[str, Any],
) -> None:
    hp = BusinessUnitConfig.model_validate(bu_with_spaces).hyperpod
    assert hp is not None
    spaces = hp.spaces
    assert spaces is not None
    versions = spaces.addons.model_dump()
    assert set(versions) == set(SPACES_ADDON_NAMES)
    assert all(v.startswith("v") and "-eksbuild." in v for v in versions.values())
    assert spaces.apps == ["jupyterlab", "code-editor"]
    # The add-on's public templates ask for 2 vCPUs, which a threadsPerCore 1 node cannot give
    # beside its daemons (DESIGN.md, SageMaker Spaces on HyperPod).
    assert spaces.cpu < 2
    assert spaces.template_names() == [
        "nlp-jupyterlab",
        "nlp-code-editor",
        "vision-jupyterlab",
        "vision-code-editor",
    ]
    assert hp.mig_profiles_within("1g.35gb") == ["1g.18gb", "1g.35gb"]
    assert hp.mig_profiles_within("1g.18gb") == ["1g.18gb"]


SPACES_CASES = [
    mistake(
        "team not in hyperpod.teams",
        f"{H}.spaces.teams.1.team",
        "audio",
        "unknown team 'audio'; teams: nlp, vision",
    ),
    mistake(
        "profile the cluster does not offer",
        f"{H}.spaces.max_mig_profile",
        "3g.71gb",
        "3g.71gb is not offered by any GPU group; the cluster offers 1g.18gb, 1g.35gb",
    ),
    mistake(
        "profile of another GPU",
        f"{H}.spaces.default_mig_profile",
        "1g.10gb",
        "1g.10gb is not offered by any GPU group",
    ),
    mistake(
        "default above the maximum",
        f"{H}.spaces.max_mig_profile",
        "1g.18gb",
        "the default 1g.35gb is larger than max_mig_profile 1g.18gb",
        at=f"{H}.spaces.default_mig_profile",
    ),
    mistake(
        "default without a maximum",
        f"{H}.spaces.max_mig_profile",
        None,
        "a default MIG profile needs max_mig_profile",
    ),
    mistake(
        "admin role as a space user",
        f"{H}.spaces.teams.0.roles",
        ["platform-admin"],
        "platform-admin is in admin_roles",
        at=f"{H}.spaces.teams.0.roles.0",
    ),
    mistake(
        "priority class the scheduler lacks",
        f"{H}.spaces.teams.0.priority_class",
        "interactive",
        "no priority class 'interactive'",
    ),
    mistake(
        "a team twice",
        f"{H}.spaces.teams.1.team",
        "nlp",
        "duplicate team nlp",
        at=f"{H}.spaces.teams",
    ),
    mistake(
        "an unknown app",
        f"{H}.spaces.apps",
        ["rstudio"],
        "Input should be",
        at=f"{H}.spaces.apps.0",
    ),
    mistake("no team", f"{H}.spaces.teams", [], "at least 1 item"),
    mistake("a typo", f"{H}.spaces.idle_minutes", 30, "unknown field"),
    mistake(
        "idle default above the cap",
        f"{H}.spaces.idle_shutdown_default_minutes",
        90,
        "90 is above idle_shutdown_minutes 60, the longest idle timeout a space may set",
    ),
    mistake(
        "idle default too short",
        f"{H}.spaces.idle_shutdown_default_minutes",
        2,
        "greater than or equal to 5",
    ),
    mistake(
        "idle default not minutes",
        f"{H}.spaces.idle_shutdown_default_minutes",
        "an hour",
        "valid integer",
    ),
    mistake(
        "not a version",
        f"{H}.spaces.addons",
        {"sagemaker_spaces": "latest"},
        "an EKS add-on version",
        at=f"{H}.spaces.addons.sagemaker_spaces",
    ),
]


@pytest.mark.parametrize("case", SPACES_CASES)
def test_invalid_spaces_config_names_file_and_field(
    bu_with_spaces: dict[str, Any], write_bu: Callable[..., Path], case: tuple[Any, ...]
) -> None:
    _, field, value, _, _ = case
    if field.endswith(".max_mig_profile") and value == "1g.18gb":
        bu_with_spaces[H]["spaces"]["default_mig_profile"] = "1g.35gb"
    assert_case_rejected(write_bu, bu_with_spaces, case)


def test_the_example_bu_is_valid(bu_with_spaces: dict[str, Any], write_bu) -> None:
    assert load_all([write_bu(bu_with_spaces)])[1] == []


def test_kubernetes_older_than_1_30_is_refused_with_spaces(bu_with_spaces: dict[str, Any]) -> None:
    """The Spaces add-on needs Kubernetes >= 1.30 (DESIGN.md). This platform's supported list
    starts above it today, so the rule is checked on a config that skipped validation."""
    hp = BusinessUnitConfig.model_validate(bu_with_spaces).hyperpod
    assert hp is not None
    old = hp.model_copy(update={"kubernetes_version": "1.29"})
    reasons = {p.path: str(p) for p in spaces_problems(old)}
    assert reasons["kubernetes_version"] == (
        "SageMaker Spaces needs Kubernetes >= 1.30; the cluster runs 1.29"
    )
    assert spaces_problems(hp) == []
    no_spaces = hp.model_copy(update={"spaces": None, "kubernetes_version": "1.29"})
    assert spaces_problems(no_spaces) == []


def test_the_idle_default_is_optional_and_may_equal_the_cap(bu_with_spaces: dict[str, Any]) -> None:
    """No default unless asked (the templates then leave idle shutdown to each space, within the
    cap); a default may be as long as the cap (jupyter-k8s template validation: an enabled
    default must fall within the idleShutdownOverrides bounds,
    docs/source/dive-deeper/webhooks/template-validation.md)."""
    hp = BusinessUnitConfig.model_validate(bu_with_spaces).hyperpod
    assert hp is not None
    assert hp.spaces is not None
    assert hp.spaces.idle_shutdown_default_minutes is None
    bu_with_spaces[H]["spaces"].update(idle_shutdown_minutes=120, idle_shutdown_default_minutes=120)
    hp = BusinessUnitConfig.model_validate(bu_with_spaces).hyperpod
    assert hp is not None
    assert hp.spaces is not None
    assert hp.spaces.idle_shutdown_default_minutes == 120
