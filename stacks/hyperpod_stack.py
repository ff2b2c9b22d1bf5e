"""HyperPod stack: the BU's private EKS control plane, its HyperPod cluster, the teams on it.

One stack, not one per lifecycle: the HyperPod cluster, its quotas and the team objects all
reference the EKS cluster, and splitting them would only add cross-stack exports that pin the
EKS cluster in place. Stateful data lives elsewhere (S3 in the security stack; FSx here is a
cache of datasets and checkpoints and is retained with the BU's removal policy).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.aws_registries import (
    EKS_REGISTRY_ACCOUNT,
    GPU_OPERATOR_MIRROR_ACCOUNTS,
    node_image_accounts,
    registry_host,
)
from config.governance import DEFAULT_LOG_RETENTION_DAYS
from config.hyperpod import (
    ADDON_NAMES,
    SPACES_ADDON_NAMES,
    GpuGroup,
    HyperPod,
    InstanceGroup,
    Observability,
    Scheduler,
    Spaces,
)
from config.schema import BusinessUnitConfig
from core import parameters as params
from core.naming import Naming
from platform_constructs.hyperpod_chart import ChartRegistries, DependenciesChart, chart_values
from platform_constructs.hyperpod_cluster import (
    GpuGroupSpec,
    HyperPodCluster,
    InstanceGroupSpec,
    MigSlices,
    PriorityClass,
    QuotaResource,
    SchedulerSpec,
    TeamQuota,
    efa_security_group,
)
from platform_constructs.hyperpod_eks import HyperPodEksCluster, pod_identity_role
from platform_constructs.hyperpod_inference import AddonVersions, HyperPodInferenceOperator
from platform_constructs.hyperpod_observability import (
    NAMESPACE as OBSERVABILITY_NAMESPACE,
)
from platform_constructs.hyperpod_observability import (
    SERVICE_ACCOUNT as OBSERVABILITY_SERVICE_ACCOUNT,
)
from platform_constructs.hyperpod_observability import (
    AddonSettings,
    MetricsWorkspace,
    addon_configuration,
)
from platform_constructs.hyperpod_spaces import (
    HyperPodSpaces,
    SpaceDefaults,
    SpacesTeam,
    spaces_image,
)
from platform_constructs.hyperpod_workloads import (
    FSX_CLAIM,
    SERVICE_ACCOUNT,
    TeamWorkloads,
    WorkloadTeam,
)
from platform_constructs.lustre import LustreFileSystem
from platform_constructs.published import string_parameters
from stacks._common import (
    BuStack,
    log_retention,
    spec_of,
    stage_tags,
)
from stacks.foundation import Foundation
from stacks.network_stack import NetworkStack, bu_repositories
from stacks.security_stack import SecurityStack

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "HyperPod cluster on private EKS, teams and quotas"

TRAINING_OPERATOR_NAMESPACE = "aws-hyperpod"
TRAINING_OPERATOR_SERVICE_ACCOUNT = "hp-training-operator-controller-manager"
TRAINING_OPERATOR_POLICY = "AmazonSageMakerHyperPodTrainingOperatorAccess"
CNI_POLICY = "AmazonEKS_CNI_Policy"
# The VPC CNI's pods (`aws-node` DaemonSet of the vpc-cni add-on).
CNI_NAMESPACE, CNI_SERVICE_ACCOUNT = "kube-system", "aws-node"
# Add-ons whose pods need nodes; AWS's references create them once HyperPod has nodes.
AFTER_NODES = (
    "cert-manager",
    "aws-fsx-csi-driver",
    "amazon-sagemaker-hyperpod-training-operator",
    "amazon-sagemaker-hyperpod-taskgovernance",
    "amazon-sagemaker-hyperpod-observability",
)

# The BU's buckets this stack grants on (the security stack owns them).
BUCKETS = ("data", "checkpoints", "models", "hyperpod-lifecycle")
# Field of `config.hyperpod.Observability` -> the observability add-on's metricsProvider group
# (the shape public HyperPod templates use), in the order the add-on's configuration lists them.
METRIC_GROUPS = {
    "training_metrics": "trainingMetrics",
    "inference_metrics": "inferenceMetrics",
    "task_governance_metrics": "taskGovernanceMetrics",
    "scaling_metrics": "scalingMetrics",
    "cluster_metrics": "customMetrics",
    "node_metrics": "nodeMetrics",
    "accelerated_compute_metrics": "acceleratedComputeMetrics",
    "network_metrics": "networkMetrics",
}


def chart_repository(config: BusinessUnitConfig) -> str:
    """The BU's ECR repository for the dependencies chart (``make stage-hyperpod-chart``)."""
    return f"{config.name}/hyperpod-helm-chart"


def bu_chart_values(*, bu: str, account: str, region: str, mig: bool) -> dict[str, Any]:
    """The dependencies chart's values for one BU, its registries looked up in
    ``config.aws_registries``: what the deploy and ``make stage-hyperpod-chart`` both use."""
    registries = ChartRegistries(
        own=registry_host(account, region),
        eks=registry_host(EKS_REGISTRY_ACCOUNT, region),
        gpu_operator_mirror=(
            registry_host(GPU_OPERATOR_MIRROR_ACCOUNTS[region], region) if mig else None
        ),
    )
    return chart_values(bu=bu, region=region, mig=mig, registries=registries)


def uses_mig(hp: HyperPod) -> bool:
    """Some group is cut into MIG slices: the GPU operator replaces the standalone plugin."""
    return any(g.mig_label for g in hp.gpu_groups)


def instance_group_spec(group: InstanceGroup) -> InstanceGroupSpec:
    """A config instance group as the cluster construct takes it (the system group)."""
    return spec_of(InstanceGroupSpec, group)


def gpu_group_spec(group: GpuGroup) -> GpuGroupSpec:
    """A GPU group: its instance-group fields, name, health checks, flexible types, MIG label."""
    return spec_of(
        GpuGroupSpec,
        group,
        deep_health_checks=tuple(group.deep_health_checks),
        alternative_instance_types=tuple(group.alternative_instance_types),
    )


def mig_layouts(groups: Sequence[GpuGroup]) -> dict[str, dict[str, int]]:
    """Each MIG label the groups carry -> MIG profile -> instances per GPU (the MIG manager's
    layouts; the groups read the profile table, so the chart construct need not)."""
    return {g.mig_label: g.slices_per_gpu() for g in groups if g.mig_label}


def team_quotas(hp: HyperPod, names: Naming) -> list[TeamQuota]:
    """One ComputeQuota per team, with the team's quotas in config order."""
    return [
        spec_of(
            TeamQuota,
            team,
            team=team.name,
            quota_name=names.resource(f"quota-{team.name}"),
            resources=tuple(
                QuotaResource(
                    instance_type=q.instance_type,
                    gpus=q.gpus,
                    mig=None if q.mig is None else MigSlices(q.mig.profile, q.mig.count),
                )
                for q in hp.quotas_of(team.name)
            ),
        )
        for team in hp.teams
    ]


def scheduler_spec(scheduler: Scheduler) -> SchedulerSpec:
    """The scheduler section as the cluster's ClusterSchedulerConfig takes it."""
    return spec_of(
        SchedulerSpec,
        scheduler,
        priority_classes=tuple(PriorityClass(p.name, p.weight) for p in scheduler.priority_classes),
    )


def addon_settings(observability: Observability) -> AddonSettings:
    """The observability section as the add-on's metricsProvider levels."""
    return spec_of(
        AddonSettings,
        observability,
        levels={group: getattr(observability, f) for f, group in METRIC_GROUPS.items()},
    )


def workload_teams(hp: HyperPod, names: Naming) -> list[WorkloadTeam]:
    """Each team with its task-governance namespace, workload role name and FSx volume name."""
    return [
        WorkloadTeam(
            name=t.name,
            namespace=t.namespace,
            role_name=names.role(f"hyperpod-team-{t.name}"),
            pv_name=f"fsx-{t.name}",
        )
        for t in hp.teams
    ]


@dataclass(frozen=True)
class ManagedIdentity:
    """An add-on's Pod Identity: the construct id, the role name's purpose, the one AWS-managed
    policy it holds, the service account it is bound to, and why cdk-nag's IAM4 is accepted."""

    name: str
    role: str
    policy: str
    namespace: str
    service_account: str
    why: str


MANAGED_IDENTITIES = (
    ManagedIdentity(
        "TrainingOperator",
        "hyperpod-training-operator",
        TRAINING_OPERATOR_POLICY,
        TRAINING_OPERATOR_NAMESPACE,
        TRAINING_OPERATOR_SERVICE_ACCOUNT,
        "The AWS-managed policy HyperPod documents for its training operator (describe the "
        "cluster and its nodes for job auto-resume); AWS versions it with the add-on.",
    ),
    # The VPC CNI assigns pod IPs with the EC2 actions of AmazonEKS_CNI_Policy; its pods get them
    # from their own Pod Identity (EKS user guide, "Amazon VPC CNI plugin for Kubernetes"
    # add-on IAM: supported from v1.15.5-eksbuild.1), not from the node role.
    ManagedIdentity(
        "Cni",
        "hyperpod-vpc-cni",
        CNI_POLICY,
        CNI_NAMESPACE,
        CNI_SERVICE_ACCOUNT,
        "The AWS-managed policy the EKS guide names for the VPC CNI's aws-node pods (ENI and IP "
        "assignment on the cluster's nodes); AWS versions it with the CNI.",
    ),
)


class HyperPodStack(BuStack):
    def __init__(self, stage: Construct, *, base: Foundation, hyperpod: HyperPod) -> None:
        super().__init__(stage, "hyperpod", config=base.config, description=DESCRIPTION)
        config, network, security, hp = self.config, base.network, base.security, hyperpod
        # The nodes and FSx share one AZ (EFA wants one); default: the BU's first.
        az = hp.availability_zone or config.network.availability_zones[0]
        buckets = self.imported_buckets(security.keys, *BUCKETS)
        self.key = self._key_and_control_plane_logs()
        self.security_group = efa_security_group(self, "ClusterSecurityGroup", vpc=network.vpc)
        self.eks = self._eks(hp, network)
        self.eks_cluster = self.eks.cluster
        self.addons = self.eks.addons
        collector_role = self._addon_identities()
        self.hyperpod = self._hyperpod_cluster(
            hp, network, az, lifecycle_bucket=buckets["hyperpod-lifecycle"]
        )
        self.cluster = self.hyperpod.cluster
        self.inference = self._inference_operator(security)
        quotas, _ = self.hyperpod.add_task_governance(
            scheduler_name=self.names.resource("scheduler"),
            teams=team_quotas(hp, self.names),
            scheduler=scheduler_spec(hp.scheduler),
            after=[self.addons["amazon-sagemaker-hyperpod-taskgovernance"]],
            tags=stage_tags(config),
        )
        self.metrics = self._metrics(hp, collector_role)
        self.fsx = self._fsx(hp, network, az)
        self.chart = self._dependencies_chart(hp, network)
        self.teams = TeamWorkloads(
            self,
            "Teams",
            eks_cluster=self.eks,
            teams=workload_teams(hp, self.names),
            data_bucket=buckets["data"],
            checkpoints_bucket=buckets["checkpoints"],
            models_bucket=buckets["models"],
            fsx_id=self.fsx.file_system_id,
            fsx_dns=self.fsx.dns_name,
            fsx_mount=self.fsx.mount_name,
            fsx_capacity_gib=hp.fsx.storage_capacity_gib,
            mlflow=base.mlflow,
            after=[*quotas.values(), self.addons["aws-fsx-csi-driver"]],
        )
        self.spaces = self._spaces(hp, hp.spaces) if hp.spaces is not None else None
        self._publish(hp)

    def _eks(self, hp: HyperPod, network: NetworkStack) -> HyperPodEksCluster:
        """The private EKS control plane with the pinned add-ons; it waits for its encrypted
        log group (``_key_and_control_plane_logs``), which EKS would otherwise make itself."""
        names = self.names
        eks = HyperPodEksCluster(
            self,
            "Eks",
            cluster_name=names.resource("eks"),
            cluster_role_name=names.role("hyperpod-eks"),
            kubectl_role_name=names.role("hyperpod-kubectl"),
            kubernetes_version=hp.kubernetes_version,
            vpc=network.vpc,
            subnets=network.private_subnets,
            security_group=self.security_group,
            secrets_key=self.key,
            admin_role_arns=[
                self.format_arn(service="iam", region="", resource="role", resource_name=r)
                for r in hp.admin_roles
            ],
            addon_versions={ADDON_NAMES[f]: v for f, v in hp.addons.model_dump().items()},
        )
        eks.cluster.node.add_dependency(self.eks_log_group)
        return eks

    def _hyperpod_cluster(
        self,
        hp: HyperPod,
        network: NetworkStack,
        az: str,
        *,
        lifecycle_bucket: s3.IBucket,
    ) -> HyperPodCluster:
        """The HyperPod cluster in the node AZ, and its place in the deploy order: after the
        networking add-ons its nodes run, before the add-ons whose pods need nodes."""
        config, names = self.config, self.names
        serves_inference = config.endpoints is not None and bool(config.endpoints.on("hyperpod"))
        hyperpod = HyperPodCluster(
            self,
            "HyperPod",
            cluster_name=names.resource("hyperpod"),
            execution_role_name=names.role("hyperpod-execution"),
            eks_cluster_arn=self.eks_cluster.cluster_arn,
            vpc=network.vpc,
            subnets=ec2.SubnetSelection(
                subnet_type=network.private_subnets.subnet_type, availability_zones=[az]
            ),
            security_group=self.security_group,
            lifecycle_bucket=lifecycle_bucket,
            volume_key=self.key,
            system_group=instance_group_spec(hp.system_group),
            gpu_groups=[gpu_group_spec(g) for g in hp.gpu_groups],
            own_repositories=bu_repositories(config),
            aws_registries=node_image_accounts(
                config.region, mig=uses_mig(hp), hyperpod_inference=serves_inference
            ),
        )
        cluster = hyperpod.cluster
        # No access entry for the execution role here: HyperPod creates it at CreateCluster
        # (SageMaker API reference, ClusterMetadata.EksRoleAccessEntries: "created by HyperPod
        # on your behalf"); a second one would collide with it.
        # The nodes run the add-ons' pods: the cluster waits for the networking add-ons.
        for name in ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"):
            cluster.node.add_dependency(self.addons[name])
        # Add-ons whose pods need nodes come after the cluster (awsome-distributed-ai
        # hyperpod-eks-tf: each HyperPod add-on module depends_on the hyperpod_cluster module).
        for name in AFTER_NODES:
            self.addons[name].node.add_dependency(cluster)
        return hyperpod

    def _metrics(self, hp: HyperPod, collector_role: iam.IRole) -> MetricsWorkspace:
        """The Prometheus (and optional Grafana) workspace, and the observability add-on's
        configuration pointing at it (the add-on exists before the workspace does)."""
        names = self.names
        alias = names.resource("hyperpod-metrics")
        metrics = MetricsWorkspace(
            self,
            "Metrics",
            alias=alias,
            key=self.key,
            collector_role=collector_role,
            cluster_log_groups=(
                self.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=f"/aws/sagemaker/Clusters/{names.resource('hyperpod')}/*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
                if hp.observability.logging
                else None
            ),
            grafana_name=alias if hp.observability.grafana else None,
        )
        grafana = None
        if metrics.grafana is not None:
            grafana_arn = self.format_arn(
                service="grafana", resource="/workspaces", resource_name=metrics.grafana.attr_id
            )
            grafana = (alias, grafana_arn)
        # Tokens inside the JSON string resolve to an Fn::Join at synthesis.
        self.addons[
            "amazon-sagemaker-hyperpod-observability"
        ].configuration_values = addon_configuration(
            addon_settings(hp.observability),
            prometheus_endpoint=metrics.workspace.attr_prometheus_endpoint,
            workspace_arn=metrics.workspace.attr_arn,
            grafana=grafana,
        )
        return metrics

    def _fsx(self, hp: HyperPod, network: NetworkStack, az: str) -> fsx.LustreFileSystem:
        """FSx for Lustre in the nodes' AZ, kept or removed with the BU's removal policy."""
        return LustreFileSystem(
            self,
            "Fsx",
            vpc=network.vpc,
            subnet=network.vpc.select_subnets(
                subnet_type=network.private_subnets.subnet_type, availability_zones=[az]
            ).subnets[0],
            security_group=self.security_group,
            key=self.key,
            deployment_type=hp.fsx.deployment_type,
            storage_capacity_gib=hp.fsx.storage_capacity_gib,
            throughput_mbps_per_tib=hp.fsx.throughput_mbps_per_tib,
            removal_policy=self.removal_policy,
        ).file_system

    def _dependencies_chart(self, hp: HyperPod, network: NetworkStack) -> DependenciesChart:
        """HyperPod's dependencies chart, installed before the HyperPod cluster, as AWS's guide
        and references do (SageMaker guide, "Install packages on the Amazon EKS cluster using
        Helm": creating the cluster first "might result in ... the creation process failing
        entirely"; awsome-distributed-ai: module.hyperpod_cluster depends_on
        module.helm_chart)."""
        config = self.config
        chart = DependenciesChart(
            self,
            "Dependencies",
            eks_cluster=self.eks_cluster,
            repository_name=chart_repository(config),
            version=hp.dependencies_chart.version,
            digest=hp.dependencies_chart.digest,
            values=bu_chart_values(
                bu=config.name, account=config.account, region=config.region, mig=uses_mig(hp)
            ),
            mig_layouts=mig_layouts(hp.gpu_groups),
            vpc=network.vpc,
            subnets=network.private_subnets,
        )
        self.cluster.node.add_dependency(chart.chart)
        return chart

    def _publish(self, hp: HyperPod) -> None:
        """What other stacks, the CLIs and people need to find the cluster: SSM parameters
        (names from ``core.parameters``) and the stack's outputs."""
        names = self.names
        published = {
            params.HYPERPOD_CLUSTER_NAME: names.resource("hyperpod"),
            params.HYPERPOD_CLUSTER_ARN: self.cluster.attr_cluster_arn,
            params.EKS_CLUSTER_NAME: self.eks_cluster.cluster_name,
            params.PROMETHEUS_WORKSPACE: self.metrics.workspace.attr_prometheus_endpoint,
        }
        if self.metrics.grafana is not None:
            published[params.GRAFANA_URL] = self.metrics.grafana.attr_endpoint
        for team in hp.teams:
            published[params.team_parameter(params.TEAM_NAMESPACE, team.name)] = team.namespace
            published[params.team_parameter(params.TEAM_QUEUE, team.name)] = team.queue
            published[params.team_parameter(params.TEAM_SERVICE_ACCOUNT, team.name)] = (
                SERVICE_ACCOUNT
            )
            published[params.team_parameter(params.TEAM_FSX_CLAIM, team.name)] = FSX_CLAIM
        string_parameters(
            self,
            {
                names.parameter(name): ("Parameter-" + name.replace("/", "-"), value, None)
                for name, value in published.items()
            },
        )
        cdk.CfnOutput(self, "HyperPodClusterName", value=names.resource("hyperpod"))
        cdk.CfnOutput(self, "EksClusterName", value=self.eks_cluster.cluster_name)
        cdk.CfnOutput(
            self,
            "KubeconfigCommand",
            value=f"aws eks update-kubeconfig --region {self.config.region} "
            f"--name {names.resource('eks')}",
        )
        cdk.CfnOutput(
            self, "PrometheusEndpoint", value=self.metrics.workspace.attr_prometheus_endpoint
        )

    def _spaces(self, hp: HyperPod, spaces: Spaces) -> HyperPodSpaces:
        """SageMaker Spaces for the teams ``hyperpod.spaces`` lists (after the cluster's nodes
        and the team namespaces, which its templates and pod-security labels need)."""
        config, names = self.config, self.names
        teams = {t.name: t for t in hp.teams}
        role_arn = {
            r: self.format_arn(service="iam", region="", resource="role", resource_name=r)
            for t in spaces.teams
            for r in t.roles
        }
        mig_max = spaces.max_mig_profile
        return HyperPodSpaces(
            self,
            "Spaces",
            eks_cluster=self.eks,
            hyperpod_cluster=self.cluster,
            hyperpod_cluster_arn=self.cluster.attr_cluster_arn,
            versions={SPACES_ADDON_NAMES[f]: v for f, v in spaces.addons.model_dump().items()},
            controller_role_name=names.role("hyperpod-spaces-controller"),
            ssm_role_name=names.role("hyperpod-spaces-ssm"),
            ebs_csi_role_name=names.role("hyperpod-ebs-csi"),
            teams=[
                SpacesTeam(
                    name=t.team,
                    namespace=teams[t.team].namespace,
                    queue=teams[t.team].queue,
                    priority_class=t.priority_class,
                    user_role_arns=tuple(role_arn[r] for r in t.roles),
                )
                for t in spaces.teams
            ],
            template_names={
                (t.team, app): name
                for t in spaces.teams
                for app, name in zip(spaces.apps, spaces.template_names_of(t.team), strict=True)
            },
            defaults=SpaceDefaults(
                image=spaces_image(
                    registry=registry_host(config.account, config.region),
                    bu=config.name,
                    tag=spaces.image_tag,
                ),
                apps=tuple(spaces.apps),
                cpu=f"{spaces.cpu:g}",
                memory=f"{spaces.memory_gib}Gi",
                storage=f"{spaces.storage_gib}Gi",
                default_mig_profile=spaces.default_mig_profile,
                allowed_mig_profiles=tuple(hp.mig_profiles_within(mig_max) if mig_max else ()),
                max_gpus=spaces.max_gpus,
                idle_shutdown_minutes=spaces.idle_shutdown_minutes,
                idle_shutdown_default_minutes=spaces.idle_shutdown_default_minutes,
            ),
            team_namespaces_ready=self.teams.manifests,
        )

    def _key_and_control_plane_logs(self) -> kms.IKey:
        """The BU's HyperPod key, and the EKS control-plane log group encrypted with it.

        EKS writes control-plane logs (audit among them) to /aws/eks/<cluster>/cluster and makes
        that group itself, unencrypted and kept forever, unless it exists first (EKS user guide,
        "Send control plane logs to CloudWatch Logs"): made here, with the BU's retention; the
        cluster waits for it."""
        config, names = self.config, self.names
        policy = self.removal_policy
        hyperpod_key = self.purpose_key(
            "Key", "hyperpod", "EKS secrets, node volumes, FSx and metrics of HyperPod"
        )
        eks_logs = f"/aws/eks/{names.resource('eks')}/cluster"
        hyperpod_key.admit_log_group(eks_logs)
        self.eks_log_group = logs.LogGroup(
            self,
            "EksControlPlaneLogs",
            log_group_name=eks_logs,
            encryption_key=hyperpod_key.key,
            retention=log_retention(
                config.governance.log_retention_days
                if config.governance is not None
                else DEFAULT_LOG_RETENTION_DAYS
            ),
            removal_policy=policy,
        )
        return hyperpod_key.key

    def _addon_identities(self) -> iam.Role:
        """Each add-on's role, bound by a separate Pod Identity association (see
        platform_constructs.hyperpod_eks); returns the observability collector's role, which
        the metrics workspace grants to."""
        names = self.names
        for identity in MANAGED_IDENTITIES:
            self.eks.managed_identity(
                self,
                identity.name,
                role_name=names.role(identity.role),
                policy=identity.policy,
                why=identity.why,
                namespace=identity.namespace,
                service_account=identity.service_account,
            )
        collector_role = pod_identity_role(
            self, "ObservabilityRole", role_name=names.role("hyperpod-observability")
        )
        self.eks.bind_service_account(
            "ObservabilityIdentity",
            role=collector_role,
            namespace=OBSERVABILITY_NAMESPACE,
            service_account=OBSERVABILITY_SERVICE_ACCOUNT,
        )
        return collector_role

    def _inference_operator(self, security: SecurityStack) -> HyperPodInferenceOperator | None:
        """The HyperPod inference operator, when an endpoint of the BU is served here."""
        config = self.config
        if config.endpoints is None or not config.endpoints.on("hyperpod"):
            return None
        names = self.names
        operator = HyperPodInferenceOperator(
            self,
            "InferenceOperator",
            cluster=self.eks_cluster,
            role_name=names.role("hyperpod-inference"),
            versions=AddonVersions(**config.endpoints.hyperpod_addons.model_dump()),
            models_bucket_name=names.bucket("models"),
            models_key=security.keys["models"],
            tls_bucket_name=names.bucket("inference-tls"),
            tls_key=security.keys["inference-tls"],
            hyperpod_cluster_arn=self.cluster.attr_cluster_arn,
        )
        # Its pods run on the HyperPod nodes; it needs cert-manager and the FSx CSI driver.
        for name in ("cert-manager", "aws-fsx-csi-driver"):
            operator.inference_operator.node.add_dependency(self.addons[name])
        # After the cluster has nodes (the operator's own add-on already reads its ARN).
        for addon in (operator.metrics_server, operator.s3_csi_driver):
            addon.node.add_dependency(self.cluster)
        return operator
