"""``make replacements``: which stateful resources would a deploy of this change destroy?

Synthesizes the base (a git ref, extracted with ``git archive`` into a temporary directory that
reuses this checkout's .venv and node_modules; or another config directory) and the working
tree, offline, pairs resources by stack and logical ID, and reports every stateful resource that
would be

* removed: its logical ID is gone from the stack (a renamed construct id, purpose or stack),
* replaced: its type changed, a create-only property changed (CloudFormation can only create a
  new one and delete the old), or a create-only property refers to a resource being replaced,
  in its own stack or, through an export (``Fn::ImportValue``), in another one: a new VPC
  replaces its subnets and the Studio domain, HyperPod cluster and file system built on them,
* no longer retained: its DeletionPolicy or UpdateReplacePolicy went from Retain to Delete,
* cannot be updated: a property that updates in place only within one VPC now points into a
  new VPC (an EKS cluster's subnets), so the deploy fails there.

Create-only properties come from the CloudFormation registry schemas that cfn-lint ships, for the
stack's region, plus :data:`scripts.replacement_rules.REPLACING_PROPERTIES` (what AWS's pages say
replaces although the registry does not list it); :mod:`scripts.replacement_plan` works out what
a deploy replaces. "Stateful" is :data:`STATEFUL_TYPES`. Exits 1 on any finding not acknowledged
in ``replacements-acknowledged.yaml`` (see the README's "PR check"), 2 on a usage or synth error
or a base ref that does not exist.

    python -m scripts.replacements --base origin/main
    python -m scripts.replacements --base-config old-config/ --head-config config/
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml
from cfnlint.data import AdditionalSpecs
from cfnlint.helpers import load_resource

from core import cli
from scripts.replacement_plan import Plan, Stack, create_only_properties, retention_drop

__all__ = [
    "STATEFUL_TYPES",
    "Finding",
    "Stack",
    "compare",
    "compare_stack",
    "create_only_properties",
]

ROOT = Path(__file__).resolve().parent.parent
ACK_FILE = ROOT / "replacements-acknowledged.yaml"
MIN_REASON_LENGTH = 40
SHARED_PATHS = (".venv", "node_modules")  # the base worktree reuses this checkout's installs

# Stateful = losing the resource loses data or a running platform. Two sources:
# 1. cfn-lint's own list of data-holding types (data/AdditionalSpecs/StatefulResources.json,
#    the list its rule I3011 uses): buckets, keys, log groups, file systems, databases, ...
# 2. what this platform adds: types whose replacement takes down what runs in them, or whose
#    name other systems use. Chosen by asking "does a new, empty one of these break users?":
PLATFORM_STATEFUL_TYPES = frozenset(
    {
        "AWS::EC2::VPC",  # every subnet, ENI, endpoint and cluster in it goes with it
        "AWS::EC2::Subnet",  # EKS, HyperPod and Studio ENIs live in them
        "AWS::KMS::Alias",  # clients, policies (kms:RequestAlias) and other stacks name keys by it
        "AWS::SageMaker::Domain",  # Studio, and the EFS home volume the domain owns
        "AWS::SageMaker::UserProfile",  # a user's home directory on the domain's EFS
        "AWS::SageMaker::Space",  # a space's EBS storage
        "AWS::EKS::Cluster",  # the HyperPod orchestrator and every workload on it
        "AWS::SageMaker::Cluster",  # HyperPod: running nodes and jobs
        "AWS::SageMaker::MlflowTrackingServer",  # experiment and model-registry metadata
        "AWS::SageMaker::MlflowApp",
        "AWS::SageMaker::ModelPackageGroup",  # registered model versions
        "AWS::ECR::Repository",  # training and serving images
    }
)
STATEFUL_TYPES = (
    frozenset(load_resource(AdditionalSpecs, "StatefulResources.json")["ResourceTypes"])
    | PLATFORM_STATEFUL_TYPES
)


@dataclass(frozen=True)
class Finding:
    stack: str
    logical_id: str
    resource_type: str
    change: str  # "removed", "replaced", "no longer retained" or "cannot be updated"
    reason: str

    @property
    def resource(self) -> str:
        return f"{self.stack}/{self.logical_id}"

    def __str__(self) -> str:
        joint = " " if self.reason.startswith("because ") else ": "
        return f"{self.resource} ({self.resource_type}) {self.change}{joint}{self.reason}"


def _findings(plan: Plan, *, stateful_only: bool) -> list[Finding]:
    findings = []
    for base, head in plan.pairs:
        for logical_id, old in base.resources.items():
            resource_type = str(old.get("Type"))
            if stateful_only and resource_type not in STATEFUL_TYPES:
                continue
            key, new = (base.key, logical_id), head.resources.get(logical_id)
            if new is None:
                kept = old.get("DeletionPolicy") in {"Retain", "RetainExceptOnCreate", "Snapshot"}
                reason = "logical ID no longer in the stack"
                reason += " (DeletionPolicy keeps it, orphaned)" if kept else " (deleted)"
                findings.append(Finding(base.name, logical_id, resource_type, "removed", reason))
                continue
            if key in plan.replaced:
                why = plan.replaced[key].reason
                findings.append(Finding(base.name, logical_id, resource_type, "replaced", why))
            if key in plan.stuck:
                why = plan.stuck[key]
                findings.append(
                    Finding(base.name, logical_id, resource_type, "cannot be updated", why)
                )
            drop = retention_drop(resource_type, old, new)
            if drop:
                findings.append(
                    Finding(base.name, logical_id, resource_type, "no longer retained", drop)
                )
    return findings


def compare_stack(base: Stack, head: Stack, *, stateful_only: bool = True) -> list[Finding]:
    """Stateful resources of ``base`` that deploying ``head`` over it would remove, replace or
    stop retaining (``stateful_only=False``: every resource)."""
    return _findings(Plan([(base, head)]), stateful_only=stateful_only)


def compare(
    base: list[Stack], head: list[Stack], *, stateful_only: bool = True
) -> tuple[list[Finding], list[str]]:
    """Findings over every stack both sides synthesize (a replacement in one reaches the others
    through their imports), and notes on stacks only the base has (``cdk deploy`` never deletes
    a stack the app stopped synthesizing)."""
    heads = {stack.key: stack for stack in head}
    pairs, notes = [], []
    for stack in base:
        if stack.key in heads:
            pairs.append((stack, heads[stack.key]))
        else:
            notes.append(
                f"{stack.name} ({stack.account}/{stack.region}) is no longer synthesized: "
                "cdk deploy leaves it as it is; cdk destroy of the old app would delete it"
            )
    return _findings(Plan(pairs), stateful_only=stateful_only), notes


# --- cloud assemblies -------------------------------------------------------------------------


def read_assembly(outdir: Path) -> list[Stack]:
    """Every stack of a cloud assembly, nested stage assemblies included."""
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    stacks = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "cdk:cloud-assembly":
            stacks += read_assembly(outdir / artifact["properties"]["directoryName"])
        elif artifact["type"] == "aws:cloudformation:stack":
            _, _, env = artifact["environment"].partition("aws://")
            account, _, region = env.partition("/")
            props = artifact["properties"]
            template = json.loads((outdir / props["templateFile"]).read_text(encoding="utf-8"))
            name = props.get("stackName") or artifact.get("displayName", "?")
            resources, outputs = template.get("Resources", {}), template.get("Outputs", {})
            stacks.append(Stack(account, region, name, resources, outputs))
    return stacks


def synthesize(app_dir: Path, outdir: Path, config_dir: Path | None = None) -> list[Stack]:
    """``cdk synth`` offline in ``app_dir``. A gate failure still writes the templates, and the
    gates are ``make synth``'s job, so only a missing assembly is an error here."""
    command = [str(app_dir / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"]
    command += ["--output", str(outdir), "-c", f"lint_cache={ROOT / '.cache' / 'cfn-lint'}"]
    if config_dir is not None:
        command += ["-c", f"config_dir={config_dir.resolve()}"]
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    env.setdefault("CDK_DISABLE_VERSION_CHECK", "true")
    result = subprocess.run(
        command, cwd=app_dir, env=env, capture_output=True, text=True, check=False
    )
    if not (outdir / "manifest.json").exists():
        raise RuntimeError(f"cdk synth in {app_dir} wrote no assembly:\n{result.stderr[-4000:]}")
    return read_assembly(outdir)


class MissingBaseError(RuntimeError):
    """The base ref is not in this repository (a clone without ``origin``, a typo in BASE)."""


def checkout(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (``git archive``: read-only for the repository) under ``into``,
    sharing this checkout's .venv and node_modules."""
    tree = into / "base"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],
        check=False,
        capture_output=True,
    )
    if archive.returncode != 0:
        git_says = " ".join(archive.stderr.decode(errors="replace").split()) or "no message"
        raise MissingBaseError(
            f"base ref {ref!r} not found in {ROOT} (git: {git_says}); pass one that exists: "
            "make replacements BASE=<ref> (a branch, tag or commit; `git fetch origin` first "
            "for origin/main)"
        )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for name in SHARED_PATHS:
        if (ROOT / name).exists():
            (tree / name).symlink_to((ROOT / name).resolve())
    return tree


# --- acknowledgements -------------------------------------------------------------------------


def read_acknowledgements(path: Path) -> dict[str, str]:
    """``resource`` (``<stack name>/<logical ID>``) -> reason; a vague or malformed entry is an
    error, so the file cannot wave a change through without saying why."""
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of {{resource, reason}} entries")
    acknowledged = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != {"resource", "reason"}:
            raise ValueError(f"{path}: entry {i}: needs exactly `resource` and `reason`")
        resource, reason = str(entry["resource"]), str(entry["reason"])
        if "/" not in resource:
            raise ValueError(f"{path}: entry {i}: resource is <stack name>/<logical ID>")
        if len(reason.strip()) < MIN_REASON_LENGTH:
            raise ValueError(f"{path}: {resource}: give a specific reason, not {reason!r}")
        acknowledged[resource] = reason
    return acknowledged


@dataclass(frozen=True)
class ReplacementsArgs:
    """One base (a git ref, a config directory or a synthesized assembly) and at most one head
    (default: this working tree's config/)."""

    base: str | None = field(
        default=None,
        metadata={"metavar": "REF", "help": "git ref to compare the working tree with"},
    )
    base_config: Path | None = field(
        default=None, metadata={"help": "config dir of the base (this code)"}
    )
    base_outdir: Path | None = field(
        default=None, metadata={"help": "an already synthesized base assembly"}
    )
    head_config: Path | None = field(
        default=None, metadata={"help": "config dir of the head (default config/)"}
    )
    head_outdir: Path | None = field(
        default=None, metadata={"help": "an already synthesized head assembly"}
    )
    acknowledged: Path = field(default=ACK_FILE, metadata={"help": "acknowledgements"})
    all: bool = cli.switch("also list replaced or removed stateless resources")

    def __post_init__(self) -> None:
        bases = [self.base, self.base_config, self.base_outdir]
        if sum(b is not None for b in bases) != 1:
            raise ValueError("give exactly one of --base, --base-config, --base-outdir")
        if self.head_config is not None and self.head_outdir is not None:
            raise ValueError("give at most one of --head-config, --head-outdir")


def _both_sides(args: ReplacementsArgs) -> tuple[list[Stack], list[Stack]]:
    with tempfile.TemporaryDirectory(prefix="replacements-") as tmp:
        work = Path(tmp)
        if args.base_outdir:
            base_stacks = read_assembly(args.base_outdir)
        elif args.base_config:
            base_stacks = synthesize(ROOT, work / "base.out", args.base_config)
        else:  # the one base left (ReplacementsArgs checks there is exactly one)
            base_stacks = synthesize(checkout(cast(str, args.base), work), work / "base.out")
        if args.head_outdir:
            head_stacks = read_assembly(args.head_outdir)
        else:
            head_stacks = synthesize(ROOT, work / "head.out", args.head_config)
    return base_stacks, head_stacks


parse_args = cli.args_parser(ReplacementsArgs, __doc__, module="scripts.replacements")


def main(args: ReplacementsArgs) -> int:
    try:
        acknowledged = read_acknowledgements(args.acknowledged)
        base_stacks, head_stacks = _both_sides(args)
    except (RuntimeError, ValueError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", None) or ""  # bytes or text, depending on the call
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        print(f"replacements: {err}{detail and chr(10) + detail.rstrip()}", file=sys.stderr)
        return 2
    findings, notes = compare(base_stacks, head_stacks)
    for note in notes:
        print(f"note: {note}")
    if args.all:
        for finding in compare(base_stacks, head_stacks, stateful_only=False)[0]:
            if finding.resource_type not in STATEFUL_TYPES:
                print(f"stateless: {finding}")
    blocking = [f for f in findings if f.resource not in acknowledged]
    for finding in findings:
        if finding.resource in acknowledged:
            print(f"acknowledged: {finding}\n    reason: {acknowledged[finding.resource]}")
    for finding in blocking:
        print(f"STATEFUL: {finding}")
    stale = sorted(set(acknowledged) - {f.resource for f in findings})
    for resource in stale:
        print(f"note: {args.acknowledged.name} lists {resource}, which this change does not touch")
    compared = len({s.key for s in base_stacks} & {s.key for s in head_stacks})
    if blocking:
        print(
            f"replacements: FAILED, {len(blocking)} finding(s) on stateful resources (removed, "
            f"replaced, no longer retained, cannot be updated) across {compared} stack(s); if "
            f"intended, list each resource in {args.acknowledged.name} with a reason "
            "(README: PR check)"
        )
        return 1
    print(f"replacements: passed ({compared} stack(s), {len(findings)} acknowledged)")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
