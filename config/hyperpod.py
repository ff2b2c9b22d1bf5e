"""The ``hyperpod`` section of a BU config: a HyperPod cluster orchestrated by private EKS.

Every version that reaches the cluster (Kubernetes, each EKS add-on, the dependencies chart) is
pinned here, so a deploy never picks up drift. The validators prove what the cluster promises:
MIG profiles exist on their instance type, and the teams' quotas (whole GPUs and each MIG slice
type) fit what the instance groups provide, so no quota leaves jobs pending forever.
"""

from collections import defaultdict
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from core.accelerators import GPUS_PER_INSTANCE, MIG_PROFILES, MigProfile, mig_profiles
from core.base import (
    FieldProblemError,
    FieldProblemsError,
    StrictModel,
    at_most_chars,
    matching,
    one_of,
    repeated,
    unique,
)

# HyperPod supports Kubernetes 1.28-1.34 (AWS docs, HyperPod EKS prerequisites); the kubectl
# Lambda layer pinned in requirements.txt (kubectl 1.33) manages servers one minor either side.
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34")

# What `aws eks describe-addon-versions` prints, e.g. v1.19.5-eksbuild.1 (the endpoints
# section pins the inference operator's add-ons with the same type).
AddonVersion = Annotated[
    str,
    StringConstraints(max_length=64),
    matching(
        r"v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+", "an EKS add-on version like v1.19.5-eksbuild.1"
    ),
]
_DNS_LABEL = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
_DNS_WHAT = "lowercase letters, digits and single hyphens, starting with a letter"
# Lowercase DNS label that also fits `hyperpod-ns-<team>-localqueue` and the role name.
TeamName = Annotated[str, matching(_DNS_LABEL, _DNS_WHAT)]
MAX_TEAM_NAME = 18  # the longest BU name + `-hyperpod-team-<team>-<region>` fits 64
GroupName = Annotated[str, matching(_DNS_LABEL, _DNS_WHAT)]
MAX_GROUP_NAME = 40
IamRoleName = Annotated[
    str, matching(r"[\w+=,.@-]{1,64}", "an IAM role name (1-64 of A-Z a-z 0-9 _ + = , . @ -)")
]
InstanceType = Annotated[
    str, matching(r"ml\.[a-z0-9-]+\.[a-z0-9]+", "an instance type like ml.p5.48xlarge")
]
# A Kubernetes object's name (an RFC 1123 label): a priority class, an endpoint.
ObjectName = Annotated[
    str, matching(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?", "lowercase letters, digits and hyphens")
]


DeepHealthCheck = Literal["InstanceStress", "InstanceConnectivity"]
DEEP_HEALTH_CHECKS: tuple[DeepHealthCheck, ...] = ("InstanceStress", "InstanceConnectivity")


class Addons(StrictModel):
    """One pinned version per EKS add-on (``aws eks describe-addon-versions --addon-name X
    --kubernetes-version V``). Upgrading one is a reviewed one-line change."""

    vpc_cni: AddonVersion = "v1.20.4-eksbuild.2"
    coredns: AddonVersion = "v1.12.3-eksbuild.1"
    kube_proxy: AddonVersion = "v1.33.3-eksbuild.6"
    eks_pod_identity_agent: AddonVersion = "v1.3.8-eksbuild.2"
    aws_fsx_csi_driver: AddonVersion = "v1.6.0-eksbuild.1"
    cert_manager: AddonVersion = "v1.18.2-eksbuild.2"
    hyperpod_training_operator: AddonVersion = "v1.2.0-eksbuild.1"
    hyperpod_task_governance: AddonVersion = "v1.5.0-eksbuild.1"
    hyperpod_observability: AddonVersion = "v1.0.4-eksbuild.1"


# Field of `Addons` -> the EKS add-on name.
ADDON_NAMES = {
    "vpc_cni": "vpc-cni",
    "coredns": "coredns",
    "kube_proxy": "kube-proxy",
    "eks_pod_identity_agent": "eks-pod-identity-agent",
    "aws_fsx_csi_driver": "aws-fsx-csi-driver",
    "cert_manager": "cert-manager",
    "hyperpod_training_operator": "amazon-sagemaker-hyperpod-training-operator",
    "hyperpod_task_governance": "amazon-sagemaker-hyperpod-taskgovernance",
    "hyperpod_observability": "amazon-sagemaker-hyperpod-observability",
}


class DependenciesChart(StrictModel):
    """HyperPod's dependencies Helm chart, staged once into this BU's private ECR as an OCI
    artifact (``make stage-hyperpod-chart BU=<bu>``) and installed from there by version;
    the digest is what the staging step produced and verifies (ECR tags are immutable)."""

    version: Annotated[str, matching(r"[0-9]+\.[0-9]+\.[0-9]+", "a chart version like 0.1.0")] = (
        "0.1.0"
    )
    digest: Annotated[str, matching(r"sha256:[0-9a-f]{64}", "a sha256:<64 hex digits> digest")]
    # The sagemaker-hyperpod-cli commit the chart is packaged from (used by the staging step).
    source_commit: Annotated[str, matching(r"[0-9a-f]{40}", "a 40-hex-digit git commit")]


class InstanceGroup(StrictModel):
    """Fields every instance group has."""

    instance_type: InstanceType
    count: int = Field(default=1, ge=1, le=6758)
    ebs_volume_gb: int = Field(default=500, ge=1, le=16384)  # at /opt/sagemaker
    threads_per_core: Literal[1, 2] = 1


class SystemGroup(InstanceGroup):
    """The small CPU group that runs cluster services (Kueue, cert-manager, operators)."""

    instance_type: InstanceType = "ml.m5.2xlarge"
    count: int = Field(default=2, ge=1, le=6758)
    ebs_volume_gb: int = Field(default=100, ge=1, le=16384)


class MixedMig(StrictModel):
    """A mixed MIG layout: profile -> instances per GPU (e.g. ``{3g.40gb: 1, 4g.40gb: 1}``)."""

    profiles: dict[str, int] = Field(min_length=1)

    @property
    def label(self) -> str:
        parts = "-".join(f"{n}-{p}" for p, n in sorted(self.profiles.items()))
        return f"mixed-{parts}"


class GpuGroup(InstanceGroup):
    """A GPU group: whole GPUs, or MIG slices when ``mig`` names a layout."""

    name: Annotated[GroupName, at_most_chars(MAX_GROUP_NAME)]
    # `all-<profile>` (every GPU cut the same way) or a mixed layout.
    mig: str | MixedMig | None = None
    deep_health_checks: list[DeepHealthCheck] = Field(
        default_factory=lambda: list(DEEP_HEALTH_CHECKS)
    )
    # More than one instance type: a flexible instance group (InstanceRequirements).
    alternative_instance_types: list[str] = Field(default_factory=list, max_length=19)

    @model_validator(mode="after")
    def _gpu_and_mig(self) -> "GpuGroup":
        if self.instance_type not in GPUS_PER_INSTANCE:
            raise FieldProblemError("instance_type", _not_a_gpu_type(self.instance_type))
        self._alternatives_fit()
        if self.mig is None:
            return self
        if self.alternative_instance_types:
            raise FieldProblemError(
                "mig", "MIG does not work on a flexible instance group (alternative_instance_types)"
            )
        offered = mig_profiles(self.instance_type)
        if not offered:
            raise FieldProblemError(
                "mig",
                f"{self.instance_type} does not support MIG; MIG types: "
                + ", ".join(sorted(MIG_PROFILES)),
            )
        allowed = ", ".join(offered)
        if isinstance(self.mig, str):
            profile = self.mig.removeprefix("all-")
            if not self.mig.startswith("all-") or profile not in offered:
                raise FieldProblemError(
                    "mig",
                    f"{self.mig!r} is not a layout of {self.instance_type}: use all-<profile> "
                    f"or a mixed layout, with profiles {allowed}",
                )
            return self
        unknown = sorted(set(self.mig.profiles) - set(offered))
        if unknown:
            raise FieldProblemError(
                "mig.profiles",
                f"{', '.join(unknown)} not offered by {self.instance_type}; allowed: {allowed}",
            )
        if any(n < 1 for n in self.mig.profiles.values()):
            raise FieldProblemError("mig.profiles", "each profile needs 1 or more instances")
        compute = sum(offered[p].compute * n for p, n in self.mig.profiles.items())
        memory = sum(offered[p].memory_eighths * n for p, n in self.mig.profiles.items())
        if compute > 7 or memory > 8:
            raise FieldProblemError(
                "mig.profiles",
                f"the layout needs {compute}/7 compute and {memory}/8 memory slices of one GPU",
            )
        return self

    def _alternatives_fit(self) -> None:
        """Each alternative is a known GPU type with as many GPUs per instance as
        ``instance_type``: the group's capacity (what quotas are checked against) assumes any
        of them may be launched."""
        per_instance = GPUS_PER_INSTANCE[self.instance_type]
        problems = []
        seen = {self.instance_type}
        for i, other in enumerate(self.alternative_instance_types):
            if other not in GPUS_PER_INSTANCE:
                reason = _not_a_gpu_type(other)
            elif other in seen:
                reason = f"{other} is already one of this group's instance types"
            elif GPUS_PER_INSTANCE[other] != per_instance:
                reason = (
                    f"{other} has {GPUS_PER_INSTANCE[other]} GPUs, {self.instance_type} "
                    f"{per_instance}: the group's capacity (and its quotas) assume the same "
                    "number on every instance"
                )
            else:
                seen.add(other)
                continue
            problems.append(FieldProblemError(f"alternative_instance_types.{i}", reason))
        if problems:
            raise FieldProblemsError(problems)

    @property
    def gpus(self) -> int:
        return GPUS_PER_INSTANCE[self.instance_type] * self.count

    @property
    def mig_label(self) -> str | None:
        """The value of the node label ``nvidia.com/mig.config``."""
        if self.mig is None:
            return None
        return self.mig if isinstance(self.mig, str) else self.mig.label

    def slices_per_gpu(self) -> dict[str, int]:
        """MIG profile -> instances per GPU in this group's layout (empty without MIG)."""
        if self.mig is None:
            return {}
        if isinstance(self.mig, str):
            profile = self.mig.removeprefix("all-")
            return {profile: mig_profiles(self.instance_type)[profile].slices}
        return dict(self.mig.profiles)


def _not_a_gpu_type(instance_type: str) -> str:
    known = ", ".join(sorted(GPUS_PER_INSTANCE))
    return f"{instance_type} is not a GPU type this platform knows; known: {known}"


class Team(StrictModel):
    """A team: its namespace ``hyperpod-ns-<name>``, quota behaviour and fair-share weight."""

    name: Annotated[TeamName, at_most_chars(MAX_TEAM_NAME, "it names a role and queue")]
    fair_share_weight: int = Field(default=50, ge=0, le=100)
    sharing: Literal["LendAndBorrow", "Lend", "DontLend"] = "LendAndBorrow"
    # Percent of its quota a LendAndBorrow team may borrow from idle capacity.
    borrow_limit_percent: int = Field(default=50, ge=1, le=500)
    preempt: Literal["LowerPriority", "Never"] = "LowerPriority"

    @property
    def namespace(self) -> str:
        return f"hyperpod-ns-{self.name}"  # HyperPod task governance's convention

    @property
    def queue(self) -> str:
        return f"hyperpod-ns-{self.name}-localqueue"


class MigQuota(StrictModel):
    profile: str
    count: int = Field(ge=1)


class Quota(StrictModel):
    """What one team is guaranteed on one instance type: whole GPUs and/or MIG slices."""

    team: TeamName
    instance_type: str
    gpus: int = Field(default=0, ge=0)
    mig: MigQuota | None = None

    @model_validator(mode="after")
    def _something(self) -> "Quota":
        if self.gpus == 0 and self.mig is None:
            raise FieldProblemError("gpus", "a quota needs gpus >= 1 or a mig slice count")
        return self


class PriorityClass(StrictModel):
    name: ObjectName
    weight: int = Field(ge=0, le=100)


def _default_priorities() -> list[PriorityClass]:
    return [
        PriorityClass(name="inference", weight=100),
        PriorityClass(name="training", weight=70),
        PriorityClass(name="experimentation", weight=30),
    ]


class Scheduler(StrictModel):
    """The cluster's one ClusterSchedulerConfig."""

    priority_classes: list[PriorityClass] = Field(
        default_factory=_default_priorities, min_length=1, max_length=10
    )
    fair_share: bool = True
    idle_resource_sharing: bool = True

    @field_validator("priority_classes")
    @classmethod
    def _unique(cls, classes: list[PriorityClass]) -> list[PriorityClass]:
        return unique(classes, lambda c: c.name, "priority class")


# FSx for Lustre throughput (MB/s per TiB) each deployment type offers.
FSX_THROUGHPUT: dict[str, tuple[int, ...]] = {
    "PERSISTENT_1": (50, 100, 200),
    "PERSISTENT_2": (125, 250, 500, 1000),
    "SCRATCH_2": (),
}


class Fsx(StrictModel):
    """FSx for Lustre for datasets and checkpoints, in the cluster's subnet."""

    deployment_type: Literal["PERSISTENT_1", "PERSISTENT_2", "SCRATCH_2"] = "PERSISTENT_2"
    storage_capacity_gib: int = Field(default=1200, ge=1200)
    throughput_mbps_per_tib: int | None = 250

    @model_validator(mode="after")
    def _offered(self) -> "Fsx":
        offered = FSX_THROUGHPUT[self.deployment_type]
        if not offered and self.throughput_mbps_per_tib is not None:
            raise FieldProblemError(
                "throughput_mbps_per_tib",
                f"{self.deployment_type} has no throughput setting; leave it null",
            )
        if offered and self.throughput_mbps_per_tib not in offered:
            raise FieldProblemError(
                "throughput_mbps_per_tib",
                f"{self.throughput_mbps_per_tib} not offered for {self.deployment_type}; "
                f"choose {', '.join(map(str, offered))}",
            )
        if self.storage_capacity_gib != 1200 and self.storage_capacity_gib % 2400:
            raise FieldProblemError("storage_capacity_gib", "1200 GiB or a multiple of 2400 GiB")
        return self


MetricLevel = Literal["BASIC", "ADVANCED"]


class Observability(StrictModel):
    """The observability add-on's metric levels (its ``metricsProvider`` groups), written to
    the BU's Prometheus workspace; ADVANCED adds per-GPU and per-task detail at more cost."""

    training_metrics: MetricLevel = "BASIC"
    inference_metrics: MetricLevel = "BASIC"
    task_governance_metrics: MetricLevel = "BASIC"
    scaling_metrics: MetricLevel = "BASIC"
    cluster_metrics: MetricLevel = "BASIC"  # the add-on's `customMetrics`
    node_metrics: MetricLevel = "BASIC"
    accelerated_compute_metrics: MetricLevel = "ADVANCED"  # GPU and MIG-slice metrics
    network_metrics: MetricLevel = "BASIC"
    scrape_interval_seconds: int = Field(default=30, ge=10, le=300)
    logging: bool = True
    grafana: bool = False  # an Amazon Managed Grafana workspace (needs IAM Identity Center)


# Kubernetes minors SageMaker Spaces runs on (the add-on's prerequisites; DESIGN.md, "SageMaker
# Spaces on HyperPod": Kubernetes >= 1.30).
SPACES_MIN_KUBERNETES = (1, 30)
SpaceApp = Literal["jupyterlab", "code-editor"]
SPACE_APPS: tuple[SpaceApp, ...] = ("jupyterlab", "code-editor")
ImageTag = Annotated[
    str, matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag like 3.4.2-gpu")
]


class SpacesAddons(StrictModel):
    """The Spaces add-on and the EBS CSI driver it stores home directories with, pinned like
    :class:`Addons` (``aws eks describe-addon-versions --addon-name amazon-sagemaker-spaces``)."""

    sagemaker_spaces: AddonVersion = "v1.0.3-eksbuild.1"
    aws_ebs_csi_driver: AddonVersion = "v1.48.0-eksbuild.1"


# Field of `SpacesAddons` -> the EKS add-on name.
SPACES_ADDON_NAMES = {
    "sagemaker_spaces": "amazon-sagemaker-spaces",
    "aws_ebs_csi_driver": "aws-ebs-csi-driver",
}


class SpacesTeam(StrictModel):
    """A team whose members may create spaces in its namespace: the IAM roles (names in the
    BU's account) they reach the cluster with, each given an EKS access entry."""

    team: TeamName
    # `[]` (like `admin_roles`) leaves space creation to the cluster admins until someone is named.
    roles: list[IamRoleName] = Field(default_factory=list)
    # The team's Kueue priority class for spaces (one of `scheduler.priority_classes`).
    priority_class: str = "experimentation"


class Spaces(StrictModel):
    """SageMaker Spaces on the cluster: JupyterLab and Code Editor for the listed teams, on a
    MIG slice or a whole GPU, scheduled by the team's task-governance quota."""

    teams: list[SpacesTeam] = Field(min_length=1)
    apps: list[SpaceApp] = Field(default_factory=lambda: list(SPACE_APPS), min_length=1)
    # SageMaker Distribution, mirrored into `<bu>/hyperpod-mirror/sagemaker-distribution`.
    image_tag: ImageTag = "3.4.2-gpu"
    # Defaults that fit a node with `threads_per_core: 1` beside the cluster's daemons (the
    # public templates ask for 2 vCPUs, which does not).
    cpu: float = Field(default=1, gt=0, le=64)
    memory_gib: int = Field(default=8, ge=1, le=512)
    storage_gib: int = Field(default=20, ge=1, le=1000)
    # The MIG slice a space gets unless it asks for another (null: no GPU by default), and the
    # largest slice the platform admits; both must be profiles some group offers.
    default_mig_profile: str | None = None
    max_mig_profile: str | None = None
    max_gpus: int = Field(default=1, ge=0, le=8)  # whole GPUs one space may request
    idle_shutdown_minutes: int = Field(default=60, ge=5, le=1440)
    # The idle timeout a space gets unless it sets its own, at most `idle_shutdown_minutes`;
    # with it a space cannot turn idle shutdown off. null: no idle shutdown unless a space
    # asks for one (and then within the cap).
    idle_shutdown_default_minutes: int | None = Field(default=None, ge=5, le=1440)
    addons: SpacesAddons = Field(default_factory=SpacesAddons)

    @field_validator("teams")
    @classmethod
    def _unique_spaces_teams(cls, teams: list[SpacesTeam]) -> list[SpacesTeam]:
        return unique(teams, lambda t: t.team, "team")

    @field_validator("apps")
    @classmethod
    def _unique_apps(cls, apps: list[SpaceApp]) -> list[SpaceApp]:
        if repeated(apps):
            raise ValueError("each app at most once")
        return apps

    @model_validator(mode="after")
    def _idle_default_within_cap(self) -> "Spaces":
        default, cap = self.idle_shutdown_default_minutes, self.idle_shutdown_minutes
        if default is not None and default > cap:
            raise FieldProblemError(
                "idle_shutdown_default_minutes",
                f"{default} is above idle_shutdown_minutes {cap}, the longest idle timeout a "
                "space may set; lower it or raise the cap",
            )
        return self

    def template_names(self) -> list[str]:
        """Every WorkspaceTemplate the platform publishes (``<team>-<app>``, in
        ``jupyter-k8s-system``): one per team and app, so each carries its team's queue."""
        return [name for t in self.teams for name in self.template_names_of(t.team)]

    def template_names_of(self, team: str) -> list[str]:
        """``team``'s templates, one per app in ``apps`` order."""
        return [template_name(team, app) for app in self.apps]


def template_name(team: str, app: str) -> str:
    return f"{team}-{app}"


class HyperPod(StrictModel):
    """A HyperPod EKS cluster: control plane, add-ons, instance groups, teams and storage."""

    kubernetes_version: Annotated[
        str, one_of(KUBERNETES_VERSIONS, "a Kubernetes version supported here")
    ] = "1.33"
    # IAM role names in the BU's account that administer the cluster (EKS cluster admin). The
    # key is required so every file says who; `[]` (a fresh `config new` clone) leaves the
    # cluster to the deployment's own kubectl role until someone is named.
    admin_roles: list[IamRoleName]
    # The AZ of the HyperPod nodes and FSx (EFA wants one AZ); default: the BU's first AZ.
    availability_zone: str | None = None
    addons: Addons = Field(default_factory=Addons)
    dependencies_chart: DependenciesChart
    system_group: SystemGroup = Field(default_factory=SystemGroup)
    gpu_groups: list[GpuGroup] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    quotas: list[Quota] = Field(default_factory=list)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    fsx: Fsx = Field(default_factory=Fsx)
    observability: Observability = Field(default_factory=Observability)
    spaces: Spaces | None = None

    @field_validator("gpu_groups")
    @classmethod
    def _unique_groups(cls, groups: list[GpuGroup]) -> list[GpuGroup]:
        dupes = repeated(g.name for g in groups)
        if dupes or "system" in {g.name for g in groups}:
            raise ValueError(f"group names must be unique and not 'system': {dupes or 'system'}")
        return groups

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, teams: list[Team]) -> list[Team]:
        return unique(teams, lambda t: t.name, "team")

    @model_validator(mode="after")
    def _kube_proxy_matches(self) -> "HyperPod":
        minor = ".".join(self.addons.kube_proxy.removeprefix("v").split(".")[:2])  # v1.33.3-…
        if minor != self.kubernetes_version:
            raise FieldProblemError(
                "addons.kube_proxy",
                f"{self.addons.kube_proxy} is for Kubernetes {minor}; the cluster "
                f"runs {self.kubernetes_version}",
            )
        return self

    @model_validator(mode="after")
    def _quotas_and_spaces_fit(self) -> "HyperPod":
        for problems_of in (quota_problems, spaces_problems):  # quotas first, as before
            problems = problems_of(self)
            if problems:
                raise FieldProblemsError(problems)
        return self

    def mig_profile(self, name: str) -> MigProfile | None:
        """The profile ``name`` as some group of this cluster offers it (None if none does)."""
        for group in self.gpu_groups:
            if name in group.slices_per_gpu():
                return mig_profiles(group.instance_type)[name]
        return None

    def mig_profiles_within(self, largest: str) -> list[str]:
        """The cluster's profiles no larger than ``largest`` in compute and in memory."""
        top = self.mig_profile(largest)
        if top is None:
            return []
        return sorted(
            p
            for p in self.mig_profiles_offered()
            if (found := self.mig_profile(p)) is not None
            and found.compute <= top.compute
            and found.memory_eighths <= top.memory_eighths
        )

    def mig_profiles_offered(self) -> frozenset[str]:
        """Every MIG profile some instance group of this cluster provides (e.g. ``1g.18gb``)."""
        return frozenset(p for g in self.gpu_groups for p in g.slices_per_gpu())

    def capacity(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Whole GPUs per instance type, and MIG slices per (instance type, profile)."""
        whole: dict[str, int] = defaultdict(int)
        slices: dict[tuple[str, str], int] = defaultdict(int)
        for group in self.gpu_groups:
            per_gpu = group.slices_per_gpu()
            if not per_gpu:
                whole[group.instance_type] += group.gpus
            for profile, n in per_gpu.items():
                slices[(group.instance_type, profile)] += n * group.gpus
        return dict(whole), dict(slices)

    def quotas_of(self, team: str) -> list[Quota]:
        return [q for q in self.quotas if q.team == team]


def quota_problems(cfg: HyperPod) -> list[FieldProblemError]:
    """Every quota that cannot be honoured, in config order: unknown team or type, a profile
    the type's groups do not provide, or one of the quotas whose sum over teams is beyond the
    groups' capacity (each of those is named: any of them may be the one to lower)."""
    problems: list[tuple[int, FieldProblemError]] = []
    teams = {t.name for t in cfg.teams}
    types = sorted({g.instance_type for g in cfg.gpu_groups})
    whole, slices = cfg.capacity()
    seen: set[tuple[str, str]] = set()
    # (instance type, MIG profile or None for whole GPUs) -> (quota index, team, count) asked
    asks: dict[tuple[str, str | None], list[tuple[int, str, int]]] = defaultdict(list)
    for i, quota in enumerate(cfg.quotas):
        path = f"quotas.{i}"
        if quota.team not in teams:
            reason = f"unknown team {quota.team!r}; teams: {', '.join(sorted(teams))}"
            problems.append((i, FieldProblemError(f"{path}.team", reason)))
            continue
        if quota.instance_type not in types:
            reason = f"no GPU group of type {quota.instance_type}; groups have {', '.join(types)}"
            problems.append((i, FieldProblemError(f"{path}.instance_type", reason)))
            continue
        if (quota.team, quota.instance_type) in seen:
            reason = f"team {quota.team!r} already has a quota on {quota.instance_type}"
            problems.append((i, FieldProblemError(path, reason)))
            continue
        seen.add((quota.team, quota.instance_type))
        if quota.gpus:
            asks[(quota.instance_type, None)].append((i, quota.team, quota.gpus))
        if quota.mig is not None:
            key = (quota.instance_type, quota.mig.profile)
            if key not in slices:
                offered = sorted(p for (t, p) in slices if t == quota.instance_type)
                reason = (
                    f"no {quota.instance_type} group is partitioned into {quota.mig.profile}; "
                    f"its groups provide {', '.join(offered) or 'no MIG'}"
                )
                problems.append((i, FieldProblemError(f"{path}.mig.profile", reason)))
                continue
            asks[key].append((i, quota.team, quota.mig.count))
    for (instance_type, profile), rows in asks.items():
        have = whole.get(instance_type, 0) if profile is None else slices[(instance_type, profile)]
        need = sum(count for _, _, count in rows)
        if need <= have:
            continue
        what = (
            f"whole GPUs of {instance_type}"
            if profile is None
            else (f"mig-{profile} slices of {instance_type}")
        )
        field = "gpus" if profile is None else "mig.count"
        for i, team, count in rows:
            others = ", ".join(f"{t} {n}" for j, t, n in rows if j != i)
            total = f"; with the other quotas on them ({others}) that is {need}" if others else ""
            reason = (
                f"team {team!r} asks for {count} {what}{total}, the groups provide {have} "
                f"(short by {need - have})"
            )
            problems.append((i, FieldProblemError(f"quotas.{i}.{field}", reason)))
    return [problem for _, problem in sorted(problems, key=lambda item: item[0])]


def spaces_problems(cfg: HyperPod) -> list[FieldProblemError]:
    """What the ``spaces`` section asks that this cluster cannot give: a team not in ``teams``,
    a role that already administers the cluster (one access entry per principal), a priority
    class the scheduler lacks, a MIG profile no group offers, a default above the maximum, or
    Kubernetes older than 1.30."""
    spaces = cfg.spaces
    if spaces is None:
        return []
    problems: list[FieldProblemError] = []
    minor = tuple(int(x) for x in cfg.kubernetes_version.split("."))
    if minor < SPACES_MIN_KUBERNETES:
        wanted = ".".join(map(str, SPACES_MIN_KUBERNETES))
        reason = (
            f"SageMaker Spaces needs Kubernetes >= {wanted}; the cluster runs "
            f"{cfg.kubernetes_version}"
        )
        problems.append(FieldProblemError("kubernetes_version", reason))
    teams = {t.name for t in cfg.teams}
    priorities = {p.name for p in cfg.scheduler.priority_classes}
    admins = set(cfg.admin_roles)
    for i, team in enumerate(spaces.teams):
        path = f"spaces.teams.{i}"
        if team.team not in teams:
            reason = f"unknown team {team.team!r}; teams: {', '.join(sorted(teams))}"
            problems.append(FieldProblemError(f"{path}.team", reason))
        if team.priority_class not in priorities:
            reason = (
                f"no priority class {team.priority_class!r}; scheduler has "
                f"{', '.join(sorted(priorities))}"
            )
            problems.append(FieldProblemError(f"{path}.priority_class", reason))
        for j, role in enumerate(team.roles):
            if role in admins:
                reason = f"{role} is in admin_roles: it already has the cluster's admin entry"
                problems.append(FieldProblemError(f"{path}.roles.{j}", reason))
    offered = sorted(cfg.mig_profiles_offered())
    for field in ("default_mig_profile", "max_mig_profile"):
        profile = getattr(spaces, field)
        if profile is not None and profile not in offered:
            reason = (
                f"{profile} is not offered by any GPU group; the cluster offers "
                f"{', '.join(offered) or 'no MIG'}"
            )
            problems.append(FieldProblemError(f"spaces.{field}", reason))
    default, largest = spaces.default_mig_profile, spaces.max_mig_profile
    if default in offered and largest is None:
        reason = "a default MIG profile needs max_mig_profile (the largest a space may ask for)"
        problems.append(FieldProblemError("spaces.max_mig_profile", reason))
    if (
        default in offered
        and largest in offered
        and default not in cfg.mig_profiles_within(str(largest))
    ):
        reason = f"the default {default} is larger than max_mig_profile {largest}"
        problems.append(FieldProblemError("spaces.default_mig_profile", reason))
    return problems
