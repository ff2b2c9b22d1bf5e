"""``make push-training-image BU=<bu>``: build training/Dockerfile and push it to the BU's ECR
repository, tagged with the git SHA of a clean checkout (tags are immutable: a SHA names one
image forever). The repository URI is the BU's published ``TRAINING_IMAGE_URI`` parameter.

    python scripts/push_training_image.py --bu fraud [--region us-east-1] [--tag SHA]

Needs Docker and credentials allowed to read that parameter and push to the repository; the
same command runs in the GitHub workflow (.github/workflows/training-image.yml). The region is
``--region``, else ``AWS_DEFAULT_REGION``, else the profile's (`core.aws_region`); it prints
which. A missing region, missing credentials or a failed step is one line, not a traceback.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python scripts/push_training_image.py` has scripts/ on the path

from core import cli  # noqa: E402
from core.aws_region import RegionNotSetError, region_option, resolve_region  # noqa: E402
from core.naming import Naming  # noqa: E402
from core.parameters import TRAINING_IMAGE_URI, publishing_unit  # noqa: E402


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


class PushError(Exception):
    """A step failed; the message is the one line to print."""


def _aws_call(what: str, call: Callable[[], Any], region: str) -> Any:
    """One AWS call, its failure (no credentials, access denied, missing parameter) one line."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call()
    except NoCredentialsError:
        raise PushError(
            f"no AWS credentials to {what}: sign in first (aws sso login, aws configure, or "
            "AWS_PROFILE=<profile>), then run this again"
        ) from None
    except ClientError as err:
        error = err.response.get("Error", {})
        raise PushError(
            f"cannot {what} in {region}: {error.get('Code')}: {error.get('Message', err)}"
        ) from None
    except BotoCoreError as err:
        raise PushError(f"cannot {what} in {region}: {err}") from None


def _run(command: list[str], **kwargs: Any) -> None:
    try:
        subprocess.run(command, check=True, **kwargs)
    except FileNotFoundError:
        raise PushError(f"{command[0]} is not installed (or not on PATH)") from None
    except subprocess.CalledProcessError as err:
        raise PushError(
            f"{' '.join(command[:2])} failed (exit {err.returncode}); see above"
        ) from None


def push(bu: str, region: str, tag: str) -> str:
    """Build and push the image (unless the tag exists); returns its URI."""
    import boto3

    session = boto3.session.Session(region_name=region)
    # Parameter names derive from the BU name alone (see training.job.platform).
    naming = Naming(bu=bu, account="", region="")
    name = naming.parameter(TRAINING_IMAGE_URI)
    ssm = session.client("ssm")
    response = _aws_call(
        f"read {name} (published by stack {naming.stack(publishing_unit(TRAINING_IMAGE_URI))})",
        lambda: ssm.get_parameter(Name=name),
        region,
    )
    repository_uri = response["Parameter"]["Value"]
    registry, _, repository = repository_uri.partition("/")
    ecr = session.client("ecr")
    image = f"{repository_uri}:{tag}"
    existing = _aws_call(
        f"look up {image}",
        lambda: ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}]),
        region,
    )
    if existing["images"]:
        print(f"{image} already exists (immutable tags): nothing to push")
        return image
    auth = _aws_call("get an ECR login token", ecr.get_authorization_token, region)
    token = auth["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    _run(
        ["docker", "login", "--username", "AWS", "--password-stdin", registry],
        input=password, text=True,
    )  # fmt: skip
    _run(["docker", "build", "-f", "training/Dockerfile", "-t", image, "."], cwd=ROOT)
    _run(["docker", "push", image])
    print(image)
    return image


@dataclass(frozen=True)
class PushArgs:
    bu: str = field(metadata={"help": "business unit (config/<bu>.yaml)"})
    region: str | None = region_option("the BU's")
    tag: str | None = field(
        default=None, metadata={"help": "default: HEAD's SHA (the checkout must be clean)"}
    )


parse_args = cli.args_parser(PushArgs, __doc__, module="scripts.push_training_image")


def main(args: PushArgs) -> int:
    tag = args.tag
    if not tag:
        if _git("status", "--porcelain"):
            print("error: uncommitted changes: the SHA tag would not describe the image",
                  file=sys.stderr)  # fmt: skip
            return 2
        tag = _git("rev-parse", "HEAD")
    try:
        region = resolve_region(args.region)
    except RegionNotSetError as err:
        print(f"error: {err} (with make: REGION=<region>)", file=sys.stderr)
        return 2
    print(region.describe(), file=sys.stderr)
    try:
        push(args.bu, region.name, tag)
    except PushError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
