"""config.aws_region: flag, then what the pinned botocore reads, then the profile; none is a
typed error that says how to set one. Each case is checked against botocore's own answer."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from core.aws_region import Region, RegionNotSetError, resolve_region


@pytest.fixture(autouse=True)
def no_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No region or profile from the machine running the tests; an empty config file."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return config


def test_the_flag_wins_over_environment_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    region = resolve_region("us-east-1")
    assert region == Region("us-east-1", "--region")
    assert region.describe() == "region us-east-1 (from --region)"
    assert resolve_region("us-east-1", flag="REGION=").source == "REGION="


def test_aws_default_region_is_read_like_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert resolve_region() == Region("eu-west-1", "AWS_DEFAULT_REGION")
    assert boto3.session.Session().region_name == "eu-west-1"


def test_aws_region_alone_is_not_read_and_the_error_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert boto3.session.Session().region_name is None  # the pinned SDK ignores AWS_REGION
    with pytest.raises(RegionNotSetError) as err:
        resolve_region()
    message = str(err.value)
    assert "AWS_REGION=us-west-2 is set, but boto3 reads AWS_DEFAULT_REGION" in message
    assert "export AWS_DEFAULT_REGION=us-west-2" in message
    assert "\n" not in message


def test_the_profiles_region_comes_last(
    monkeypatch: pytest.MonkeyPatch, no_aws_settings: Path
) -> None:
    no_aws_settings.write_text(
        "[default]\nregion = ap-south-1\n[profile dev]\nregion = eu-north-1\n"
    )
    assert resolve_region() == Region("ap-south-1", f"profile default in {no_aws_settings}")
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert resolve_region() == Region("eu-north-1", f"profile dev in {no_aws_settings}")
    assert boto3.session.Session().region_name == "eu-north-1"


def test_no_region_anywhere_says_how_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RegionNotSetError) as err:
        resolve_region(flag="--region")
    message = str(err.value)
    assert message.startswith("no AWS region set: pass --region us-east-1")
    assert "export AWS_DEFAULT_REGION=us-east-1" in message
    assert "aws configure set region us-east-1" in message
    monkeypatch.setenv("AWS_PROFILE", "dev")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    with pytest.raises(RegionNotSetError, match="AWS profile 'dev' is not in /nonexistent/config"):
        resolve_region()
