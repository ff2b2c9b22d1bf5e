"""Stage HyperPod's dependencies Helm chart into a BU's private ECR, once, from a machine with
internet access: ``make stage-hyperpod-chart BU=<bu>`` (``VERIFY=1`` only checks what is there).

Deploys then install the chart from that ECR repository by the version pinned in the BU config,
so a closed-network BU never reaches git or a public chart repository. The repository has
immutable tags: once ``<version>`` is pushed, its digest can never change, and this script
compares it with ``hyperpod.dependencies_chart.digest`` in the config (and refuses a mismatch).

Steps (``--dry-run`` prints them): clone aws/sagemaker-hyperpod-cli at the pinned commit,
``helm dependency update`` (the subcharts come from their public repositories, once, here),
``helm package`` at the pinned version, create the ECR repository if missing (immutable tags,
KMS encryption, scan on push), ``helm push``, then check the digest.
"""

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from config.loader import CONFIG_DIR, load_valid
from config.schema import BusinessUnitConfig
from platform_constructs.hyperpod_chart import CHART_NAME
from stacks.hyperpod_stack import chart_repository

SOURCE = "https://github.com/aws/sagemaker-hyperpod-cli.git"
CHART_DIR = "helm_chart/HyperPodHelmChart"
_DIGEST = re.compile(r"Digest:\s*(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Plan:
    registry: str  # <account>.dkr.ecr.<region>.amazonaws.com
    repository: str  # <bu>/hyperpod-helm-chart
    namespace: str  # what `helm push` is given: the repository minus the chart name
    version: str
    digest: str
    commit: str
    region: str


def plan_for(config: BusinessUnitConfig) -> Plan:
    hp = config.hyperpod
    if hp is None:
        raise SystemExit(f"{config.name}: no hyperpod section; nothing to stage")
    repository = chart_repository(config)
    return Plan(
        registry=f"{config.account}.dkr.ecr.{config.region}.amazonaws.com",
        repository=repository,
        namespace=repository.removesuffix(f"/{CHART_NAME}"),
        version=hp.dependencies_chart.version,
        digest=hp.dependencies_chart.digest,
        commit=hp.dependencies_chart.source_commit,
        region=config.region,
    )


def build_commands(plan: Plan, workdir: Path) -> list[list[str]]:
    """Clone, build and package the chart (no AWS calls)."""
    src = workdir / "sagemaker-hyperpod-cli"
    return [
        ["git", "clone", "--filter=blob:none", SOURCE, str(src)],
        ["git", "-C", str(src), "checkout", "--detach", plan.commit],
        ["helm", "dependency", "update", str(src / CHART_DIR)],
        ["helm", "package", str(src / CHART_DIR), "--version", plan.version, "-d", str(workdir)],
    ]


def create_repository_command(plan: Plan) -> list[str]:
    return [
        "aws", "ecr", "create-repository", "--region", plan.region,
        "--repository-name", plan.repository,
        "--image-tag-mutability", "IMMUTABLE",
        "--encryption-configuration", "encryptionType=KMS",
        "--image-scanning-configuration", "scanOnPush=true",
    ]  # fmt: skip


def push_command(plan: Plan, workdir: Path) -> list[str]:
    package = workdir / f"{CHART_NAME}-{plan.version}.tgz"
    return ["helm", "push", str(package), f"oci://{plan.registry}/{plan.namespace}"]


def remote_digest_command(plan: Plan) -> list[str]:
    return [
        "aws", "ecr", "describe-images", "--region", plan.region,
        "--repository-name", plan.repository,
        "--image-ids", f"imageTag={plan.version}",
        "--query", "imageDetails[0].imageDigest", "--output", "text",
    ]  # fmt: skip


def pushed_digest(helm_push_output: str) -> str:
    """The digest ``helm push`` reports (``Digest: sha256:...``)."""
    match = _DIGEST.search(helm_push_output)
    if match is None:
        raise ValueError(f"no digest in helm push output: {helm_push_output!r}")
    return match.group(1)


def check_digest(plan: Plan, actual: str) -> str | None:
    """None when the staged chart is the pinned one, else what to do about it."""
    if actual == plan.digest:
        return None
    return (
        f"{plan.repository}:{plan.version} has digest {actual}, the config pins {plan.digest}; "
        f"if you just staged it, set hyperpod.dependencies_chart.digest to {actual} and commit"
    )


def _run(command: list[str], *, dry_run: bool, capture: bool = False) -> str:
    print("+", shlex.join(command))
    if dry_run:
        return ""
    done = subprocess.run(command, check=True, text=True, capture_output=capture)
    return (done.stdout or "") + (done.stderr or "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bu", required=True, help="business unit (config/<bu>.yaml)")
    parser.add_argument("--verify", action="store_true", help="only compare the ECR digest")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    (config,) = load_valid([CONFIG_DIR / f"{args.bu}.yaml"])
    plan = plan_for(config)
    if not args.verify:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for command in build_commands(plan, workdir):
                _run(command, dry_run=args.dry_run)
            try:
                _run(create_repository_command(plan), dry_run=args.dry_run, capture=True)
            except subprocess.CalledProcessError as err:
                if "RepositoryAlreadyExistsException" not in (err.stderr or ""):
                    raise
            login = f"aws ecr get-login-password --region {plan.region} | helm registry login "
            login += f"--username AWS --password-stdin {plan.registry}"
            _run(["bash", "-o", "pipefail", "-c", login], dry_run=args.dry_run)
            output = _run(push_command(plan, workdir), dry_run=args.dry_run, capture=True)
            if args.dry_run:
                return 0
            print(output)
            problem = check_digest(plan, pushed_digest(output))
    else:
        actual = _run(remote_digest_command(plan), dry_run=args.dry_run, capture=True).strip()
        if args.dry_run:
            return 0
        problem = check_digest(plan, actual)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"ok: {plan.repository}:{plan.version} is {plan.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
