"""The real CLI path: an invalid config stops `cdk synth` before anything is written."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.loader import CONFIG_DIR, config_files

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")
def test_invalid_config_leaves_cdk_out_untouched(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for path in config_files(CONFIG_DIR):
        shutil.copy(path, config_dir / path.name)
    bad = yaml.safe_load((config_dir / "credit.yaml").read_text(encoding="utf-8"))
    bad["network"]["cidr"] = "10.64.0.0/16"  # fraud's CIDR, same account and region
    (config_dir / "credit.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")

    outdir = tmp_path / "cdk.out"
    outdir.mkdir()
    (outdir / "previous-build.txt").write_text("untouched", encoding="utf-8")
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "-c", f"config_dir={config_dir}", "--output", str(outdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    # The later file in sort order carries the error; the line names file and field.
    assert f"{config_dir / 'fraud.yaml'}: network.cidr: 10.64.0.0/16 overlaps" in result.stderr
    assert [p.name for p in outdir.iterdir()] == ["previous-build.txt"]
    assert (outdir / "previous-build.txt").read_text(encoding="utf-8") == "untouched"
