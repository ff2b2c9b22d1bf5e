"""``make push-training-image BU=<bu>``: build training/Dockerfile and push it to the BU's ECR
repository, tagged with the git SHA of a clean checkout (tags are immutable: a SHA names one
image forever). The repository URI is the BU's published ``TRAINING_IMAGE_URI`` parameter.

    python scripts/push_training_image.py --bu fraud [--region us-east-1] [--tag SHA]

Needs Docker and credentials allowed to read that parameter and push to the repository; the
same command runs in the GitHub workflow (.github/workflows/training-image.yml).
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python scripts/push_training_image.py` has scripts/ on the path

from config.naming import Naming  # noqa: E402
from config.parameters import TRAINING_IMAGE_URI  # noqa: E402


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bu", required=True)
    parser.add_argument("--region", help="the BU's region (default: your AWS config)")
    parser.add_argument("--tag", help="default: HEAD's SHA (the checkout must be clean)")
    args = parser.parse_args(argv)

    import boto3

    tag = args.tag
    if not tag:
        if _git("status", "--porcelain"):
            print("error: uncommitted changes: the SHA tag would not describe the image",
                  file=sys.stderr)  # fmt: skip
            return 2
        tag = _git("rev-parse", "HEAD")
    session = boto3.session.Session(region_name=args.region)
    # Parameter names derive from the BU name alone (see training.job.platform).
    name = Naming(bu=args.bu, account="", region="").parameter(TRAINING_IMAGE_URI)
    repository_uri = session.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    registry, _, repository = repository_uri.partition("/")
    ecr = session.client("ecr")
    existing = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])
    if existing["images"]:
        print(f"{repository_uri}:{tag} already exists (immutable tags): nothing to push")
        return 0
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    subprocess.run(
        ["docker", "login", "--username", "AWS", "--password-stdin", registry],
        input=password, text=True, check=True,
    )  # fmt: skip
    image = f"{repository_uri}:{tag}"
    subprocess.run(
        ["docker", "build", "-f", "training/Dockerfile", "-t", image, "."], cwd=ROOT, check=True
    )
    subprocess.run(["docker", "push", image], check=True)
    print(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
