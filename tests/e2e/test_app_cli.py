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


def _clashing_config_dir(tmp_path: Path) -> Path:
    """The example configs with credit's CIDR set to fraud's (same account and region)."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for path in config_files(CONFIG_DIR):
        shutil.copy(path, config_dir / path.name)
    bad = yaml.safe_load((config_dir / "credit.yaml").read_text(encoding="utf-8"))
    bad["network"]["cidr"] = "10.64.0.0/16"
    (config_dir / "credit.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    return config_dir


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")
def test_invalid_config_leaves_cdk_out_untouched(tmp_path: Path) -> None:
    config_dir = _clashing_config_dir(tmp_path)

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


def _synth(*context: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    argv = [str(CDK), "synth", "--quiet", "--output", str(outdir)]
    for item in context:
        argv += ["-c", item]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")
def test_one_bu_synth_builds_only_that_bu_but_validates_every_file(tmp_path: Path) -> None:
    done = _synth("bu=fraud", outdir=tmp_path / "one")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "one").glob("assembly-*")) == ["assembly-fraud"]

    # Another BU's file breaking a cross-file rule still stops a one-BU synth.
    config_dir = _clashing_config_dir(tmp_path)
    done = _synth(f"config_dir={config_dir}", "bu=marketing", outdir=tmp_path / "bad")
    assert done.returncode != 0
    assert "network.cidr: 10.64.0.0/16 overlaps" in done.stderr


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed")
def test_an_unknown_bu_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    done = _synth("bu=fruad", outdir=tmp_path / "out")
    assert done.returncode != 0
    assert "-c bu=fruad: no config for fruad; known: credit, fraud, marketing" in done.stderr
