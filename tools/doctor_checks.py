"""The checks behind ``make doctor``: each takes the BU config and a client and returns rows.

A public check never raises for what a deployment can get wrong (missing credentials, AccessDenied,
a missing resource, an unreachable cluster): the error becomes a FAIL row with a one-line reason
(``guard``), so one broken part never hides the state of the others.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from kubernetes import client as k8s
from urllib3.exceptions import HTTPError as Urllib3Error

from config.endpoints import Endpoint
from config.hyperpod import ADDON_NAMES, SPACES_ADDON_NAMES, GpuGroup, HyperPod, Spaces, Team
from config.mlflow import Mlflow
from config.schema import BusinessUnitConfig
from config.studio import Studio, StudioUser
from core.parameters import MLFLOW_TRACKING_ARN
from inference import smoke
from inference.client import runtime_config
from training.job.cluster import (
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    KUEUE_GROUP,
    KUEUE_VERSION,
    REQUEST_TIMEOUT_S,
    ClusterError,
    connect,
)

Status = Literal["ok", "FAIL", "skip"]
TrackingCall = Callable[[str], str]  # tracking URI (the MLflow ARN) -> what the server answered
T = TypeVar("T")

# Names the constructs give the cluster's objects (tests/unit/test_doctor.py keeps them in step;
# importing the constructs here would start jsii and a Node process for a read-only check).
GROUP_LABEL = "platform/group"  # platform_constructs.hyperpod_cluster: each group's node label
FSX_CLAIM = "fsx-claim"  # platform_constructs.hyperpod_workloads.FSX_CLAIM
INFERENCE_ADDON_NAMES = {  # config.endpoints.HyperPodInferenceAddons -> platform_constructs
    "inference_operator": "amazon-sagemaker-hyperpod-inference",  # .hyperpod_inference
    "s3_csi_driver": "aws-mountpoint-s3-csi-driver",
    "metrics_server": "metrics-server",
}
# SageMaker Spaces' WorkspaceTemplates (platform_constructs.hyperpod_spaces: TEMPLATE_API_VERSION,
# SYSTEM_NAMESPACE), listed with the kubernetes client's custom-objects API.
WORKSPACE_GROUP, WORKSPACE_VERSION = "workspace.jupyter.org", "v1alpha1"
WORKSPACE_TEMPLATES = "workspacetemplates"
SPACES_NAMESPACE = "jupyter-k8s-system"
GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
MIG_STATE_LABEL = "nvidia.com/mig.config.state"
# HyperPod task governance's Kueue objects: ClusterQueue `hyperpod-ns-<team>-clusterqueue`
# (sagemaker-hyperpod-cli's SAGEMAKER_MANAGED_CLUSTER_QUEUE_SUFFIX), one flavor per instance type.
CLUSTER_QUEUES = "clusterqueues"
CLUSTER_QUEUE_SUFFIX = "-clusterqueue"
TRACKING_SERVER_UP = frozenset({"Created", "Updated", "Started", "MaintenanceComplete"})
MLFLOW_APP_UP = frozenset({"Created", "Updated"})
# EndpointClient's: it retries itself, and a read timeout a little over InvokeEndpoint's 60 s
# lets the endpoint's own error win.
RUNTIME_CONFIG = runtime_config()


@dataclass(frozen=True)
class Row:
    check: str
    target: str
    status: Status
    detail: str


def row(check: str, target: str, good: bool, detail: str) -> Row:
    return Row(check, target, "ok" if good else "FAIL", detail)


def skip(check: str, target: str, detail: str) -> Row:
    return Row(check, target, "skip", detail)


class CheckError(Exception):
    """A check's own failure, already worded for the detail column."""


class Aws:
    """Every AWS client of one run, made from one ``boto3.Session``: one identity, one region."""

    def __init__(self, session: boto3.Session) -> None:
        self.session = session
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = RUNTIME_CONFIG if service == "sagemaker-runtime" else None
            self._clients[service] = self.session.client(service, config=config)
        return self._clients[service]


def reason(err: BaseException) -> str:
    """One line that says what went wrong and, where it is ours to know, what to do."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        text = f"{err.operation_name}: {error.get('Code', 'Error')}: {error.get('Message', '')}"
    elif isinstance(err, k8s.ApiException):
        hint = {
            HTTP_FORBIDDEN: "your EKS access entry does not allow this read",
            HTTP_NOT_FOUND: "not found",
        }.get(err.status or 0, "")
        text = f"HTTP {err.status} {err.reason}" + (f": {hint}" if hint else "")
    elif isinstance(err, Urllib3Error):
        text = (
            f"cannot reach the cluster API ({type(err).__name__}); the EKS endpoint is private: "
            "run this from a Studio space or a host in the BU's VPC"
        )
    elif isinstance(err, NoCredentialsError):
        text = f"{err}: set AWS_PROFILE (aws sso login) or AWS_* variables for the BU's account"
    elif isinstance(err, BotoCoreError | ClusterError | CheckError):
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())


# What a deployment can get wrong; anything else is a bug in the doctor and should say so.
EXPECTED_ERRORS = (
    BotoCoreError,
    ClientError,
    k8s.ApiException,
    Urllib3Error,
    ClusterError,
    CheckError,
)


def guard(check: str, target: str, rows: Callable[..., list[Row]], *args: Any) -> list[Row]:
    """``rows(*args)``, or one FAIL row naming why it could not be checked."""
    try:
        return rows(*args)
    except EXPECTED_ERRORS as err:
        return [Row(check, target, "FAIL", reason(err))]


def each(
    items: Iterable[T],
    check: str,
    target: Callable[[T], str],
    rows: Callable[..., list[Row]],
    *args: Any,
) -> list[Row]:
    """``guard`` per item, so one missing item does not hide the others."""
    return [r for item in items for r in guard(check, target(item), rows, item, *args)]


def section_rows(
    config: BusinessUnitConfig,
    section: T | None,
    unit: str,
    check: str,
    rows: Callable[[T, str], list[Row]],
) -> list[Row]:
    """No rows for a section the BU leaves out; otherwise ``guard`` of ``rows(section, name)``,
    ``name`` being the resource the stack names after ``unit``."""
    if section is None:
        return []
    name = config.naming.resource(unit)
    return guard(check, name, rows, section, name)


# --- AWS identity and CloudFormation ----------------------------------------------------------


def identity_rows(config: BusinessUnitConfig, aws: Aws) -> list[Row]:
    """Whose credentials these are: in another account every later check would be wrong."""

    def rows() -> list[Row]:
        who = aws.client("sts").get_caller_identity()
        account, arn = str(who.get("Account")), str(who.get("Arn"))
        if account != config.account:
            return [row("aws identity", account, False, f"{arn}: not BU account {config.account}")]
        return [row("aws identity", account, True, arn)]

    return guard("aws identity", config.account, rows)


def stack_names(config: BusinessUnitConfig) -> list[str]:
    """The BU's stacks in Stage order (stacks/stage.py): optional sections add theirs.
    tests/stacks/test_stages.py holds this list to the synthesized stage of every example BU."""
    sections = {
        "network": True,
        "security": True,
        "mlflow": config.mlflow,
        "studio": config.studio,
        "hyperpod": config.hyperpod,
        "training": True,
        "endpoints": config.endpoints,
        "pipeline": config.pipeline,
        "governance": config.governance,
    }
    return [config.naming.stack(unit) for unit, section in sections.items() if section]


def stack_healthy(status: str) -> bool:
    """Created or updated: ``*_COMPLETE``, but not a rollback's or a deletion's end state."""
    return status.endswith("_COMPLETE") and "ROLLBACK" not in status and status != "DELETE_COMPLETE"


def stack_rows(config: BusinessUnitConfig, aws: Aws) -> list[Row]:
    def one(name: str) -> list[Row]:
        stack = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        status = str(stack["StackStatus"])
        why = stack.get("StackStatusReason")
        good = stack_healthy(status)
        return [row("stack", name, good, status + (f": {why}" if why and not good else ""))]

    return each(stack_names(config), "stack", str, one)


# --- HyperPod cluster and EKS add-ons ---------------------------------------------------------


def instance_groups(hp: HyperPod) -> dict[str, int]:
    """Instance group -> the node count the config asks for (the stack names them so)."""
    return {"system": hp.system_group.count, **{g.name: g.count for g in hp.gpu_groups}}


def hyperpod_rows(config: BusinessUnitConfig, aws: Aws) -> list[Row]:
    """The cluster is InService and every group runs the count the config asks for."""

    def rows(hp: HyperPod, name: str) -> list[Row]:
        cluster = aws.client("sagemaker").describe_cluster(ClusterName=name)
        status = str(cluster["ClusterStatus"])
        failure = cluster.get("FailureMessage")
        result = [row("hyperpod cluster", name, status == "InService", _with(status, failure))]
        groups = {g.get("InstanceGroupName"): g for g in cluster.get("InstanceGroups", [])}
        for group, count in instance_groups(hp).items():
            found = groups.get(group)
            if found is None:
                result.append(row("instance group", group, False, "not in the cluster"))
                continue
            current, target = found.get("CurrentCount"), found.get("TargetCount")
            detail = f"{current}/{target} running (config {count})"
            result.append(row("instance group", group, current == target == count, detail))
        return result

    return section_rows(config, config.hyperpod, "hyperpod", "hyperpod cluster", rows)


def pinned_addons(config: BusinessUnitConfig) -> dict[str, str]:
    """EKS add-on -> pinned version: the cluster's own, plus the inference operator's when an
    endpoint is served on HyperPod (as stacks/hyperpod_stack.py installs them)."""
    hp = config.hyperpod
    if hp is None:
        return {}
    pins = {ADDON_NAMES[field]: v for field, v in hp.addons.model_dump().items()}
    if hp.spaces is not None:
        spaces = hp.spaces.addons.model_dump().items()
        pins |= {SPACES_ADDON_NAMES[field]: v for field, v in spaces}
    if config.endpoints is not None and config.endpoints.on("hyperpod"):
        versions = config.endpoints.hyperpod_addons.model_dump()
        pins |= {INFERENCE_ADDON_NAMES[field]: v for field, v in versions.items()}
    return pins


def addon_rows(config: BusinessUnitConfig, aws: Aws) -> list[Row]:
    cluster = config.naming.resource("eks")
    pins = pinned_addons(config)

    def one(name: str) -> list[Row]:
        addon = aws.client("eks").describe_addon(clusterName=cluster, addonName=name)["addon"]
        status, version = str(addon.get("status")), str(addon.get("addonVersion"))
        detail = f"{status} {version}" + (
            f" (pinned {pins[name]})" if version != pins[name] else ""
        )
        issues = (addon.get("health") or {}).get("issues") or []
        if issues and status != "ACTIVE":
            detail += f": {issues[0].get('code')}: {issues[0].get('message')}"
        return [row("addon", name, status == "ACTIVE" and version == pins[name], detail)]

    return each(pins, "addon", str, one)


# --- Kubernetes: nodes, GPU capacity, Kueue quotas, FSx claims --------------------------------


def expected_allocatable(group: GpuGroup) -> dict[str, int]:
    """What a group's nodes advertise in all: whole GPUs, or each MIG profile's slices
    (slices per GPU x GPUs per instance x count, as ``HyperPod.capacity`` counts them)."""
    per_gpu = group.slices_per_gpu()
    if not per_gpu:
        return {GPU: group.gpus}
    return {f"{MIG_PREFIX}{profile}": n * group.gpus for profile, n in per_gpu.items()}


def _labels(node: k8s.V1Node) -> dict[str, str]:
    return dict((node.metadata.labels if node.metadata else None) or {})


def _ready(node: k8s.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def node_rows(hp: HyperPod, nodes: list[k8s.V1Node]) -> list[Row]:
    """Per instance group: as many Ready nodes as the config asks for, none NotReady."""
    rows = []
    for group, count in instance_groups(hp).items():
        members = [n for n in nodes if _labels(n).get(GROUP_LABEL) == group]
        ready = sum(_ready(n) for n in members)
        not_ready = sorted(n.metadata.name for n in members if not _ready(n))
        detail = f"{ready}/{count} Ready" + (
            f"; NotReady: {', '.join(not_ready)}" if not_ready else ""
        )
        rows.append(row("nodes", group, ready == count and not not_ready, detail))
    return rows


def capacity_rows(hp: HyperPod, nodes: list[k8s.V1Node]) -> list[Row]:
    """Per GPU group: the summed allocatable GPUs or MIG slices equal what the config implies."""
    rows = []
    for group in hp.gpu_groups:
        members = [n for n in nodes if _labels(n).get(GROUP_LABEL) == group.name]
        have: dict[str, int] = {}
        for node in members:
            allocatable = (node.status.allocatable if node.status else None) or {}
            for resource in expected_allocatable(group):
                have[resource] = have.get(resource, 0) + int(allocatable.get(resource, 0))
        expected = expected_allocatable(group)
        # A group with no node yet has nothing allocatable: a FAIL row, not a KeyError.
        detail = ", ".join(f"{r} {have.get(r, 0)} (config {n})" for r, n in expected.items())
        unsettled = sorted(
            f"{n.metadata.name}: {_labels(n).get(MIG_STATE_LABEL, 'unset')}"
            for n in members
            if group.mig_label and _labels(n).get(MIG_STATE_LABEL) != "success"
        )
        if unsettled:
            detail += f"; {MIG_STATE_LABEL} {', '.join(unsettled)}"
        rows.append(row("gpu capacity", group.name, have == expected, detail))
    return rows


def cluster_queue_name(team: Team) -> str:
    return team.namespace + CLUSTER_QUEUE_SUFFIX


def expected_quota(hp: HyperPod, team: Team) -> dict[tuple[str, str], int]:
    """(flavor = instance type, resource) -> nominal quota, from the team's config quotas."""
    quota: dict[tuple[str, str], int] = {}
    for q in hp.quotas_of(team.name):
        if q.gpus:
            quota[(q.instance_type, GPU)] = q.gpus
        if q.mig is not None:
            quota[(q.instance_type, f"{MIG_PREFIX}{q.mig.profile}")] = q.mig.count
    return quota


def nominal_quota(queue: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """The GPU and MIG nominal quotas of a ClusterQueue, by (flavor, resource)."""
    quota: dict[tuple[str, str], int] = {}
    for group in (queue.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            for resource in flavor.get("resources") or []:
                name = str(resource.get("name"))
                if name == GPU or name.startswith(MIG_PREFIX):
                    key = (str(flavor.get("name")), name)
                    quota[key] = int(str(resource.get("nominalQuota", 0)))
    return quota


def queue_row(hp: HyperPod, team: Team, queues: Mapping[str, Mapping[str, Any]]) -> Row:
    name = cluster_queue_name(team)
    queue = queues.get(name)
    if queue is None:
        return row(
            "clusterqueue", name, False, "missing: task governance made no queue for the team"
        )
    want, have = expected_quota(hp, team), nominal_quota(queue)
    keys = sorted(set(want) | {k for k, v in have.items() if v})
    wrong = [k for k in keys if have.get(k, 0) != want.get(k, 0)]
    # Only the wrong quotas when some are, so the detail says what to fix.
    parts = [
        f"{flavor} {resource} {have.get((flavor, resource), 0)}"
        + (f" (config {want.get((flavor, resource), 0)})" if wrong else "")
        for flavor, resource in wrong or keys
    ]
    return row("clusterqueue", name, not wrong, ", ".join(parts) or "no GPU quota")


def claim_row(team: Team, core: k8s.CoreV1Api) -> list[Row]:
    claim = core.read_namespaced_persistent_volume_claim(
        FSX_CLAIM, team.namespace, _request_timeout=REQUEST_TIMEOUT_S
    )
    phase = str(claim.status.phase if claim.status else None)
    volume = claim.spec.volume_name if claim.spec else None
    detail = phase + (f" to {volume}" if volume and phase == "Bound" else "")
    return [row("fsx claim", f"{team.namespace}/{FSX_CLAIM}", phase == "Bound", detail)]


def cluster_rows(
    config: BusinessUnitConfig, *, kubeconfig: str | None, context: str | None
) -> list[Row]:
    """The cluster as the caller's kubeconfig sees it (the context must be this BU's EKS)."""
    hp = config.hyperpod
    if hp is None:
        return []
    eks = config.naming.resource("eks")
    try:
        api = connect(
            kubeconfig=kubeconfig, context=context, expect_cluster=eks, region=config.region
        )
    except ClusterError as err:
        where = kubeconfig or "default kubeconfig"
        return [
            row("kubeconfig", where, False, reason(err)),
            _cluster_skipped(eks, "no kubeconfig"),
        ]
    core = k8s.CoreV1Api(api)
    try:
        nodes = core.list_node(_request_timeout=REQUEST_TIMEOUT_S).items
    except EXPECTED_ERRORS as err:  # an unreachable API would time out on every later call
        return [
            row("cluster api", eks, False, reason(err)),
            _cluster_skipped(eks, "no cluster API"),
        ]
    rows = [row("cluster api", eks, True, str(api.configuration.host))]
    rows += node_rows(hp, nodes) + capacity_rows(hp, nodes)
    rows += guard("clusterqueue", "*", _queue_rows, hp, k8s.CustomObjectsApi(api))
    rows += each(hp.teams, "fsx claim", lambda t: f"{t.namespace}/{FSX_CLAIM}", claim_row, core)
    if hp.spaces is not None:
        custom = k8s.CustomObjectsApi(api)
        rows += guard("workspace templates", SPACES_NAMESPACE, template_rows, hp.spaces, custom)
    return rows


def template_rows(spaces: Spaces, custom: k8s.CustomObjectsApi) -> list[Row]:
    """Every WorkspaceTemplate the config publishes is in the add-on's namespace (a missing one
    means the Spaces add-on or the templates' manifest did not apply)."""
    listed = custom.list_namespaced_custom_object(
        WORKSPACE_GROUP,
        WORKSPACE_VERSION,
        SPACES_NAMESPACE,
        WORKSPACE_TEMPLATES,
        _request_timeout=REQUEST_TIMEOUT_S,
    )
    found = {t["metadata"]["name"] for t in listed.get("items", [])}
    wanted = spaces.template_names()
    missing = [name for name in wanted if name not in found]
    detail = f"missing {', '.join(missing)}" if missing else f"{len(wanted)} present"
    return [row("workspace templates", SPACES_NAMESPACE, not missing, detail)]


def _queue_rows(hp: HyperPod, custom: k8s.CustomObjectsApi) -> list[Row]:
    listed = custom.list_cluster_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, CLUSTER_QUEUES, _request_timeout=REQUEST_TIMEOUT_S
    )
    queues = {q["metadata"]["name"]: q for q in listed.get("items", [])}
    return [queue_row(hp, team, queues) for team in hp.teams]


def _cluster_skipped(eks: str, why: str) -> Row:
    return skip("cluster checks", eks, f"nodes, gpu capacity, clusterqueues, fsx claims: {why}")


# --- Studio and Identity Center ---------------------------------------------------------------


def studio_rows(config: BusinessUnitConfig, aws: Aws) -> list[Row]:
    """The domain, its trusted identity propagation, each user's profile and assignment."""

    def rows(studio: Studio, name: str) -> list[Row]:
        sm = aws.client("sagemaker")
        domain_id = _domain_id(sm, name)
        if domain_id is None:
            found = row(
                "studio domain", name, False, f"no domain of that name in {aws.session.region_name}"
            )
            return [found, skip("studio users", "*", "no domain")]
        domain = sm.describe_domain(DomainId=domain_id)
        status = str(domain.get("Status"))
        result = [row("studio domain", name, status == "InService", f"{status} ({domain_id})")]
        settings = (domain.get("DomainSettings") or {}).get("TrustedIdentityPropagationSettings")
        tip = str((settings or {}).get("Status", "not set"))
        want = "ENABLED" if studio.trusted_identity_propagation else "DISABLED"
        result.append(row("studio tip", name, tip == want, f"{tip} (config {want})"))
        result += each(
            studio.users, "user profile", lambda u: u.profile, _profile_row, sm, domain_id
        )
        app = domain.get("SingleSignOnApplicationArn")
        if not app:
            return [*result, row("sso assignment", "*", False, "domain has no Identity Center app")]
        return result + guard("sso assignment", "*", _assignment_rows, studio, aws, app)

    return section_rows(config, config.studio, "studio", "studio domain", rows)


def _domain_id(sm: Any, name: str) -> str | None:
    for page in sm.get_paginator("list_domains").paginate():
        for domain in page.get("Domains", []):
            if domain.get("DomainName") == name:
                return str(domain["DomainId"])
    return None


def _profile_row(user: StudioUser, sm: Any, domain_id: str) -> list[Row]:
    profile = sm.describe_user_profile(DomainId=domain_id, UserProfileName=user.profile)
    status, bound = str(profile.get("Status")), profile.get("SingleSignOnUserValue")
    right = bound == user.user_name  # the profile signs in as the configured person
    detail = f"{status} ({bound})" + ("" if right else f": the config says {user.user_name}")
    return [row("user profile", user.profile, status == "InService" and right, detail)]


def _assignment_rows(studio: Studio, aws: Aws, app: str) -> list[Row]:
    pages = aws.client("sso-admin").get_paginator("list_application_assignments")
    assigned = {
        (a.get("PrincipalType"), a.get("PrincipalId"))
        for page in pages.paginate(ApplicationArn=app)
        for a in page.get("ApplicationAssignments", [])
    }
    wanted = [("USER", u.user_name, u.user_id) for u in studio.users]
    wanted += [("GROUP", g.name, g.group_id) for g in studio.groups]
    rows = []
    for kind, who, principal in wanted:
        found = (kind, principal) in assigned
        detail = f"{kind} {principal}" + ("" if found else ": not assigned to the domain's app")
        rows.append(row("sso assignment", who, found, detail))
    return rows


# --- MLflow ----------------------------------------------------------------------------------


def default_tracking_call() -> TrackingCall | None:
    """A real tracking call when ``mlflow`` and ``sagemaker-mlflow`` are installed (the plugin
    resolves the ARN with its own boto3 session: same credentials, the ARN's region)."""
    if not all(importlib.util.find_spec(m) for m in ("mlflow", "sagemaker_mlflow")):
        return None

    def call(arn: str) -> str:
        from mlflow.tracking import MlflowClient

        try:
            found = MlflowClient(tracking_uri=arn).search_experiments(max_results=1)
        except Exception as err:  # the plugin and MLflow raise many types; each is a failure
            raise CheckError(f"search_experiments failed: {type(err).__name__}: {err}") from err
        return f"search_experiments answered ({len(found)} experiment(s) on the first page)"

    return call


def mlflow_rows(
    config: BusinessUnitConfig, aws: Aws, tracking_call: TrackingCall | None
) -> list[Row]:
    """The tracking server or App is up and, where the client is installed, answers a call."""

    def rows(section: Mlflow, name: str) -> list[Row]:
        sm = aws.client("sagemaker")
        if section.kind == "tracking_server":
            server = sm.describe_mlflow_tracking_server(TrackingServerName=name)
            arn, status = str(server["TrackingServerArn"]), str(server.get("TrackingServerStatus"))
            active = server.get("IsActive")
            up, state = status in TRACKING_SERVER_UP and active == "Active", f"{status}, {active}"
        else:  # an App's ARN ends in a generated ID: the stack publishes it
            parameter = config.naming.parameter(MLFLOW_TRACKING_ARN)
            arn = str(aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])
            state = str(sm.describe_mlflow_app(Arn=arn).get("Status"))
            up = state in MLFLOW_APP_UP
        if not up:
            return [row("mlflow", name, False, state)]
        if tracking_call is None:
            note = "describe only: no tracking call without mlflow + sagemaker-mlflow"
            return [row("mlflow", name, True, f"{state}; {note}")]
        try:
            return [row("mlflow", name, True, f"{state}; {tracking_call(arn)}")]
        except CheckError as err:
            return [row("mlflow", name, False, f"{state}; {reason(err)}")]

    return section_rows(config, config.mlflow, "mlflow", "mlflow", rows)


# --- Endpoints --------------------------------------------------------------------------------


def endpoint_rows(config: BusinessUnitConfig, aws: Aws, *, smoke_test: bool) -> list[Row]:
    """Each endpoint InService and, unless skipped, answering the smoke command's tool call."""
    if config.endpoints is None:
        return []
    return each(
        config.endpoints.items,
        "endpoint",
        lambda e: config.naming.resource(e.name),
        _endpoint_rows,
        config,
        aws,
        smoke_test,
    )


def _endpoint_rows(
    item: Endpoint, config: BusinessUnitConfig, aws: Aws, smoke_test: bool
) -> list[Row]:
    name = config.naming.resource(item.name)
    described = aws.client("sagemaker").describe_endpoint(EndpointName=name)
    status = str(described["EndpointStatus"])
    rows = [
        row("endpoint", name, status == "InService", _with(status, described.get("FailureReason")))
    ]
    if not smoke_test:
        rows.append(skip("endpoint smoke", name, "--skip-endpoint-smoke"))
    elif status != "InService":
        rows.append(skip("endpoint smoke", name, f"endpoint is {status}"))
    else:
        rows.append(_smoke_row(item, name, aws))
    return rows


def _smoke_row(item: Endpoint, name: str, aws: Aws) -> Row:
    """``python -m inference.smoke`` itself, with this run's clients, its report folded in."""
    serving = item.serving_config()
    out = io.StringIO()
    code = smoke.run(
        name,
        clients=smoke.Clients(
            sagemaker=aws.client("sagemaker"), runtime=aws.client("sagemaker-runtime")
        ),
        thinking=bool(serving.request_thinking),
        out=out,
    )
    lines = out.getvalue().splitlines()
    if code:
        failures = [line.removeprefix("FAIL: ") for line in lines if line.startswith("FAIL: ")]
        return row("endpoint smoke", name, False, "; ".join(failures) or "failed")
    shown = [line for line in lines if line.startswith(("tool_call:", "latency_s:"))]
    return row("endpoint smoke", name, True, "; ".join(shown))


def _with(status: str, why: object) -> str:
    return status + (f": {why}" if why else "")
