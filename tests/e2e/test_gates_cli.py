"""The gates stop the real CDK CLI, not only ``make synth``: a failed validation report makes the
app process exit non-zero, so ``cdk synth`` and ``cdk deploy`` refuse and name the finding once.

Without this, the CLI exits 0: it tells the app to leave reporting to it, then reads the report
only for the stacks a command selects (none for ``cdk synth`` of a Stage-only app), and CDK's own
fallback only sets the exit code of jsii's node process, which the Python app never returns.

The validator rejects every config-only way into these gates we know of, so each case starts
from a config that validates and adds, inside the app process only (a ``sitecustomize`` on
``PYTHONPATH``), the slip that the gate exists for: a validator limit raised past what
CloudFormation takes, an acknowledgement someone deleted.
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"

pytestmark = pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")

# A BU with only the required sections: the network, security and training stacks.
MINIMAL_BU = {
    "name": "gated",
    "account": "222222222222",
    "region": "us-east-1",
    "network": {"cidr": "10.90.0.0/16", "availability_zones": ["us-east-1a", "us-east-1b"]},
    "tags": {"owner": "gate-test", "cost_center": "CC-0"},
}

# The validator's tag budget raised to 100: 55 extra tags then validate, and CloudFormation's
# limit of 50 per resource is left to cfn-lint (E3032).
RAISE_TAG_BUDGET = """
import config.schema
config.schema.MAX_TAGS_PER_RESOURCE = 100
"""
# One acknowledgement dropped: the VPC's default security group finding of the HIPAA pack.
DROP_ACKNOWLEDGEMENT = """
from platform_constructs import gates
_acknowledge_each = gates.acknowledge_each
def _dropping(construct, findings):
    dropped = "HIPAA.Security-VPCDefaultSecurityGroupClosed"
    _acknowledge_each(construct, {k: v for k, v in findings.items() if k != dropped})
gates.acknowledge_each = _dropping
"""


def _run_cli(
    tmp_path: Path, command: list[str], raw: dict[str, Any], hook: str
) -> subprocess.CompletedProcess[str]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "gated.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(hook, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": f"{hooks}{os.pathsep}{ROOT}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)  # deploy must stop at synthesis, before any AWS call
    args = [str(CDK), *command, "-c", f"config_dir={config_dir}", "-c", "lint_cache=off"]
    args += ["--output", str(tmp_path / "cdk.out")]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_a_cfn_lint_error_stops_cdk_deploy(tmp_path: Path) -> None:
    raw = {**MINIMAL_BU, "tags": {**MINIMAL_BU["tags"], "extra": {f"k{i}": "v" for i in range(55)}}}
    deploy = ["deploy", "gated/*", "--require-approval", "never"]
    result = _run_cli(tmp_path, deploy, raw, RAISE_TAG_BUDGET)
    assert result.returncode != 0
    named = [line for line in result.stderr.splitlines() if line.startswith("cfn-lint: E3032 at ")]
    assert named
    assert all("expected maximum item count: 50" in line for line in named)
    assert len(named) == len(set(named))  # each finding printed once
    assert "gates: FAILED" in result.stderr
    # Refused during synthesis: no credential lookup, no CloudFormation call.
    assert "credentials" not in result.stderr.lower()
    assert (tmp_path / "cdk.out" / "validation-report.json").exists()


def test_an_unacknowledged_nag_finding_stops_cdk_synth(tmp_path: Path) -> None:
    result = _run_cli(tmp_path, ["synth", "--quiet"], MINIMAL_BU, DROP_ACKNOWLEDGEMENT)
    assert result.returncode != 0
    named = [line for line in result.stderr.splitlines() if "VPCDefaultSecurityGroupClosed" in line]
    assert named == [
        "HIPAA.Security: HIPAA.Security-VPCDefaultSecurityGroupClosed at "
        "gated/network/Network/Vpc/Resource"
    ]
    assert "gates: FAILED, 1 finding(s)" in result.stderr
    assert "Successfully synthesized" not in result.stdout + result.stderr
