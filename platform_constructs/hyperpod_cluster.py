"""The HyperPod cluster itself: instance groups with MIG labels, its execution role, lifecycle
scripts in the BU's bucket, and task governance (one ComputeQuota per team, one scheduler config).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from platform_constructs import vpc_enis
from platform_constructs.gates import (
    COMPLIANCE_PACKS,
    accept_role_depends_on,
    acknowledge,
    acknowledge_cdk_function,
    acknowledge_each,
    managed_policy_finding,
)
from platform_constructs.service_roles import ECR_PULL_ACTIONS

LIFECYCLE_DIR = Path(__file__).resolve().parent / "hyperpod_lifecycle"
LIFECYCLE_PREFIX = "lifecycle/eks"
MIG_LABEL = "nvidia.com/mig.config"
# CloudFormation's ComputeQuota has no CDK L1 in aws-cdk-lib 2.275 (added later).
COMPUTE_QUOTA = "AWS::SageMaker::ComputeQuota"


@dataclass(frozen=True, kw_only=True)
class InstanceGroupSpec:
    """What every instance group sets: the system group is exactly this."""

    instance_type: str
    count: int
    ebs_volume_gb: int  # at /opt/sagemaker
    threads_per_core: int


@dataclass(frozen=True, kw_only=True)
class GpuGroupSpec(InstanceGroupSpec):
    """A GPU group: its ``platform/group`` label, health checks, flexible types, MIG layout."""

    name: str
    deep_health_checks: tuple[str, ...]
    alternative_instance_types: tuple[str, ...]  # beyond instance_type (InstanceRequirements)
    mig_label: str | None  # the value of the node label nvidia.com/mig.config


@dataclass(frozen=True)
class MigSlices:
    """MIG slices of one profile (e.g. ``1g.18gb``) a quota guarantees."""

    profile: str
    count: int


@dataclass(frozen=True)
class QuotaResource:
    """What one team is guaranteed on one instance type: whole GPUs and/or MIG slices."""

    instance_type: str
    gpus: int
    mig: MigSlices | None


@dataclass(frozen=True)
class TeamQuota:
    """One team's ComputeQuota: its physical name, fair-share weight, sharing and resources."""

    team: str
    quota_name: str
    fair_share_weight: int
    sharing: str  # LendAndBorrow, Lend or DontLend
    borrow_limit_percent: int  # read only for LendAndBorrow
    preempt: str  # LowerPriority or Never
    resources: tuple[QuotaResource, ...]


@dataclass(frozen=True)
class PriorityClass:
    """A Kueue priority class of the scheduler config, by its weight (0-100)."""

    name: str
    weight: int


@dataclass(frozen=True)
class SchedulerSpec:
    """The cluster's one ClusterSchedulerConfig."""

    priority_classes: tuple[PriorityClass, ...]
    fair_share: bool
    idle_resource_sharing: bool


def efa_security_group(scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> ec2.SecurityGroup:
    """Nodes and the EKS control plane: all traffic from members (EFA and NCCL need every
    port between nodes), nothing from elsewhere. Egress stays open because the route tables
    already confine it (closed BUs route only to VPC endpoints); a tighter egress rule would
    need the S3 prefix-list ID, which is a per-region lookup."""
    group = ec2.SecurityGroup(
        scope,
        construct_id,
        vpc=vpc,
        description="HyperPod nodes and EKS control plane: all traffic between members only",
        allow_all_outbound=True,
    )
    group.add_ingress_rule(group, ec2.Port.all_traffic(), "EFA/NCCL and kubelet between members")
    for pack in COMPLIANCE_PACKS:
        acknowledge(
            group,
            f"{pack}-EC2RestrictedCommonPorts",
            "The only ingress rule's source is this security group itself (EFA needs every port "
            "between nodes); nothing outside the group, let alone 0.0.0.0/0, is admitted.",
        )
    return group


def _instance_group(
    group: InstanceGroupSpec, name: str, role: iam.IRole, source_uri: str, key: kms.IKey
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "instanceGroupName": name,
        "instanceType": group.instance_type,
        "instanceCount": group.count,
        "executionRole": role.role_arn,
        "threadsPerCore": group.threads_per_core,
        "lifeCycleConfig": {"sourceS3Uri": source_uri, "onCreate": "on_create.sh"},
        "instanceStorageConfigs": [
            {
                "ebsVolumeConfig": {
                    "volumeSizeInGb": group.ebs_volume_gb,
                    "volumeKmsKeyId": key.key_arn,
                }
            }
        ],
    }
    if isinstance(group, GpuGroupSpec):
        if group.deep_health_checks:
            spec["onStartDeepHealthChecks"] = list(group.deep_health_checks)
        if group.alternative_instance_types:
            spec.pop("instanceType")
            spec["instanceRequirements"] = {
                "instanceTypes": [group.instance_type, *group.alternative_instance_types]
            }
        labels = {"platform/group": group.name}
        if group.mig_label:
            labels[MIG_LABEL] = group.mig_label
        spec["kubernetesConfig"] = {"labels": labels}
    else:
        spec["kubernetesConfig"] = {"labels": {"platform/group": "system"}}
    return spec


class HyperPodCluster(Construct):
    """``AWS::SageMaker::Cluster`` orchestrated by EKS, plus its task-governance policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        execution_role_name: str,
        eks_cluster_arn: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        lifecycle_bucket: s3.IBucket,
        volume_key: kms.IKey,
        system_group: InstanceGroupSpec,
        gpu_groups: Sequence[GpuGroupSpec],
        own_repositories: Sequence[str],
        aws_registries: Mapping[str, str],
    ) -> None:
        """``own_repositories``: repository names (``*`` patterns allowed) of this account the
        nodes pull from; ``aws_registries``: AWS-owned registry account -> what it serves."""
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # No aws:SourceAccount/aws:SourceArn in this trust (unlike the training and Studio
        # roles): the confused-deputy page of the SageMaker AI developer guide documents the
        # keys per feature (jobs, inference, pipelines, Studio, ...) and has no HyperPod
        # section, and AWS's reference execution roles trust sagemaker.amazonaws.com without a
        # condition (sagemaker-hyperpod-cluster-setup eks/cloudformation/
        # sagemaker-iam-role-template.yaml; awsome-distributed-ai hyperpod-eks-tf
        # modules/sagemaker_iam_role and 0.AmazonSageMakerClustersExecutionRoleTrustedEntities
        # .json). Without a source that HyperPod sends the keys when its nodes assume the role, a
        # condition could leave every node without credentials; the exception is listed in
        # tests/deploy_contract/test_isolation_contract.py (TRUST_WITHOUT_SOURCE_ACCOUNT).
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            role_name=execution_role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "AmazonSageMakerClusterInstanceRolePolicy"
                )
            ],
        )
        acknowledge(
            self.execution_role,
            managed_policy_finding("AmazonSageMakerClusterInstanceRolePolicy"),
            "The AWS-managed HyperPod instance policy: node agents' CloudWatch metrics/logs and "
            "SSM sessions; AWS updates it with the HyperPod agents it serves.",
        )
        # HyperPod attaches node ENIs in the cluster's subnets (documented execution-role
        # permissions); EC2 has no resource ARNs for Describe* and the ENIs do not exist yet.
        # ENI changes are pinned to this BU's VPC (ec2:Vpc), so one BU's nodes can never touch
        # another BU's interfaces in a shared account; tags go on network interfaces only, as
        # AWS's reference role has it (awsome-distributed-ai modules/sagemaker_iam_role).
        vpc_arn = stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=[*vpc_enis.MANAGE_ACTIONS, "ec2:DetachNetworkInterface"],
                resources=["*"],
                conditions={"ArnEquals": {"ec2:Vpc": vpc_arn}},
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ec2:CreateTags"],
                resources=[
                    stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
                ],
            )
        )
        # Nodes pull images from ECR (the training image, add-on images) and join the cluster.
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:GetAuthorizationToken", *vpc_enis.DESCRIBE_ACTIONS], resources=["*"]
            )
        )
        repositories = [
            stack.format_arn(service="ecr", resource="repository", resource_name=name)
            for name in own_repositories
        ] + [
            stack.format_arn(
                service="ecr", account=account, resource="repository", resource_name="*"
            )
            for account in aws_registries
        ]
        self.execution_role.add_to_policy(
            iam.PolicyStatement(actions=list(ECR_PULL_ACTIONS), resources=repositories)
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["eks-auth:AssumeRoleForPodIdentity"], resources=[eks_cluster_arn]
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(actions=["eks:DescribeCluster"], resources=[eks_cluster_arn])
        )
        lifecycle_bucket.grant_read(self.execution_role, f"{LIFECYCLE_PREFIX}/*")
        volume_key.grant_encrypt_decrypt(self.execution_role)
        # EBS attaches the encrypted node volumes through a grant on the key.
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[volume_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        policy = self.execution_role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:Describe* and ecr:GetAuthorizationToken have no resource-level permissions; "
            "ENI create/delete/detach, on ENIs that do not exist yet, is pinned to this BU's VPC "
            "by the ec2:Vpc condition.",
        )
        for name in own_repositories:
            if name.endswith("*"):
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ecr:{stack.region}:"
                    f"{stack.account}:repository/{name}]",
                    "Nodes pull the BU's own images (the staged chart's mirrored images, "
                    "repositories later stacks add) under the BU's namespace only.",
                )
        for account, serves in aws_registries.items():
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ecr:{stack.region}:"
                f"{account}:repository/*]",
                f"An AWS-owned registry the nodes pull from in this region: {serves}.",
            )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ec2:{stack.region}:"
            f"{stack.account}:network-interface/*]",
            "HyperPod tags the node ENIs it creates, whose IDs do not exist yet; tagging is "
            "limited to network interfaces of this account and region.",
        )
        _acknowledge_bucket_read(policy, lifecycle_bucket, f"{LIFECYCLE_PREFIX}/*", "nodes")
        _acknowledge_key_use(policy, "node EBS volumes")
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                policy,
                f"{pack}-IAMNoInlinePolicy",
                "The execution role's policy is written for this one role (node ENIs, ECR pulls, "
                "its lifecycle prefix and volume key); an inline policy cannot drift onto others.",
            )

        self.deployment = s3deploy.BucketDeployment(
            self,
            "LifecycleScripts",
            sources=[s3deploy.Source.asset(str(LIFECYCLE_DIR))],
            destination_bucket=lifecycle_bucket,
            destination_key_prefix=LIFECYCLE_PREFIX,
            vpc=vpc,
            vpc_subnets=subnets,
            memory_limit=256,
            prune=True,
        )
        self._acknowledge_deployment(lifecycle_bucket)
        source_uri = f"s3://{lifecycle_bucket.bucket_name}/{LIFECYCLE_PREFIX}/"
        groups = [
            _instance_group(system_group, "system", self.execution_role, source_uri, volume_key),
            *(
                _instance_group(g, g.name, self.execution_role, source_uri, volume_key)
                for g in gpu_groups
            ),
        ]
        subnet_ids = vpc.select_subnets(**_selection(subnets)).subnet_ids
        self.cluster = sagemaker.CfnCluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            orchestrator={"eks": {"clusterArn": eks_cluster_arn}},
            vpc_config={
                "securityGroupIds": [security_group.security_group_id],
                "subnets": subnet_ids,
            },
            node_recovery="Automatic",
            instance_groups=groups,
        )
        self.cluster.node.add_dependency(self.deployment)

    def _acknowledge_deployment(self, bucket: s3.IBucket) -> None:
        """The CDK's bucket-deployment function (one per stack, outside this construct)."""
        stack = cdk.Stack.of(self)
        function = next(
            c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")
        )
        what = "Lifecycle-script upload (CDK BucketDeployment, in the private subnets)"
        acknowledge_cdk_function(function, what)
        accept_role_depends_on(function.node.default_child)  # type: ignore[arg-type]
        policy = function.node.find_child("ServiceRole").node.find_child("DefaultPolicy")
        assets = f"cdk-hnb659fds-assets-{stack.account}-{stack.region}"
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:s3:::{assets}/*]",
            "The upload reads the lifecycle-script asset zip from the CDK bootstrap bucket of "
            "this account and region; asset keys are content hashes not known in advance.",
        )
        _acknowledge_bucket_read(policy, bucket, "*", "the upload")
        findings = {
            "Action::s3:DeleteObject*": "prune=True removes scripts no longer in the repository "
            "from the lifecycle prefix, so nodes never run a deleted script.",
            "Action::s3:Abort*": "CDK's write grant lets the upload abort its own failed "
            "multipart uploads into the lifecycle bucket only.",
        }
        acknowledge_each(policy, {f"AwsSolutions-IAM5[{f}]": why for f, why in findings.items()})
        _acknowledge_key_use(policy, "the lifecycle bucket's objects")

    def add_task_governance(
        self,
        *,
        scheduler_name: str,
        teams: Sequence[TeamQuota],
        scheduler: SchedulerSpec,
        after: Sequence[cdk.CfnResource],
        tags: Mapping[str, str],
    ) -> tuple[dict[str, cdk.CfnResource], sagemaker.CfnClusterSchedulerConfig]:
        """One ComputeQuota per team and the cluster's scheduler config, after Kueue is up.

        ``tags`` go on each quota explicitly: a raw ``CfnResource`` has no tag manager, so
        ``cdk.Tags`` (the Stage's cost-allocation tags) would skip it."""
        arn = self.cluster.attr_cluster_arn
        self.scheduler = sagemaker.CfnClusterSchedulerConfig(
            self,
            "Scheduler",
            name=scheduler_name,
            cluster_arn=arn,
            scheduler_config={
                "priorityClasses": [
                    {"name": p.name, "weight": p.weight} for p in scheduler.priority_classes
                ],
                "fairShare": "Enabled" if scheduler.fair_share else "Disabled",
                "idleResourceSharing": "Enabled" if scheduler.idle_resource_sharing else "Disabled",
            },
        )
        for dependency in after:
            self.scheduler.node.add_dependency(dependency)
        self.quotas: dict[str, cdk.CfnResource] = {}
        for team in teams:
            sharing: dict[str, Any] = {"Strategy": team.sharing}
            if team.sharing == "LendAndBorrow":
                sharing["BorrowLimit"] = team.borrow_limit_percent
            quota = cdk.CfnResource(
                self,
                f"Quota-{team.team}",
                type=COMPUTE_QUOTA,
                properties={
                    "Name": team.quota_name,
                    "ClusterArn": arn,
                    "ComputeQuotaTarget": {
                        "TeamName": team.team,
                        "FairShareWeight": team.fair_share_weight,
                    },
                    "ComputeQuotaConfig": {
                        "ComputeQuotaResources": [_quota_resource(r) for r in team.resources],
                        "PreemptTeamTasks": team.preempt,
                        "ResourceSharingConfig": sharing,
                    },
                    "ActivationState": "Enabled",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                },
            )
            quota.node.add_dependency(self.scheduler)
            self.quotas[team.team] = quota
        return self.quotas, self.scheduler


def _quota_resource(quota: QuotaResource) -> dict[str, Any]:
    resource: dict[str, Any] = {"InstanceType": quota.instance_type}
    if quota.gpus:
        resource["Accelerators"] = quota.gpus
    if quota.mig is not None:
        resource["AcceleratorPartition"] = {
            "Type": f"mig-{quota.mig.profile}",
            "Count": quota.mig.count,
        }
    return resource


def _selection(subnets: ec2.SubnetSelection) -> dict[str, Any]:
    return {"subnet_type": subnets.subnet_type, "availability_zones": subnets.availability_zones}


def _acknowledge_bucket_read(policy: IConstruct, bucket: s3.IBucket, prefix: str, who: str) -> None:
    stack = cdk.Stack.of(policy)
    findings = {
        "Action::s3:GetObject*": f"CDK's read grant for {who}: lifecycle bucket objects only.",
        "Action::s3:GetBucket*": f"CDK's read grant for {who}: bucket location and versioning "
        "of the lifecycle bucket only.",
        "Action::s3:List*": f"CDK's read grant for {who}: listing the lifecycle bucket only.",
        f"Resource::arn:{stack.partition}:s3:::{bucket.bucket_name}/{prefix}": f"{who} read "
        "every script under the lifecycle prefix; script names change with the repository.",
    }
    acknowledge_each(
        policy, {f"AwsSolutions-IAM5[{finding}]": reason for finding, reason in findings.items()}
    )


def _acknowledge_key_use(policy: IConstruct, what: str) -> None:
    reason = (
        f"CDK's encrypt/decrypt grant on one customer-managed key for {what}; "
        "GenerateDataKey*/ReEncrypt* are the envelope-encryption calls, on that key only."
    )
    acknowledge_each(
        policy,
        {
            f"AwsSolutions-IAM5[Action::{action}]": reason
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*")
        },
    )
