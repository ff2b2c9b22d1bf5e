"""Supply chain of the GitHub workflows: every action pinned to a commit (a tag can be moved to
other code; GitHub's security hardening guide, "Using third-party actions"), and no expression
spliced into a shell line (a workflow input would become shell code in a job that can mint AWS
credentials; same guide, "Understanding the risk of script injections")."""

import re
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))


def _steps(workflow: Path) -> list[dict[str, object]]:
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_every_action_is_pinned_to_a_commit(workflow: Path) -> None:
    uses = [str(step["uses"]) for step in _steps(workflow) if "uses" in step]
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_no_expression_is_spliced_into_a_shell_line(workflow: Path) -> None:
    for step in _steps(workflow):
        assert "${{" not in str(step.get("run", "")), step


def test_the_training_image_builds_on_a_base_pinned_by_digest() -> None:
    """A tag can be moved to other bytes; a digest cannot (the inference image's base is AWS's
    LMI image, named by the SageMaker SDK's table and recorded by digest at CreateModel)."""
    dockerfile = WORKFLOWS[0].parents[2] / "training" / "Dockerfile"
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile.read_text(), flags=re.M)
    assert re.search(r"@sha256:[0-9a-f]{64}$", base), base
