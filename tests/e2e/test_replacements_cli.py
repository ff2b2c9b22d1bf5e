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
    network = [line for line in stateful if line.startswith("STATEFUL: fraud-network/")]
    assert {"AWS::EC2::VPC", "AWS::EC2::Subnet"} == {
        line.split("(", 1)[1].split(")", 1)[0] for line in network
    }
    # The new VPC reaches the stacks that import it: Studio, HyperPod, its file system and EKS.
    reached = {line.split("/", 1)[0].removeprefix("STATEFUL: ") for line in stateful}
    assert reached == {"fraud-network", "fraud-studio", "fraud-hyperpod"}
    assert any(
        "(AWS::SageMaker::Domain) replaced because NetworkVpc" in line
        and "in fraud-network is replaced (VpcId imports it)" in line
        for line in stateful
    )
    for resource_type in (
        "AWS::SageMaker::UserProfile",
        "AWS::SageMaker::Space",
        "AWS::SageMaker::Cluster",
        "AWS::FSx::FileSystem",
    ):
        assert any(f"({resource_type}) replaced" in line for line in stateful), resource_type
    assert any("(AWS::EKS::Cluster) cannot be updated" in line for line in stateful)
    assert not any("no longer retained" in line for line in stateful)
