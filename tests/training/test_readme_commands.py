"""Every `python -m training.*` command in training/README.md's ``bash`` blocks is valid as
written for the example BU: each runs through its real entry point (argument parsing, the BU's
config file, the training configs, the region) with only the work stubbed out, i.e. training,
tokenising, creating AWS jobs and talking to the cluster. The BU, team and region come from the
README's own ``export`` line, and SSM answers with values consistent with that BU."""

from __future__ import annotations

import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from config.loader import CONFIG_DIR, load_file
from core import parameters as p

REPO = Path(__file__).resolve().parents[2]
README = REPO / "training" / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```bash\n(.*?)^```", TEXT, re.DOTALL | re.MULTILINE)


class Reached(Exception):  # noqa: N818 -- a signal, not a failure
    """The command passed its checks and got to the (stubbed) work itself."""


def _statements(block: str) -> list[str]:
    return [s.strip() for s in block.replace("\\\n", " ").splitlines() if s.strip()]


EXPORTS = dict(
    item.split("=", 1)
    for block in BLOCKS
    for line in _statements(block)
    if line.startswith("export ")
    for item in shlex.split(line, comments=True)[1:]
)
BU, TEAM = EXPORTS["BU"], EXPORTS["TEAM"]
CONFIG = load_file(CONFIG_DIR / f"{BU}.yaml")[0]
ACCOUNT, REGION = (CONFIG.account, CONFIG.region) if CONFIG else ("", "")
# What the BU's stacks publish (names from the contract, values shaped like the real ones).
PUBLISHED = {
    p.EKS_CLUSTER_NAME: f"{BU}-eks",
    p.HYPERPOD_CLUSTER_NAME: f"{BU}-hyperpod",
    p.TRAINING_IMAGE_URI: f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{BU}-training",
    p.MLFLOW_TRACKING_ARN: f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/{BU}",
    p.TRAINING_JOB_ROLE_ARN: f"arn:aws:iam::{ACCOUNT}:role/{BU}-training-job-{REGION}",
    p.TRAINING_SUBNET_IDS: "subnet-a,subnet-b",
    p.TRAINING_SECURITY_GROUP_ID: "sg-jobs",
    p.TRAINING_VOLUME_KEY_ARN: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/volume",
    p.DATA_BUCKET: f"{BU}-data-{ACCOUNT}-{REGION}",
    p.MODELS_BUCKET: f"{BU}-models-{ACCOUNT}-{REGION}",
    p.CHECKPOINTS_BUCKET: f"{BU}-checkpoints-{ACCOUNT}-{REGION}",
    p.DATA_KEY_ARN: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/data",
    p.MODELS_KEY_ARN: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/models",
    **{
        p.team_parameter(name, TEAM): value
        for name, value in (
            (p.TEAM_NAMESPACE, f"hyperpod-ns-{TEAM}"),
            (p.TEAM_QUEUE, f"hyperpod-ns-{TEAM}-localqueue"),
            (p.TEAM_SERVICE_ACCOUNT, f"{TEAM}-trainer"),
            (p.TEAM_FSX_CLAIM, "fsx-claim"),
        )
    },
}
# The shell variables the README sets from `$(aws ssm ...)` / `$(git ...)`, as those would.
ASSIGNED = {
    "DATA": PUBLISHED[p.DATA_BUCKET],
    "MODELS": PUBLISHED[p.MODELS_BUCKET],
    "CHECKPOINTS": PUBLISHED[p.CHECKPOINTS_BUCKET],
    "TAG": "0123456789abcdef0123456789abcdef01234567",
}


@dataclass(frozen=True)
class Command:
    line: str  # as documented, continuation lines joined
    module: str  # training.job
    argv: list[str]  # after `-m training.job`, variables expanded, redirections dropped


def _expand(line: str) -> str:
    variables = {**EXPORTS, **ASSIGNED}
    return re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], line)


def _documented() -> list[Command]:
    found = []
    for block in BLOCKS:
        for line in _statements(block):
            words = shlex.split(_expand(line), comments=True)
            for stop in (">", "|"):
                words = words[: words.index(stop)] if stop in words else words
            if "-m" in words and words[words.index("-m") + 1].startswith("training."):
                at = words.index("-m") + 1
                found.append(Command(line, words[at], words[at + 1 :]))
    return found


COMMANDS = _documented()


def test_the_readme_names_a_configured_bu_team_and_region_boto3_reads() -> None:
    assert CONFIG is not None, f"config/{BU}.yaml is missing or invalid"
    assert CONFIG.hyperpod is not None
    assert TEAM in [t.name for t in CONFIG.hyperpod.teams]
    assert EXPORTS.get("AWS_DEFAULT_REGION") == CONFIG.region  # boto3 1.44 ignores AWS_REGION
    assert re.findall(r"^(\w+)=\$\(", "\n".join(BLOCKS), re.MULTILINE) == list(ASSIGNED)
    modules = {c.module for c in COMMANDS}
    assert modules == {*REACHES, "training.job"}, (
        "a documented module not run here (or the reverse)"
    )
    job = {c.argv[0] for c in COMMANDS if c.module == "training.job"}
    assert job == {"render", "submit", "status", "logs", "cancel"}


class _Ssm:
    """GetParameters over `PUBLISHED`, in the region the command resolved."""

    def __init__(self, region: str) -> None:
        self.meta = SimpleNamespace(region_name=region)

    def get_parameters(self, Names: list[str]) -> dict[str, Any]:  # noqa: N803 -- boto3's name
        prefix = f"/{BU}/"
        found = [n for n in Names if n.removeprefix(prefix) in PUBLISHED]
        return {
            "Parameters": [
                {"Name": n, "Type": "String", "Value": PUBLISHED[n.removeprefix(prefix)]}
                for n in found
            ],
            "InvalidParameters": [n for n in Names if n not in found],
        }


class _SageMaker:
    """Create calls checked by botocore against the API model (Stubber), then answered."""

    def __init__(self, region: str) -> None:
        self._client = boto3.client(
            "sagemaker", region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
        )

    def _create(self, operation: str, key: str, params: dict[str, Any]) -> Any:
        with Stubber(self._client) as stubber:
            stubber.add_response(operation, {key: f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:job/x"})
            return getattr(self._client, operation)(**params)

    def create_training_job(self, **params: Any) -> Any:
        return self._create("create_training_job", "TrainingJobArn", params)

    def create_processing_job(self, **params: Any) -> Any:
        return self._create("create_processing_job", "ProcessingJobArn", params)


def _reached(*_: Any, **__: Any) -> Any:
    raise Reached


# Each command's last step before real work, replaced so the test stops there (Reached).
REACHES = {
    "training.bfcl": "main",
    "training.prepare": "main",
    "training.train": "main",
    "training.export": "main",
    "training.evaluate": "main",
    "training.tiny": "save_tiny",
    "training.synthetic": "generate",
}


# Commands whose `main(args)` returns a report: `cli(argv)` turns it into the exit code.
REPORTING = {
    "training.bfcl",
    "training.prepare",
    "training.train",
    "training.export",
    "training.evaluate",
}


def _run(monkeypatch: pytest.MonkeyPatch, module_name: str, argv: list[str]) -> int:
    """The command as `python -m` runs it, with AWS and the cluster stubbed: `cli(argv)` where
    the module's `main` returns a report, else `main(parse_args(argv))`."""
    from training.job import cli, managed, platform
    from training.loop import checkpoint

    monkeypatch.setattr(platform, "ssm_client", _Ssm)
    monkeypatch.setattr(managed, "sagemaker_client", _SageMaker)
    monkeypatch.setattr(checkpoint, "latest", lambda root: f"{root}/step-000300")  # --run-dir
    if module_name == "training.job":
        monkeypatch.setattr(cli, "_cluster", _reached)
        return cli.main(cli.parse_args(argv))
    module = importlib.import_module(module_name)
    monkeypatch.setattr(module, REACHES[module_name], _reached)
    if module_name in REPORTING:
        return int(module.cli(argv))
    return int(module.main(module.parse_args(argv)))


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.module} {c.argv[0]}" for c in COMMANDS])
def test_each_documented_command_passes_its_checks(
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))  # not this machine's
    for name, value in EXPORTS.items():  # what the README tells the user to export
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(REPO)  # relative config paths, as in a checkout
    try:
        code = _run(monkeypatch, command.module, command.argv)
    except Reached:
        code = 0
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 0, f"{command.line}\n{err}"
    assert "warning" not in err, f"{command.line}\n{err}"  # e.g. an unvalidated --config


def test_the_top_level_readme_names_teams_and_slices_its_bus_have() -> None:
    """The project README shows `training.job` too; its BU, team and MIG slice must exist."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for bu, team in re.findall(r"training\.job \w+ --bu (\w+) --team (\w+)", text):
        config = load_file(CONFIG_DIR / f"{bu}.yaml")[0]
        assert config is not None
        assert config.hyperpod is not None
        assert team in {t.name for t in config.hyperpod.teams}, (bu, team)
    offered = {
        profile
        for path in sorted(CONFIG_DIR.glob("*.yaml"))
        if (config := load_file(path)[0]) is not None and config.hyperpod is not None
        for group in config.hyperpod.gpu_groups
        for profile in group.slices_per_gpu()
    }
    for profile in re.findall(r"--mig-profile (\S+?)`", text):
        assert profile in offered, profile
