"""The chart-staging step: what it would run for a BU, and how it checks the pinned digest."""

from pathlib import Path

import pytest

from config.loader import CONFIG_DIR, load_valid
from scripts.stage_hyperpod_chart import (
    build_commands,
    check_digest,
    create_repository_command,
    main,
    plan_for,
    push_command,
    pushed_digest,
)


@pytest.fixture
def plan():
    (fraud,) = load_valid([CONFIG_DIR / "fraud.yaml"])
    return plan_for(fraud)


def test_plan_pins_commit_version_and_private_registry(plan) -> None:
    assert plan.registry == "111111111111.dkr.ecr.us-east-1.amazonaws.com"
    assert plan.repository == "fraud/hyperpod-helm-chart"
    work = Path("/w")
    commands = build_commands(plan, work)
    assert [
        "git",
        "-C",
        "/w/sagemaker-hyperpod-cli",
        "checkout",
        "--detach",
        plan.commit,
    ] in commands
    assert commands[-1][:2] == ["helm", "package"]
    assert commands[-1][commands[-1].index("--version") + 1] == plan.version
    repo = create_repository_command(plan)
    assert repo[repo.index("--image-tag-mutability") + 1] == "IMMUTABLE"
    assert push_command(plan, work) == [
        "helm",
        "push",
        f"/w/hyperpod-helm-chart-{plan.version}.tgz",
        "oci://111111111111.dkr.ecr.us-east-1.amazonaws.com/fraud",
    ]


def test_digest_is_read_from_helm_push_and_compared(plan) -> None:
    digest = "sha256:" + "1" * 64
    output = f"Pushed: x/fraud/hyperpod-helm-chart:0.1.0\nDigest: {digest}\n"
    assert pushed_digest(output) == digest
    assert check_digest(plan, plan.digest) is None
    problem = check_digest(plan, digest)
    assert problem is not None
    assert f"set hyperpod.dependencies_chart.digest to {digest}" in problem
    with pytest.raises(ValueError, match="no digest"):
        pushed_digest("Error: unauthorized")


def test_dry_run_prints_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bu", "fraud", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for step in (
        "git clone",
        "helm dependency update",
        "helm package",
        "create-repository",
        "helm push",
    ):
        assert f"+ {step}" in out or step in out
