"""Stage HyperPod's dependencies chart and the public images it needs into a BU's private ECR,
once, from a machine with internet access: ``make stage-hyperpod-chart BU=<bu>`` (``VERIFY=1``
only checks what is there, ``DRY_RUN=1`` prints the commands and the chart's values).

A closed-network BU installs the chart from its own ECR at deploy time, by the version and
digest its config pins, and its nodes pull only from that ECR and from AWS's registries. So
staging refuses to finish in a state that would fail at deploy:

0. check the tools (git, skopeo, aws; Helm comes from the CDK's kubectl layer) and that the AWS
   credentials are the BU account's.
1. build: clone aws/sagemaker-hyperpod-cli at ``hyperpod.dependencies_chart.source_commit``;
   ``helm dependency update`` the gpu-operator wrapper chart first (Helm packages ``file://``
   subcharts as they are, so NVIDIA's chart would be missing and the operator silently absent),
   then the top-level chart (which also replaces a stale committed subchart archive);
   ``helm package`` at the pinned version.
2. render it as the deploy will (``helm template`` with this BU's values, the kubectl layer's
   Helm) and refuse any image outside the BU's ECR and the AWS registries its nodes may pull
   from; with MIG, the render must hold exactly one ClusterPolicy.
3. mirror the chart's public images into ``<bu>/hyperpod-mirror/<name>`` with ``skopeo``.
4. push the chart and compare its digest with the config's pin.

Every repository has immutable tags: a tag already there is kept, so a rerun only adds what is
missing (a new chart build needs a new ``hyperpod.dependencies_chart.version``).
"""

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from config.aws_registries import node_image_accounts, registry_host
from config.loader import CONFIG_DIR, ConfigInvalidError, config_files, load_valid
from config.schema import BusinessUnitConfig
from core import cli
from platform_constructs.hyperpod_chart import (
    CHART_NAME,
    CHART_NAMESPACE,
    CHART_RELEASE,
    MirroredImage,
    mirrored_images,
)
from platform_constructs.hyperpod_spaces import SPACES_IMAGE_NAME, SPACES_IMAGE_SOURCE
from scripts.chart_images import documents, foreign_images, kind_count, rendered_images
from scripts.kubectl_layer import LayerError, helm_path, layer_helm
from stacks.hyperpod_stack import bu_chart_values, chart_repository

SOURCE = "https://github.com/aws/sagemaker-hyperpod-cli.git"
CHART_DIR = "helm_chart/HyperPodHelmChart"
GPU_OPERATOR_DIR = f"{CHART_DIR}/charts/gpu-operator"
INSTALL = {
    "git": "git",
    "skopeo": "skopeo (https://github.com/containers/skopeo/blob/main/install.md)",
    "aws": "the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/"
    "getting-started-install.html)",
}
NOT_FOUND = ("ImageNotFoundException", "RepositoryNotFoundException")


class StageError(Exception):
    """A problem the user must fix; ``main`` prints it instead of a traceback."""


class CommandError(StageError):
    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.stderr = stderr
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        detail = " | ".join(lines[-5:]) or "no error output"
        super().__init__(f"`{shlex.join(command)}` failed (exit {returncode}): {detail}")


class Runner(Protocol):
    """Runs one command and returns its stdout, or raises :class:`CommandError` (tests pass a
    fake with canned outputs)."""

    def __call__(self, command: Sequence[str], *, stdin: str | None = None) -> str: ...


def run_command(command: Sequence[str], *, stdin: str | None = None) -> str:
    """Output is captured, so a failure can name the tool's own error message."""
    try:
        done = subprocess.run(
            list(command), input=stdin, text=True, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise CommandError(command, 127, f"{command[0]}: command not found") from None
    if done.returncode != 0:
        raise CommandError(command, done.returncode, done.stderr or done.stdout)
    return done.stdout


@dataclass(frozen=True)
class Plan:
    bu: str
    account: str
    region: str
    registry: str  # <account>.dkr.ecr.<region>.amazonaws.com
    repository: str  # <bu>/hyperpod-helm-chart
    namespace: str  # what `helm push` is given: the repository minus the chart name
    version: str
    digest: str
    commit: str
    kubernetes_version: str
    mig: bool
    hyperpod_inference: bool
    spaces_tag: str | None = None  # SageMaker Distribution's tag when the BU runs Spaces

    @property
    def values(self) -> dict[str, Any]:
        """Exactly what the deploy passes to the chart (its digest key aside, unused by
        templates)."""
        return bu_chart_values(bu=self.bu, account=self.account, region=self.region, mig=self.mig)

    @property
    def images(self) -> list[MirroredImage]:
        """The chart's mirrored images, and the Spaces templates' image when the BU runs
        Spaces (public ECR, which a closed BU cannot reach)."""
        images = mirrored_images(mig=self.mig)
        if self.spaces_tag is not None:
            images.append(
                MirroredImage(SPACES_IMAGE_NAME, SPACES_IMAGE_SOURCE, self.spaces_tag, (), "always")
            )
        return images

    @property
    def aws_accounts(self) -> dict[str, str]:
        return node_image_accounts(
            self.region, mig=self.mig, hyperpod_inference=self.hyperpod_inference
        )

    @property
    def allowed_prefixes(self) -> list[str]:
        """The BU's own repositories, then the AWS registries its nodes may pull from."""
        hosts = [registry_host(account, self.region) for account in self.aws_accounts]
        return [f"{self.registry}/{self.bu}/", *(f"{host}/" for host in hosts)]

    def mirror(self, image: MirroredImage) -> str:
        return f"{self.registry}/{image.mirror_repository(self.bu)}"


def plan_for(config: BusinessUnitConfig) -> Plan:
    hp = config.hyperpod
    if hp is None:
        raise StageError(f"BU {config.name!r} has no hyperpod section: nothing to stage")
    repository = chart_repository(config)
    return Plan(
        bu=config.name,
        account=config.account,
        region=config.region,
        registry=registry_host(config.account, config.region),
        repository=repository,
        namespace=repository.removesuffix(f"/{CHART_NAME}"),
        version=hp.dependencies_chart.version,
        digest=hp.dependencies_chart.digest,
        commit=hp.dependencies_chart.source_commit,
        kubernetes_version=hp.kubernetes_version,
        mig=any(group.mig_label for group in hp.gpu_groups),
        hyperpod_inference=config.endpoints is not None and bool(config.endpoints.on("hyperpod")),
        spaces_tag=hp.spaces.image_tag if hp.spaces is not None else None,
    )


def load_bu(bu: str) -> BusinessUnitConfig:
    path = CONFIG_DIR / f"{bu}.yaml"
    try:
        (config,) = load_valid([path])
    except ConfigInvalidError as err:
        known = ", ".join(p.stem for p in config_files())
        hint = "" if path.is_file() else f" (known BUs: {known})"
        raise StageError("; ".join(str(e) for e in err.errors) + hint) from None
    return config


# --- the commands (pure: the dry run prints them, the run executes them) ---------------------


def build_commands(plan: Plan, workdir: Path, helm: Path) -> list[list[str]]:
    """Clone, fetch the subcharts (the gpu-operator wrapper's first), package."""
    src = workdir / "sagemaker-hyperpod-cli"
    return [
        ["git", "clone", "--filter=blob:none", SOURCE, str(src)],
        ["git", "-C", str(src), "checkout", "--detach", plan.commit],
        [str(helm), "dependency", "update", str(src / GPU_OPERATOR_DIR)],
        [str(helm), "dependency", "update", str(src / CHART_DIR)],
        [str(helm), "package", str(src / CHART_DIR), "--version", plan.version, "-d", str(workdir)],
    ]


def package_path(plan: Plan, workdir: Path) -> Path:
    return workdir / f"{CHART_NAME}-{plan.version}.tgz"


def render_command(plan: Plan, package: Path, values_file: Path, helm: Path) -> list[str]:
    return [
        str(helm), "template", CHART_RELEASE, str(package),
        "--namespace", CHART_NAMESPACE, "--values", str(values_file),
        "--kube-version", plan.kubernetes_version,
    ]  # fmt: skip


def caller_account_command(plan: Plan) -> list[str]:
    return [
        "aws", "sts", "get-caller-identity", "--region", plan.region,
        "--query", "Account", "--output", "text",
    ]  # fmt: skip


def password_command(plan: Plan) -> list[str]:
    return ["aws", "ecr", "get-login-password", "--region", plan.region]


def login_commands(plan: Plan, helm: Path) -> list[list[str]]:
    """Each reads the password from stdin (never from the command line)."""
    return [
        ["skopeo", "login", "--username", "AWS", "--password-stdin", plan.registry],
        [str(helm), "registry", "login", "--username", "AWS", "--password-stdin", plan.registry],
    ]


def piped(plan: Plan, login: Sequence[str]) -> str:
    """How a login is shown: the password's command piped into it."""
    return f"{shlex.join(password_command(plan))} | {shlex.join(login)}"


def create_repository_command(plan: Plan, repository: str) -> list[str]:
    return [
        "aws", "ecr", "create-repository", "--region", plan.region,
        "--repository-name", repository,
        "--image-tag-mutability", "IMMUTABLE",
        "--encryption-configuration", "encryptionType=KMS",
        "--image-scanning-configuration", "scanOnPush=true",
    ]  # fmt: skip


def digest_command(plan: Plan, repository: str, tag: str) -> list[str]:
    return [
        "aws", "ecr", "describe-images", "--region", plan.region,
        "--repository-name", repository, "--image-ids", f"imageTag={tag}",
        "--query", "imageDetails[0].imageDigest", "--output", "text",
    ]  # fmt: skip


def source_digest_command(image: MirroredImage) -> list[str]:
    return ["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{image.source}:{image.tag}"]


def copy_command(plan: Plan, image: MirroredImage) -> list[str]:
    """``--all`` copies the multi-arch index and every platform's manifest byte for byte, so
    the mirror keeps the source's digests; ``docker pull``/``push`` would keep one platform
    and push a manifest of its own (another digest), and needs a Docker daemon."""
    return [
        "skopeo", "copy", "--all",
        f"docker://{image.source}:{image.tag}",
        f"docker://{plan.mirror(image)}:{image.tag}",
    ]  # fmt: skip


def mirror_commands(plan: Plan, image: MirroredImage) -> list[list[str]]:
    """What mirroring one image may run, in order (the copy only when the tag is missing)."""
    repository = image.mirror_repository(plan.bu)
    return [
        create_repository_command(plan, repository),
        source_digest_command(image),
        digest_command(plan, repository, image.tag),
        copy_command(plan, image),
        digest_command(plan, repository, image.tag),
    ]


def push_command(plan: Plan, package: Path, helm: Path) -> list[str]:
    return [str(helm), "push", str(package), f"oci://{plan.registry}/{plan.namespace}"]


def planned_commands(plan: Plan, workdir: Path, helm: Path, *, verify: bool) -> list[str]:
    """Every command a run would print, as shell lines (the dry run)."""
    if verify:
        lines = [caller_account_command(plan), digest_command(plan, plan.repository, plan.version)]
        lines += [digest_command(plan, i.mirror_repository(plan.bu), i.tag) for i in plan.images]
        return [shlex.join(line) for line in lines]
    package = package_path(plan, workdir)
    lines = [caller_account_command(plan), *build_commands(plan, workdir, helm)]
    lines.append(render_command(plan, package, workdir / "values.json", helm))
    shown = [shlex.join(line) for line in lines]
    shown += [piped(plan, login) for login in login_commands(plan, helm)]
    for image in plan.images:
        shown += [shlex.join(line) for line in mirror_commands(plan, image)]
    shown += [
        shlex.join(line)
        for line in (
            create_repository_command(plan, plan.repository),
            digest_command(plan, plan.repository, plan.version),
            push_command(plan, package, helm),
            digest_command(plan, plan.repository, plan.version),
        )
    ]
    return shown


# --- the steps -------------------------------------------------------------------------------


def _do(run: Runner, command: Sequence[str]) -> str:
    print("+", shlex.join(command), flush=True)
    return run(command)


def missing_tools(tools: Sequence[str]) -> str | None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return None
    return "missing on PATH: " + "; ".join(f"{tool}: install {INSTALL[tool]}" for tool in missing)


def check_credentials(run: Runner, plan: Plan) -> None:
    """Fails early, with the AWS CLI's own words, before minutes of cloning; and refuses
    credentials of another account (``create-repository`` would create it there)."""
    try:
        account = _do(run, caller_account_command(plan)).strip()
    except CommandError as err:
        raise StageError(f"no usable AWS credentials: {err}") from None
    if account != plan.account:
        raise StageError(
            f"the AWS credentials are for account {account}, BU {plan.bu!r} is in "
            f"{plan.account}: use that account's credentials (AWS_PROFILE)"
        )


def image_digest(run: Runner, plan: Plan, repository: str, tag: str) -> str | None:
    """The digest ECR holds for ``repository:tag``, None when the tag or repository is missing."""
    try:
        digest = _do(run, digest_command(plan, repository, tag)).strip()
    except CommandError as err:
        if any(code in err.stderr for code in NOT_FOUND):
            return None
        raise
    return digest if digest.startswith("sha256:") else None


def ensure_repository(run: Runner, plan: Plan, repository: str) -> None:
    try:
        _do(run, create_repository_command(plan, repository))
    except CommandError as err:
        if "RepositoryAlreadyExistsException" not in err.stderr:
            raise


def render_problems(plan: Plan, manifests: str) -> list[str]:
    """One line per image this BU's nodes could not pull, and a missing GPU operator."""
    docs = documents(manifests)
    problems = [
        f"{use.component}: {use.image}"
        for use in foreign_images(rendered_images(docs), plan.allowed_prefixes)
    ]
    policies = kind_count(docs, "ClusterPolicy")
    if plan.mig and policies != 1:
        problems.append(
            f"the render has {policies} ClusterPolicy objects, MIG needs exactly 1 (is "
            f"{GPU_OPERATOR_DIR}'s NVIDIA dependency in the package?)"
        )
    return problems


def build_and_check(run: Runner, plan: Plan, workdir: Path, helm: Path) -> Path:
    """The packaged chart, once its render passes :func:`render_problems`."""
    for command in build_commands(plan, workdir, helm):
        _do(run, command)
    package = package_path(plan, workdir)
    values_file = workdir / "values.json"
    values_file.write_text(json.dumps(plan.values, indent=2), encoding="utf-8")
    manifests = _do(run, render_command(plan, package, values_file, helm))
    problems = render_problems(plan, manifests)
    if problems:
        allowed = ", ".join(plan.allowed_prefixes)
        raise StageError(
            f"the chart at {plan.commit[:12]} would not deploy in a closed network; "
            f"images must start with one of {allowed}:\n  " + "\n  ".join(problems)
        )
    return package


def login(run: Runner, plan: Plan, helm: Path) -> None:
    password = run(password_command(plan))
    for command in login_commands(plan, helm):
        print("+", piped(plan, command), flush=True)
        run(command, stdin=password)


@dataclass(frozen=True)
class Mirrored:
    image: MirroredImage
    target: str  # <registry>/<bu>/hyperpod-mirror/<name>:<tag>
    source_digest: str
    mirror_digest: str
    copied: bool  # False: the (immutable) tag was already there


def mirror_image(run: Runner, plan: Plan, image: MirroredImage) -> Mirrored:
    """Copies one image unless its tag is already in the BU's repository."""
    repository = image.mirror_repository(plan.bu)
    ensure_repository(run, plan, repository)
    source = _do(run, source_digest_command(image)).strip()
    existing = image_digest(run, plan, repository, image.tag)
    copied = existing is None
    if copied:
        _do(run, copy_command(plan, image))
        existing = image_digest(run, plan, repository, image.tag)
    if existing is None:
        raise StageError(f"skopeo copied {image.source}:{image.tag}, ECR has no {repository}")
    return Mirrored(image, f"{plan.mirror(image)}:{image.tag}", source, existing, copied)


def push_chart(run: Runner, plan: Plan, package: Path, helm: Path) -> str:
    """The digest ECR holds for the chart: pushed now, or kept (tags are immutable)."""
    ensure_repository(run, plan, plan.repository)
    existing = image_digest(run, plan, plan.repository, plan.version)
    if existing is not None:
        print(f"{plan.repository}:{plan.version} is already staged; tags are immutable, kept")
        return existing
    _do(run, push_command(plan, package, helm))
    pushed = image_digest(run, plan, plan.repository, plan.version)
    if pushed is None:
        raise StageError(f"helm push succeeded but ECR has no {plan.repository}:{plan.version}")
    return pushed


def check_digest(plan: Plan, actual: str) -> str | None:
    """None when the staged chart is the pinned one, else what to do about it."""
    if actual == plan.digest:
        return None
    return (
        f"{plan.repository}:{plan.version} has digest {actual}, the config pins {plan.digest}; "
        f"if you just staged it, set hyperpod.dependencies_chart.digest to {actual} and commit"
    )


def mirror_table(rows: Sequence[Mirrored]) -> str:
    """Image, mirror, source digest, and a note when ECR's copy has another digest."""

    def status(row: Mirrored) -> str:
        done = "copied" if row.copied else "already there"
        same = row.mirror_digest == row.source_digest
        return done if same else f"{done}, ECR has {row.mirror_digest}"

    lines = [("image", "mirror", "source digest", "status")]
    lines += [(r.image.name, r.target, r.source_digest, status(r)) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(line[:3], widths, strict=True)), line[3]])
        for line in lines
    )


def stage(run: Runner, plan: Plan, helm: Path) -> int:
    check_credentials(run, plan)
    with tempfile.TemporaryDirectory(prefix="stage-hyperpod-chart-") as tmp:
        workdir = Path(tmp)
        package = build_and_check(run, plan, workdir, helm)
        login(run, plan, helm)
        mirrored = [mirror_image(run, plan, image) for image in plan.images]
        digest = push_chart(run, plan, package, helm)
    print(mirror_table(mirrored))
    problem = check_digest(plan, digest)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"ok: {plan.repository}:{plan.version} is {plan.digest}; {len(mirrored)} images mirrored")
    return 0


def verify(run: Runner, plan: Plan) -> int:
    """Reads only: the chart tag at the pinned digest, and every mirrored image's tag."""
    check_credentials(run, plan)
    problems: list[str] = []
    chart = image_digest(run, plan, plan.repository, plan.version)
    if chart is None:
        problems.append(f"missing: chart {plan.repository}:{plan.version}")
    elif mismatch := check_digest(plan, chart):
        problems.append(mismatch)
    for image in plan.images:
        if image_digest(run, plan, image.mirror_repository(plan.bu), image.tag) is None:
            problems.append(
                f"missing: {plan.mirror(image)}:{image.tag} (mirror of {image.source}:{image.tag})"
            )
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"run `make stage-hyperpod-chart BU={plan.bu}`", file=sys.stderr)
        return 1
    print(
        f"ok: {plan.repository}:{plan.version} is {plan.digest}; "
        f"{len(plan.images)} mirrored images present"
    )
    return 0


def dry_run(plan: Plan, *, verify: bool) -> int:
    workdir = Path(tempfile.gettempdir()) / "stage-hyperpod-chart-XXXX"
    for line in planned_commands(plan, workdir, helm_path(), verify=verify):
        print("+", line)
    if not verify:
        print(f"# {workdir / 'values.json'}:")
        print(json.dumps(plan.values, indent=2))
    return 0


@dataclass(frozen=True)
class StageArgs:
    """``python -m scripts.stage_hyperpod_chart``'s options."""

    bu: str = field(metadata={"help": "business unit (config/<bu>.yaml)"})
    verify: bool = cli.switch("only check the chart and the mirrored images")
    dry_run: bool = cli.switch("print the commands only")


parse_args = cli.args_parser(StageArgs, __doc__, module="scripts.stage_hyperpod_chart")


def main(args: StageArgs, *, run: Runner = run_command, helm: Path | None = None) -> int:
    """``run`` and ``helm`` replace the real subprocess runner and the layer's helm (tests)."""
    try:
        plan = plan_for(load_bu(args.bu))
        if args.dry_run:
            return dry_run(plan, verify=args.verify)
        tools = ["aws"] if args.verify else ["git", "skopeo", "aws"]
        if problem := missing_tools(tools):
            raise StageError(problem)
        if args.verify:
            return verify(run, plan)
        return stage(run, plan, helm or layer_helm())
    except (StageError, LayerError) as err:
        print(f"stage-hyperpod-chart: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
