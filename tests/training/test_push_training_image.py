"""`make push-training-image BU=...` (scripts/push_training_image.py) without a region or without
credentials: one line saying what to do, never a botocore traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _push(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script as make runs it, on a machine with no AWS settings but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(
        HOME=str(tmp_path),  # no ~/.aws
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",  # no instance-role lookup over the network
        **env,
    )
    return subprocess.run(
        [sys.executable, "scripts/push_training_image.py", "--bu", "fraud", "--tag", "abc123"],
        check=False, cwd=REPO, env=clean, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "code", "lines"),
    [
        (
            {"AWS_REGION": "us-east-1"},  # what the training README used to export
            2,
            [
                "error: no AWS region set: AWS_REGION=us-east-1 is set, but boto3 reads "
                "AWS_DEFAULT_REGION, not AWS_REGION; pass --region us-east-1, or export "
                "AWS_DEFAULT_REGION=us-east-1, or set one for profile default (aws configure set "
                "region us-east-1) (with make: REGION=<region>)"
            ],
        ),
        (
            {"AWS_DEFAULT_REGION": "us-east-1"},
            1,
            [
                "region us-east-1 (from AWS_DEFAULT_REGION)",
                "error: no AWS credentials to read /fraud/training/image-uri (published by stack "
                "fraud-training): sign in first (aws sso login, aws configure, or "
                "AWS_PROFILE=<profile>), then run this again",
            ],
        ),
    ],
    ids=["no-region", "no-credentials"],
)
def test_missing_region_or_credentials_is_one_line(
    tmp_path: Path, env: dict[str, str], code: int, lines: list[str]
) -> None:
    result = _push(tmp_path, **env)
    assert (result.returncode, result.stderr.splitlines()) == (code, lines), result.stderr
    assert result.stdout == ""
