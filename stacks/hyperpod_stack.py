"""HyperPod stack: the BU's private EKS control plane, its HyperPod cluster, the teams on it.

One stack, not one per lifecycle: the HyperPod cluster, its quotas and the team objects all
reference the EKS cluster, and splitting them would only add cross-stack exports that pin the
EKS cluster in place. Stateful data lives elsewhere (S3 in the security stack; FSx here is a
cache of datasets and checkpoints and is retained with the BU's removal policy).
"""

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from config import parameters as params
from config.aws_registries import node_image_accounts, registry_host
from config.governance import DEFAULT_LOG_RETENTION_DAYS
from config.hyperpod import ADDON_NAMES, SPACES_ADDON_NAMES
from config.schema import BusinessUnitConfig
from platform_constructs.access import MlflowAccess
from platform_constructs.gates import acknowledge
from platform_constructs.hyperpod_chart import DependenciesChart, chart_values
from platform_constructs.hyperpod_cluster import HyperPodCluster, efa_security_group
from platform_constructs.hyperpod_eks import HyperPodEksCluster, pod_identity_role
from platform_constructs.hyperpod_inference import AddonVersions, HyperPodInferenceOperator
from platform_constructs.hyperpod_observability import (
    NAMESPACE as OBSERVABILITY_NAMESPACE,
)
from platform_constructs.hyperpod_observability import (
    SERVICE_ACCOUNT as OBSERVABILITY_SERVICE_ACCOUNT,
)
from platform_constructs.hyperpod_observability import (
    MetricsWorkspace,
    addon_configuration,
)
from platform_constructs.hyperpod_spaces import (
    HyperPodSpaces,
    SpaceDefaults,
    SpacesTeam,
    spaces_image,
)
from platform_constructs.hyperpod_workloads import FSX_CLAIM, SERVICE_ACCOUNT, TeamWorkloads
from platform_constructs.keys import PurposeKey
from platform_constructs.lustre import LustreFileSystem
from stacks._common import log_retention, removal_policy, stage_tags
from stacks.network_stack import NetworkStack, bu_repositories
from stacks.security_stack import SecurityStack

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


def chart_repository(config: BusinessUnitConfig) -> str:
    """The BU's ECR repository for the dependencies chart (``make stage-hyperpod-chart``)."""
    return f"{config.name}/hyperpod-helm-chart"


class HyperPodStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BusinessUnitConfig,
        network: NetworkStack,
        security: SecurityStack,
        mlflow: MlflowAccess | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        hp = config.hyperpod
        if hp is None:
            raise ValueError(f"{config.name}: the HyperPod stack needs a hyperpod section")
        names = config.naming
        policy = removal_policy(config)
        az = hp.availability_zone or config.network.availability_zones[0]
        node_subnets = ec2.SubnetSelection(
            subnet_type=network.private_subnets.subnet_type, availability_zones=[az]
        )

        # The BU's buckets by their derived names (the same names the security stack gave
        # them), with its keys: grants then name the bucket, not a hashed cross-stack export.
        buckets = {
            p: s3.Bucket.from_bucket_attributes(
                self,
                f"Bucket-{p}",
                bucket_name=names.bucket(p),
                encryption_key=security.keys[p],
            )
            for p in ("data", "checkpoints", "models", "hyperpod-lifecycle")
        }
        self.key = self._key_and_control_plane_logs(config)
        self.security_group = efa_security_group(self, "ClusterSecurityGroup", vpc=network.vpc)

        versions = {ADDON_NAMES[field]: v for field, v in hp.addons.model_dump().items()}
        self.eks = HyperPodEksCluster(
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
            addon_versions=versions,
        )
        self.eks_cluster = self.eks.cluster
        self.eks_cluster.node.add_dependency(self.eks_log_group)
        self.addons = self.eks.addons

        collector_role = self._addon_identities(config)

        mig = any(g.mig_label for g in hp.gpu_groups)
        serves_inference = config.endpoints is not None and bool(config.endpoints.on("hyperpod"))
        self.hyperpod = HyperPodCluster(
            self,
            "HyperPod",
            cluster_name=names.resource("hyperpod"),
            execution_role_name=names.role("hyperpod-execution"),
            eks_cluster_arn=self.eks_cluster.cluster_arn,
            vpc=network.vpc,
            subnets=node_subnets,
            security_group=self.security_group,
            lifecycle_bucket=buckets["hyperpod-lifecycle"],
            volume_key=self.key,
            system_group=hp.system_group,
            gpu_groups=hp.gpu_groups,
            own_repositories=bu_repositories(config),
            aws_registries=node_image_accounts(
                config.region, mig=mig, hyperpod_inference=serves_inference
            ),
        )
        self.cluster = self.hyperpod.cluster
        # No access entry for the execution role here: HyperPod creates it at CreateCluster
        # (SageMaker API reference, ClusterMetadata.EksRoleAccessEntries: "created by HyperPod
        # on your behalf"); a second one would collide with it.
        # The nodes run the add-ons' pods: the cluster waits for the networking add-ons.
        for name in ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"):
            self.cluster.node.add_dependency(self.addons[name])
        # Add-ons whose pods need nodes come after the cluster (awsome-distributed-ai
        # hyperpod-eks-tf: each HyperPod add-on module depends_on the hyperpod_cluster module).
        for name in AFTER_NODES:
            self.addons[name].node.add_dependency(self.cluster)

        self.inference = self._inference_operator(config, security)

        quotas, scheduler = self.hyperpod.add_task_governance(
            quota_names={t.name: names.resource(f"quota-{t.name}") for t in hp.teams},
            scheduler_name=names.resource("scheduler"),
            teams=hp.teams,
            quotas=hp.quotas,
            scheduler=hp.scheduler,
            after=[self.addons["amazon-sagemaker-hyperpod-taskgovernance"]],
            tags=stage_tags(config),
        )

        self.metrics = MetricsWorkspace(
            self,
            "Metrics",
            alias=names.resource("hyperpod-metrics"),
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
            grafana_name=names.resource("hyperpod-metrics") if hp.observability.grafana else None,
        )
        grafana = None
        if self.metrics.grafana is not None:
            grafana_arn = self.format_arn(
                service="grafana",
                resource="/workspaces",
                resource_name=self.metrics.grafana.attr_id,
            )
            grafana = (names.resource("hyperpod-metrics"), grafana_arn)
        # Tokens inside the JSON string resolve to an Fn::Join at synthesis.
        self.addons[
            "amazon-sagemaker-hyperpod-observability"
        ].configuration_values = addon_configuration(
            hp.observability,
            prometheus_endpoint=self.metrics.workspace.attr_prometheus_endpoint,
            workspace_arn=self.metrics.workspace.attr_arn,
            grafana=grafana,
        )

        self.fsx = LustreFileSystem(
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
            removal_policy=policy,
        ).file_system

        # Installed before the HyperPod cluster, as AWS's guide and references do (SageMaker
        # guide, "Install packages on the Amazon EKS cluster using Helm": creating the cluster
        # first "might result in ... the creation process failing entirely"; awsome-distributed-
        # ai: module.hyperpod_cluster depends_on module.helm_chart).
        self.chart = DependenciesChart(
            self,
            "Dependencies",
            eks_cluster=self.eks_cluster,
            repository_name=chart_repository(config),
            version=hp.dependencies_chart.version,
            digest=hp.dependencies_chart.digest,
            values=chart_values(
                bu=config.name, account=config.account, region=config.region, mig=mig
            ),
            gpu_groups=hp.gpu_groups,
            vpc=network.vpc,
            subnets=network.private_subnets,
        )
        self.cluster.node.add_dependency(self.chart.chart)
        self.teams = TeamWorkloads(
            self,
            "Teams",
            eks_cluster=self.eks,
            teams=hp.teams,
            role_names={t.name: names.role(f"hyperpod-team-{t.name}") for t in hp.teams},
            pv_names={t.name: f"fsx-{t.name}" for t in hp.teams},
            data_bucket=buckets["data"],
            checkpoints_bucket=buckets["checkpoints"],
            models_bucket=buckets["models"],
            fsx_id=self.fsx.file_system_id,
            fsx_dns=self.fsx.dns_name,
            fsx_mount=self.fsx.mount_name,
            fsx_capacity_gib=hp.fsx.storage_capacity_gib,
            mlflow=mlflow,
            after=[*quotas.values(), self.addons["aws-fsx-csi-driver"]],
        )
        del scheduler
        self.spaces = self._spaces(config) if hp.spaces is not None else None

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
        for name, value in published.items():
            ssm.StringParameter(
                self,
                "Parameter-" + name.replace("/", "-"),
                parameter_name=names.parameter(name),
                string_value=value,
            )
        cdk.CfnOutput(self, "HyperPodClusterName", value=names.resource("hyperpod"))
        cdk.CfnOutput(self, "EksClusterName", value=self.eks_cluster.cluster_name)
        cdk.CfnOutput(
            self,
            "KubeconfigCommand",
            value=f"aws eks update-kubeconfig --region {config.region} "
            f"--name {names.resource('eks')}",
        )
        cdk.CfnOutput(
            self, "PrometheusEndpoint", value=self.metrics.workspace.attr_prometheus_endpoint
        )

    def _spaces(self, config: BusinessUnitConfig) -> HyperPodSpaces:
        """SageMaker Spaces for the teams ``hyperpod.spaces`` lists (after the cluster's nodes
        and the team namespaces, which its templates and pod-security labels need)."""
        hp = config.hyperpod
        if hp is None or hp.spaces is None:
            raise ValueError(f"{config.name}: spaces need a hyperpod.spaces section")
        spaces, names = hp.spaces, config.naming
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

    def _key_and_control_plane_logs(self, config: BusinessUnitConfig) -> kms.IKey:
        """The BU's HyperPod key, and the EKS control-plane log group encrypted with it.

        EKS writes control-plane logs (audit among them) to /aws/eks/<cluster>/cluster and makes
        that group itself, unencrypted and kept forever, unless it exists first (EKS user guide,
        "Send control plane logs to CloudWatch Logs"): made here, with the BU's retention; the
        cluster waits for it."""
        names, policy = config.naming, removal_policy(config)
        hyperpod_key = PurposeKey(
            self,
            "Key",
            alias=names.key_alias("hyperpod"),
            description=f"{config.name}: EKS secrets, node volumes, FSx and metrics of HyperPod",
            removal_policy=policy,
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

    def _addon_identities(self, config: BusinessUnitConfig) -> iam.Role:
        """Each add-on's role, bound by a separate Pod Identity association (see
        platform_constructs.hyperpod_eks); returns the observability collector's role, which
        the metrics workspace grants to."""
        names = config.naming
        self._managed_identity(
            "TrainingOperator",
            role_name=names.role("hyperpod-training-operator"),
            policy=TRAINING_OPERATOR_POLICY,
            namespace=TRAINING_OPERATOR_NAMESPACE,
            service_account=TRAINING_OPERATOR_SERVICE_ACCOUNT,
            why="The AWS-managed policy HyperPod documents for its training operator (describe "
            "the cluster and its nodes for job auto-resume); AWS versions it with the add-on.",
        )
        # The VPC CNI assigns pod IPs with the EC2 actions of AmazonEKS_CNI_Policy; its pods get
        # them from their own Pod Identity (EKS user guide, "Amazon VPC CNI plugin for
        # Kubernetes" add-on IAM: supported from v1.15.5-eksbuild.1), not from the node role.
        self._managed_identity(
            "Cni",
            role_name=names.role("hyperpod-vpc-cni"),
            policy=CNI_POLICY,
            namespace=CNI_NAMESPACE,
            service_account=CNI_SERVICE_ACCOUNT,
            why="The AWS-managed policy the EKS guide names for the VPC CNI's aws-node pods (ENI "
            "and IP assignment on the cluster's nodes); AWS versions it with the CNI.",
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

    def _managed_identity(
        self,
        name: str,
        *,
        role_name: str,
        policy: str,
        namespace: str,
        service_account: str,
        why: str,
    ) -> None:
        """A Pod Identity role holding one AWS-managed policy, bound to one service account."""
        role = pod_identity_role(self, f"{name}Role", role_name=role_name)
        role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
        acknowledge(
            role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", why
        )
        self.eks.bind_service_account(
            f"{name}Identity", role=role, namespace=namespace, service_account=service_account
        )

    def _inference_operator(
        self, config: BusinessUnitConfig, security: SecurityStack
    ) -> HyperPodInferenceOperator | None:
        """The HyperPod inference operator, when an endpoint of the BU is served here."""
        if config.endpoints is None or not config.endpoints.on("hyperpod"):
            return None
        names = config.naming
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
