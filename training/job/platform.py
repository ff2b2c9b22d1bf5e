"""A BU's published platform values (SSM parameters, names from `core.parameters`), read with
boto3 so a data scientist types `--bu fraud --team nlp` and no cluster-specific name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core import parameters as p
from core.naming import Naming

# SSM GetParameters takes at most 10 names a call.
_BATCH = 10


class PlatformLookupError(RuntimeError):
    """A parameter could not be read; the message names it and the stack that publishes it."""


def _naming(bu: str) -> Naming:
    # Parameter and stack names derive from the BU name alone (Naming.parameter / .stack), so
    # the client needs neither the account nor the region to compute them.
    return Naming(bu=bu, account="", region="")


@dataclass(frozen=True)
class BuPlatform:
    """The values one BU (and optionally one team) published, by contract name."""

    bu: str
    region: str
    team: str | None
    values: Mapping[str, str]

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def team_value(self, name: str) -> str:
        if self.team is None:
            raise PlatformLookupError(f"{name}: a team-scoped value needs --team")
        return self.values[p.team_parameter(name, self.team)]


def read(ssm: Any, bu: str, names: Iterable[str], *, team: str | None = None) -> BuPlatform:
    """Read ``names`` (contract names; team-scoped ones already passed through
    ``team_parameter``) for ``bu`` with one GetParameters call per 10 names."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    naming = _naming(bu)
    wanted = {naming.parameter(n): n for n in dict.fromkeys(names)}
    found: dict[str, str] = {}
    missing: list[str] = []
    full_names = list(wanted)
    region = ssm.meta.region_name
    for start in range(0, len(full_names), _BATCH):
        try:
            response = ssm.get_parameters(Names=full_names[start : start + _BATCH])
        except ClientError as err:
            raise PlatformLookupError(
                f"cannot read the SSM parameters of BU {bu!r} in {region}: "
                f"{err.response['Error'].get('Message', err)} "
                f"({err.response['Error'].get('Code')}); your role needs ssm:GetParameters on "
                f"{naming.parameter('*')}"
            ) from err
        except BotoCoreError as err:
            hint = (
                " (sign in first: aws sso login, aws configure, or AWS_PROFILE)"
                if isinstance(err, NoCredentialsError)
                else ""
            )
            raise PlatformLookupError(
                f"cannot read the SSM parameters of BU {bu!r} in {region}: {err}{hint}"
            ) from err
        for item in response["Parameters"]:
            found[wanted[item["Name"]]] = item["Value"]
        missing += response.get("InvalidParameters", [])
    if missing:
        lines = [
            f"{full} (published by stack {naming.stack(p.publishing_unit(wanted[full]))})"
            for full in sorted(missing)
        ]
        raise PlatformLookupError(
            f"BU {bu!r} has not published {len(lines)} parameter(s) in {region}:\n  "
            + "\n  ".join(lines)
            + "\ndeploy that stack (or check --bu, --team and --region) or pass the value as a flag"
        )
    return BuPlatform(bu=bu, region=region, team=team, values=found)


def hyperpod_names(team: str) -> list[str]:
    """What a HyperPod job of ``team`` needs."""
    return [
        p.EKS_CLUSTER_NAME,
        p.HYPERPOD_CLUSTER_NAME,
        p.TRAINING_IMAGE_URI,
        p.MLFLOW_TRACKING_ARN,
        *(
            p.team_parameter(n, team)
            for n in (p.TEAM_NAMESPACE, p.TEAM_QUEUE, p.TEAM_SERVICE_ACCOUNT, p.TEAM_FSX_CLAIM)
        ),
    ]


# What every job's request reads: its image, role, network and volume key, and the data bucket.
_JOB_NAMES = [
    p.TRAINING_IMAGE_URI,
    p.TRAINING_JOB_ROLE_ARN,
    p.TRAINING_SUBNET_IDS,
    p.TRAINING_SECURITY_GROUP_ID,
    p.TRAINING_VOLUME_KEY_ARN,
    p.DATA_BUCKET,
]
TRAINING_JOB_NAMES = [
    *_JOB_NAMES,
    p.MODELS_BUCKET,
    p.CHECKPOINTS_BUCKET,
    p.MODELS_KEY_ARN,
    p.MLFLOW_TRACKING_ARN,
]
PROCESSING_JOB_NAMES = [
    *_JOB_NAMES,
    p.DATA_KEY_ARN,
    p.MODELS_BUCKET,  # the tokenizer usually sits with the base weights
]


def ssm_client(region: str | None) -> Any:
    import boto3

    return boto3.client("ssm", region_name=region)
