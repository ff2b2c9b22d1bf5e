"""`python -m training.job {render,submit,status,logs,cancel}`: a training job's whole life.

    python -m training.job submit --bu fraud --team scoring --name qwen3-lora --nodes 2 \\
        --config /fsx/configs/qwen3-4b-lora.yaml \\
        --config-file training/configs/qwen3-4b-lora.yaml   # HyperPod, through your kubeconfig
    python -m training.job status --bu fraud --team scoring --name qwen3-lora
    python -m training.job logs   --bu fraud --team scoring --name qwen3-lora   # follows rank 0
    python -m training.job submit --backend training-job --bu fraud --name qwen3-lora \\
        --config training/configs/qwen3-4b-lora.yaml --data s3://... --base-model s3://...

With ``--bu`` (and ``--team`` for HyperPod) every cluster-specific value (EKS cluster, team
namespace and queue, service account, FSx claim, MLflow ARN, image, role, subnets, keys) comes
from the BU's SSM parameters; a flag given explicitly wins. The BU's config file
(``config/<bu>.yaml``) is checked first, offline: the team must be one of its teams, and the
job's node selector names an instance type of its GPU groups that offers the GPUs or the MIG
profile asked for. Every HyperPod job is validated against the training operator's schema
before it leaves the machine, and so is its training config (``--config-file``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from core import parameters as p
from core.aws_region import RegionNotSetError, region_help, region_option, resolve_region
from core.cli import HelpFormatter, add_arguments, command_parser
from training.job import crd, managed, placement, platform
from training.job.cluster import ClusterError, HyperPodCluster, connect
from training.job.manifest import KIND, JobSpec, JobSpecError, build_manifest, node_selector

COMMANDS = ("render", "submit", "status", "logs", "cancel")
BACKENDS = ("hyperpod", "training-job")
# JobSpec fields a BU/team parameter fills when the flag is not given.
_FILLED = ("image", "namespace", "queue", "service_account", "fsx_claim")
# JobSpec fields derived when the flag is not given (training.job.placement).
_DERIVED = ("instance_type",)
USAGE_ERROR, RUNTIME_ERROR = 2, 1


@dataclass(frozen=True)
class ManagedOptions:
    """Training Job settings (``--backend training-job``); ``--nodes`` is the instance count."""

    data: str = field(default="", metadata={"help": "train channel: s3:// prefix of prepared data"})
    base_model: str = field(
        default="", metadata={"help": "model channel: s3:// prefix of the HF weights to tune"}
    )
    eval_data: str = field(default="", metadata={"help": "optional eval channel (s3:// prefix)"})
    spot: bool = field(default=False, metadata={"help": "managed spot training (checkpointed)"})
    max_run_hours: float = field(default=24.0, metadata={"help": "stopping condition"})
    max_wait_hours: float = field(default=48.0, metadata={"help": "spot: waiting plus running"})
    volume_gb: int = field(default=500, metadata={"help": "ML storage volume per instance"})


@dataclass(frozen=True, kw_only=True)
class Where:
    """Where a job runs: the BU (and team) whose published values fill the rest, or explicit
    flags (``where`` in ``--help``)."""

    bu: str | None = None
    team: str | None = None
    region: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobRef(Where):
    """``status``, ``logs`` and ``cancel``: one job by name (namespace: the team's)."""

    name: str
    namespace: str | None = None


@dataclass(frozen=True, kw_only=True)
class StatusArgs(JobRef):
    pass


@dataclass(frozen=True, kw_only=True)
class LogsArgs(JobRef):
    follow: bool = True


@dataclass(frozen=True, kw_only=True)
class CancelArgs(JobRef):
    pass


@dataclass(frozen=True, kw_only=True)
class BuildArgs(Where):
    """``render`` and ``submit``: ``job`` holds JobSpec's options as given (None: not given,
    so the BU's parameter, the placement or JobSpec's default fills it); ``managed`` the
    Training Job settings of ``--backend training-job``; ``overrides`` the ``--set`` items."""

    backend: str = "hyperpod"
    job: Mapping[str, Any]
    managed: ManagedOptions = ManagedOptions()
    config_file: str | None = None
    tag: str | None = None
    env: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RenderArgs(BuildArgs):
    output: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubmitArgs(BuildArgs):
    preflight: bool = True


JobArgs = RenderArgs | SubmitArgs | StatusArgs | LogsArgs | CancelArgs
_JOB_REFS = {"status": StatusArgs, "logs": LogsArgs, "cancel": CancelArgs}


def _parser() -> argparse.ArgumentParser:
    top = command_parser("training.job", __doc__)
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        cmd = sub.add_parser(command, formatter_class=HelpFormatter)
        where = cmd.add_argument_group("where: the BU's published values, or explicit flags")
        where.add_argument("--bu", help="business unit whose SSM parameters to read")
        where.add_argument("--team", help="task-governance team (HyperPod)")
        where.add_argument("--region", help=region_help("the BU's"))
        where.add_argument("--kubeconfig", help="kubeconfig file (default: ~/.kube/config)")
        where.add_argument("--context", help="kubeconfig context (default: the current one)")
        if command in ("render", "submit"):
            cmd.add_argument("--backend", choices=BACKENDS, default="hyperpod")
            add_arguments(cmd.add_argument_group("job"), JobSpec)
            cmd.add_argument(
                "--config-file", metavar="LOCAL",
                help="a local copy of --config, validated here before the job exists (--config "
                "stays the path the container reads)",
            )  # fmt: skip
            cmd.add_argument("--tag", help="image tag (default: this checkout's git SHA)")
            cmd.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
            cmd.add_argument(
                "--set", action="append", default=[], metavar="KEY=VALUE",
                help="training config override (training.train --set)",
            )  # fmt: skip
            add_arguments(cmd.add_argument_group("training job"), ManagedOptions)
        else:
            cmd.add_argument("--name", required=True, help="the job's name")
            cmd.add_argument("--namespace", help="default: the team's namespace")
        if command == "render":
            cmd.add_argument("--output", help="write here instead of stdout")
        if command == "submit":
            cmd.add_argument(
                "--preflight", action=argparse.BooleanOptionalAction, default=True,
                help="check namespace, queue and MIG slices on the cluster first",
            )  # fmt: skip
        if command == "logs":
            cmd.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True)
    # Unset flags read as None, so "given explicitly" is known and wins over a parameter.
    for action in (a for c in sub.choices.values() for a in c._actions):
        if action.dest in _FILLED or action.dest in _DERIVED:
            action.default = None
    return top


def parse_args(argv: Sequence[str] | None = None) -> JobArgs:
    """The chosen subcommand's typed arguments (the parser keeps ``--help``'s groups)."""
    values = vars(_parser().parse_args(argv))
    command = values.pop("command")
    where = {f.name: values.pop(f.name) for f in fields(Where)}
    if command in _JOB_REFS:
        return _JOB_REFS[command](**where, **values)
    job = {f.name: values.pop(f.name) for f in fields(JobSpec) if f.metadata.get("cli", True)}
    managed_options = ManagedOptions(**{f.name: values.pop(f.name) for f in fields(ManagedOptions)})
    env, overrides = tuple(values.pop("env")), tuple(values.pop("set"))
    build = RenderArgs if command == "render" else SubmitArgs
    return build(**where, job=job, managed=managed_options, env=env, overrides=overrides, **values)


def _key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    pairs = [item.partition("=") for item in items]
    bad = [k for k, sep, _ in pairs if not sep or not k]
    if bad:
        raise JobSpecError(f"{flag} takes KEY=VALUE")
    return {k: v for k, _, v in pairs}


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _tag(given: str | None) -> str:
    tag = given or _git_sha()
    if not tag:
        raise JobSpecError("--tag: not in a git checkout; give the image tag (a git SHA)")
    return str(tag)


@dataclass
class Clients:
    """AWS clients, injected by tests (Stubber); created from the default session otherwise."""

    ssm: Any = None
    sagemaker: Any = None

    def ssm_for(self, region: str | None) -> Any:
        """The SSM client; made in the region `--region` or the AWS config names (printed)."""
        if self.ssm is None:
            resolved = resolve_region(region)
            print(resolved.describe(), file=sys.stderr)
            self.ssm = platform.ssm_client(resolved.name)
        return self.ssm

    def sagemaker_for(self, region: str) -> Any:
        if self.sagemaker is None:
            self.sagemaker = managed.sagemaker_client(region)
        return self.sagemaker


def _hyperpod_spec(args: BuildArgs, clients: Clients) -> tuple[JobSpec, platform.BuPlatform | None]:
    env = _key_values(args.env, "--env")
    bu, team = args.bu, args.team
    values: dict[str, Any] = dict(args.job)
    found: platform.BuPlatform | None = None
    cluster = None
    if bu:  # offline checks first: a wrong team or GPU fails before any AWS call
        cluster = placement.bu_cluster(bu)
        if not team:
            raise JobSpecError("--team: required with --bu for a HyperPod job")
        placement.check_team(cluster, bu, team)
    values["instance_type"] = placement.instance_type_for(
        instance_type=args.job["instance_type"],
        mig_profile=values["mig_profile"],
        gpus_per_node=values["gpus_per_node"],
        groups=cluster.gpu_groups if cluster is not None else None,
        bu=bu,
    )
    if bu and team:  # with --bu, --team was required above
        names = platform.hyperpod_names(team)
        if "MLFLOW_TRACKING_URI" in env:
            names.remove(p.MLFLOW_TRACKING_ARN)
        found = platform.read(clients.ssm_for(args.region), bu, names, team=team)
        filled = {
            "image": lambda: f"{found[p.TRAINING_IMAGE_URI]}:{_tag(args.tag)}",
            "namespace": lambda: found.team_value(p.TEAM_NAMESPACE),
            "queue": lambda: found.team_value(p.TEAM_QUEUE),
            "service_account": lambda: found.team_value(p.TEAM_SERVICE_ACCOUNT),
            "fsx_claim": lambda: found.team_value(p.TEAM_FSX_CLAIM),
        }
        for name, value in filled.items():
            if values.get(name) is None:
                values[name] = value()
        if p.MLFLOW_TRACKING_ARN in found.values:
            env.setdefault("MLFLOW_TRACKING_URI", found[p.MLFLOW_TRACKING_ARN])
    elif values.get("image") is None and args.tag:
        raise JobSpecError("--tag needs --bu (the BU's repository) or a full --image")
    defaults = {f.name: f.default for f in fields(JobSpec)}
    for name in _FILLED:
        if values.get(name) is None:
            values[name] = defaults[name]
    return JobSpec(**values, env=env, overrides=args.overrides), found


def _validated_config(path: str, overrides: list[str], flag: str = "--config") -> Any:
    """The trainer's own validation, before any job exists."""
    from training.config import load_config

    try:
        return load_config(path, overrides)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise JobSpecError(f"{flag}: {err}") from err


def _check_container_config(args: BuildArgs) -> None:
    """Validate the config a HyperPod job will read: ``--config-file``, or ``--config`` when it
    is a file here too (e.g. /fsx mounted in the space); otherwise say plainly it was not."""
    overrides, config = list(args.overrides), args.job["config"]
    if args.config_file:
        _validated_config(args.config_file, overrides, "--config-file")
    elif Path(config).is_file():
        _validated_config(config, overrides)
    else:
        print(
            f"warning: --config {config} is not a file here, so it was NOT "
            "validated: a typo in it fails in the pod; pass --config-file LOCAL_COPY to check it",
            file=sys.stderr,
        )


def _training_job(args: BuildArgs, clients: Clients) -> tuple[dict[str, Any], platform.BuPlatform]:
    from training.config import dump_config

    if not args.bu:
        raise JobSpecError("--bu: required for --backend training-job")
    for flag in ("data", "base_model"):
        if not getattr(args.managed, flag):
            raise JobSpecError(f"--{flag.replace('_', '-')}: required for --backend training-job")
    env = _key_values(args.env, "--env")
    names = list(platform.TRAINING_JOB_NAMES)
    if "MLFLOW_TRACKING_URI" in env:
        names.remove(p.MLFLOW_TRACKING_ARN)
    config = _validated_config(
        args.config_file or args.job["config"],
        list(args.overrides),
        "--config-file" if args.config_file else "--config",
    )
    found = platform.read(clients.ssm_for(args.region), args.bu, names)
    options = args.managed
    spec = managed.TrainingJobSpec(
        run=args.job["name"],
        config_yaml=dump_config(config),
        train_data=options.data,
        base_model=options.base_model,
        eval_data=options.eval_data or None,
        image_tag=_tag(args.tag),
        instance_type=args.job["instance_type"] or "ml.p5.48xlarge",
        instance_count=args.job["nodes"],
        volume_gb=options.volume_gb,
        spot=options.spot,
        max_run_hours=options.max_run_hours,
        max_wait_hours=options.max_wait_hours,
        overrides=list(args.overrides),  # already in config_yaml; listed for the console
        environment=env,
    )
    request = managed.training_job_request(spec, found, name=managed.job_name(found, spec.run))
    return request, found


def _where(args: JobRef, clients: Clients) -> tuple[str, str | None, str | None]:
    """Namespace, expected EKS cluster and region for status/logs/cancel."""
    if args.bu:
        cluster = placement.bu_cluster(args.bu)
        if args.team:
            placement.check_team(cluster, args.bu, args.team)
        names = [p.EKS_CLUSTER_NAME]
        if not args.namespace:
            if not args.team:
                raise JobSpecError("--team (or --namespace): required with --bu")
            names.append(p.team_parameter(p.TEAM_NAMESPACE, args.team))
        found = platform.read(clients.ssm_for(args.region), args.bu, names, team=args.team)
        namespace = args.namespace or found.team_value(p.TEAM_NAMESPACE)
        return namespace, found[p.EKS_CLUSTER_NAME], found.region
    return args.namespace or "default", None, args.region


def _cluster(args: Where, expect: str | None, region: str | None) -> HyperPodCluster:
    api = connect(
        kubeconfig=args.kubeconfig,
        context=args.context,
        expect_cluster=expect,
        region=region,
    )
    return HyperPodCluster(api)


def _hyperpod_manifest(
    args: BuildArgs, clients: Clients
) -> tuple[dict[str, Any], JobSpec, platform.BuPlatform | None]:
    _check_container_config(args)
    spec, found = _hyperpod_spec(args, clients)
    manifest = build_manifest(spec)
    crd.validate(manifest)
    return manifest, spec, found


def hyperpod_manifest(
    argv: list[str], *, ssm: Any
) -> tuple[dict[str, Any], JobSpec, platform.BuPlatform | None]:
    """The validated HyperPodPyTorchJob that ``training.job render ARGV`` prints, with its spec
    and the BU's values: the one path from a BU and team to a job, for the CLI and the pipeline.
    Raises JobSpecError, ManifestSchemaError or PlatformLookupError with the CLI's messages."""
    args = cast(RenderArgs, parse_args(["render", *argv]))
    return _hyperpod_manifest(args, Clients(ssm=ssm))


def _run(args: JobArgs, clients: Clients) -> int:
    if isinstance(args, RenderArgs | SubmitArgs):
        return _build(args, clients)
    namespace, expect, region = _where(args, clients)
    cluster = _cluster(args, expect, region)
    if isinstance(args, StatusArgs):
        cluster.status(namespace, args.name).render(sys.stdout)
    elif isinstance(args, LogsArgs):
        for chunk in cluster.logs(namespace, args.name, follow=args.follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    else:
        cluster.cancel(namespace, args.name)
        print(f"deleted {KIND} {namespace}/{args.name}")
    return 0


def _build(args: RenderArgs | SubmitArgs, clients: Clients) -> int:
    """``render`` prints what ``submit`` creates: a Training Job request or a HyperPod job."""
    if args.backend == "training-job":
        request, bu_values = _training_job(args, clients)
        if isinstance(args, RenderArgs):
            _write(json.dumps(request, indent=2) + "\n", args.output)
            return 0
        arn = managed.submit_training_job(clients.sagemaker_for(bu_values.region), request)
        print(f"created training job {request['TrainingJobName']}: {arn}")
        return 0
    manifest, spec, found = _hyperpod_manifest(args, clients)
    if isinstance(args, RenderArgs):
        import yaml

        _write(yaml.safe_dump(manifest, sort_keys=False), args.output)
        return 0
    expect = found[p.EKS_CLUSTER_NAME] if found else None
    cluster = _cluster(args, expect, found.region if found else args.region)
    if args.preflight:
        cluster.check_namespace(spec.namespace)
        if spec.queue:
            cluster.check_queue(spec.namespace, spec.queue)
        cluster.check_accelerator(
            spec.accelerator, spec.gpus_per_node, spec.nodes, node_selector(spec)
        )
    created = cluster.submit(manifest)
    meta = created["metadata"]
    on = f" on HyperPod cluster {found[p.HYPERPOD_CLUSTER_NAME]}" if found else ""
    print(f"created {KIND} {meta['namespace']}/{meta['name']}{on}")
    return 0


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def main(args: JobArgs, *, ssm: Any = None, sagemaker: Any = None) -> int:
    """Run the subcommand; `ssm` and `sagemaker` stand in for the AWS clients (tests)."""
    try:
        return _run(args, Clients(ssm=ssm, sagemaker=sagemaker))
    except (
        JobSpecError,
        crd.ManifestSchemaError,
        managed.ManagedJobError,
        RegionNotSetError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except (platform.PlatformLookupError, ClusterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return RUNTIME_ERROR


@dataclass(frozen=True, kw_only=True)
class ProcessingArgs:
    """``python -m training.prepare --backend processing``'s own options; the rest are
    training.prepare's, handed to the job."""

    backend: str = field(metadata={"choices": ("processing",)})
    bu: str | None = field(
        default=None, metadata={"help": "business unit whose SSM parameters to read"}
    )
    region: str | None = region_option("the BU's")
    name: str = field(default="prepare", metadata={"help": "names the job: <bu>-<name>-<time>"})
    tag: str | None = field(
        default=None, metadata={"help": "image tag (default: this checkout's git SHA)"}
    )
    instance_type: str = "ml.m5.4xlarge"
    volume_gb: int = 100
    max_run_hours: float = 12.0
    input: str = field(metadata={"help": "s3://<data bucket>/.../records.jsonl"})
    output: str = field(metadata={"help": "s3://<data bucket>/prefix/"})
    tokenizer: str = field(metadata={"help": "s3:// prefix or a path in the image"})


def parse_processing_args(argv: Sequence[str]) -> tuple[ProcessingArgs, list[str]]:
    """The processing job's options, and training.prepare's arguments it passes on."""
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare --backend processing", formatter_class=HelpFormatter
    )
    add_arguments(parser, ProcessingArgs)
    known, prepare_args = parser.parse_known_args(argv)
    return ProcessingArgs(**vars(known)), prepare_args


def prepare_main(argv: list[str], *, ssm: Any = None, sagemaker: Any = None) -> int:
    """`python -m training.prepare ... --backend processing`: the same preparation as a
    SageMaker Processing job with the BU's image, reading and writing its data bucket.
    (`--backend local` stays in training.prepare: it runs the preparation here.)"""
    options, prepare_args = parse_processing_args(argv)
    clients = Clients(ssm=ssm, sagemaker=sagemaker)
    try:
        if not options.bu:
            raise JobSpecError("--bu: required for --backend processing")
        found = platform.read(
            clients.ssm_for(options.region), options.bu, platform.PROCESSING_JOB_NAMES
        )
        spec = managed.ProcessingJobSpec(
            run=options.name,
            input=options.input,
            output=options.output,
            tokenizer=options.tokenizer,
            prepare_args=prepare_args,
            image_tag=_tag(options.tag),
            instance_type=options.instance_type,
            volume_gb=options.volume_gb,
            max_run_hours=options.max_run_hours,
        )
        request = managed.processing_job_request(
            spec, found, name=managed.job_name(found, spec.run)
        )
        arn = managed.submit_processing_job(clients.sagemaker_for(found.region), request)
    except (JobSpecError, managed.ManagedJobError, RegionNotSetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except platform.PlatformLookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return RUNTIME_ERROR
    print(f"created processing job {request['ProcessingJobName']}: {arn}")
    return 0
