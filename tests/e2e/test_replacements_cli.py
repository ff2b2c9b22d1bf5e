"""The replacement guard end to end: the real CLI synthesizes two config dirs with `cdk synth`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.loader import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")
def test_cli_catches_a_cidr_change_between_two_config_dirs(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    for directory in (base, head):
        directory.mkdir()
        shutil.copy(CONFIG_DIR / "fraud.yaml", directory / "fraud.yaml")
    raw = yaml.safe_load((head / "fraud.yaml").read_text(encoding="utf-8"))
    raw["network"]["cidr"] = "10.99.0.0/16"
    raw["tags"]["owner"] = "someone-else"  # an in-place change beside it: not reported
    (head / "fraud.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "scripts.replacements", "--base-config", str(base),
         "--head-config", str(head), "--acknowledged", str(tmp_path / "none.yaml")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    stateful = [line for line in result.stdout.splitlines() if line.startswith("STATEFUL: ")]
    assert any("(AWS::EC2::VPC) replaced: create-only CidrBlock" in line for line in stateful)
    assert all(line.startswith("STATEFUL: fraud-network/") for line in stateful)
    assert {"AWS::EC2::VPC", "AWS::EC2::Subnet"} == {
        line.split("(", 1)[1].split(")", 1)[0] for line in stateful
    }
