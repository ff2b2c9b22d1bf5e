"""The EKS control plane a HyperPod cluster attaches to: private endpoint, API auth, pinned add-ons.

Add-ons are ``AWS::EKS::Addon`` resources, each at the version the BU config pins, created in
dependency order (networking, then cert-manager and the Pod Identity agent, then the HyperPod
operators). Roles for add-ons are bound with separate ``AWS::EKS::PodIdentityAssociation``
resources: the default training-operator version rejects the inline form.

Every Pod Identity role trusts ``pods.eks.amazonaws.com`` for this account only, and once bound
for exactly the cluster, namespace and service account it is bound to (see
:class:`PodIdentityRole`). The kubectl provider's role pulls only the charts this stack
installs from its own account's ECR (see :meth:`HyperPodEksCluster._scope_kubectl_role`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v33 import KubectlV33Layer
from constructs import Construct

from platform_constructs.gates import (
    COMPLIANCE_PACKS,
    accept_role_depends_on,
    acknowledge,
    acknowledge_cdk_function,
    acknowledge_each,
    attach_managed_policy,
    managed_policy_finding,
)
from platform_constructs.service_roles import ECR_PULL_ACTIONS, for_account

# Each add-on waits for the ones listed (add-on name -> prerequisites).
ADDON_ORDER: dict[str, tuple[str, ...]] = {
    "vpc-cni": (),
    "kube-proxy": (),
    "coredns": ("vpc-cni",),
    "eks-pod-identity-agent": ("vpc-cni",),
    "cert-manager": ("coredns",),
    "aws-fsx-csi-driver": ("eks-pod-identity-agent",),
    "amazon-sagemaker-hyperpod-training-operator": ("cert-manager", "eks-pod-identity-agent"),
    "amazon-sagemaker-hyperpod-taskgovernance": ("cert-manager",),
    "amazon-sagemaker-hyperpod-observability": ("cert-manager", "eks-pod-identity-agent"),
}
LOG_TYPES = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]
CLUSTER_ADMIN = "AmazonEKSClusterAdminPolicy"
# What the kubectl handler role keeps of the managed policies CDK gives it.
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
PODS_PRINCIPAL = "pods.eks.amazonaws.com"
# The request tags EKS Pod Identity sends when it assumes a role (EKS user guide, "Create IAM
# role with trust policy required by EKS Pod Identity", Setting Conditions; the list in "Grant
# Pods access to AWS resources based on tags"). The cluster tag's value is the cluster's ARN.
CLUSTER_TAG = "aws:RequestTag/eks-cluster-arn"
NAMESPACE_TAG = "aws:RequestTag/kubernetes-namespace"
SERVICE_ACCOUNT_TAG = "aws:RequestTag/kubernetes-service-account"


class PodIdentityRole(iam.Role):
    """A role only EKS Pod Identity can assume (``sts:AssumeRole`` + ``sts:TagSession``), only
    for this account, and once bound (:meth:`HyperPodEksCluster.bind_service_account`) only for
    the bound cluster, namespace and service account.

    Conditions, each sourced:
    - ``aws:SourceAccount``: the confused-deputy key AWS services set when they act for an
      account; EKS passes the source organization (``aws:SourceOrgId``) when it assumes a role
      for Pod Identity (EKS Best Practices Guide, Security, "Identity and Access Management",
      EKS Pod Identities) and trust policies conditioned on ``aws:SourceAccount`` are reported
      working (awslabs/mountpoint-s3-csi-driver#781).
    - ``aws:RequestTag/eks-cluster-arn``, ``kubernetes-namespace``,
      ``kubernetes-service-account``: the session tags EKS sends on the AssumeRole call, which
      the EKS user guide documents for restricting "which service accounts, namespaces, and
      clusters can use this role". They stand in for ``aws:SourceArn``, whose value for Pod
      Identity the EKS guides do not document.
    """

    def __init__(self, scope: Construct, construct_id: str, *, role_name: str) -> None:
        account = cdk.Stack.of(scope).account
        super().__init__(
            scope,
            construct_id,
            role_name=role_name,
            assumed_by=iam.SessionTagsPrincipal(for_account(PODS_PRINCIPAL, account)),
        )
        self._account = account
        self._bindings: list[tuple[str, str, str]] = []

    def trust_binding(self, *, cluster_arn: str, namespace: str, service_account: str) -> None:
        """Trust Pod Identity for one more (cluster, namespace, service account): the trust
        policy becomes one statement per binding, each with its own session-tag conditions."""
        self._bindings.append((cluster_arn, namespace, service_account))
        statements = [
            {
                "Effect": "Allow",
                "Principal": {"Service": PODS_PRINCIPAL},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {
                        "aws:SourceAccount": self._account,
                        CLUSTER_TAG: cluster,
                        NAMESPACE_TAG: ns,
                        SERVICE_ACCOUNT_TAG: sa,
                    }
                },
            }
            for cluster, ns, sa in self._bindings
        ]
        cfn_role = self.node.default_child
        if not isinstance(cfn_role, iam.CfnRole):
            raise TypeError(f"unexpected role resource {cfn_role}")
        # The whole document, rewritten on each binding: CDK's statement (account only) is the
        # trust of a role no association uses yet.
        cfn_role.add_property_override(
            "AssumeRolePolicyDocument", {"Version": "2012-10-17", "Statement": statements}
        )


def pinned_addon(
    scope: Construct,
    construct_id: str,
    *,
    cluster_name: str,
    name: str,
    version: str,
    preserve_on_delete: bool | None = False,
    **properties: Any,
) -> eks.CfnAddon:
    """The one way an EKS add-on is installed here: at the version the BU config pins (each
    pin validated there), and the config owns it, so a manual change on the cluster is
    overwritten. ``preserve_on_delete`` None leaves the property out (the inference
    operator's add-ons were deployed without it; setting it now would be a template change)."""
    return eks.CfnAddon(
        scope,
        construct_id,
        cluster_name=cluster_name,
        addon_name=name,
        addon_version=version,
        resolve_conflicts="OVERWRITE",
        preserve_on_delete=preserve_on_delete,
        **properties,
    )


def pod_identity_role(scope: Construct, construct_id: str, *, role_name: str) -> PodIdentityRole:
    """A :class:`PodIdentityRole`: bind it with ``HyperPodEksCluster.bind_service_account``."""
    return PodIdentityRole(scope, construct_id, role_name=role_name)


class HyperPodEksCluster(Construct):
    """An ``aws_eks_v2`` cluster with no nodes of its own: HyperPod instance groups join it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        cluster_role_name: str,
        kubectl_role_name: str,
        kubernetes_version: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        secrets_key: kms.IKey,
        admin_role_arns: Sequence[str],
        addon_versions: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        cluster_role = iam.Role(
            self,
            "ClusterRole",
            role_name=cluster_role_name,
            assumed_by=iam.ServicePrincipal("eks.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKSClusterPolicy")
            ],
        )
        acknowledge(
            cluster_role,
            managed_policy_finding("AmazonEKSClusterPolicy"),
            "AmazonEKSClusterPolicy is the service role policy EKS documents for a cluster role; "
            "EKS needs its EC2/ELB actions to manage the control plane ENIs.",
        )
        kubectl_role = iam.Role(
            self,
            "KubectlRole",
            role_name=kubectl_role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        # The kubectl handler runs in the private subnets: only it reaches the private endpoint.
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            version=eks.KubernetesVersion.of(kubernetes_version),
            role=cluster_role,
            vpc=vpc,
            vpc_subnets=[subnets],
            endpoint_access=eks.EndpointAccess.PRIVATE,
            security_group=security_group,
            secrets_encryption_key=secrets_key,
            cluster_logging=LOG_TYPES,
            # HyperPod nodes only: no Auto Mode, no managed node group, no default add-ons
            # (every add-on below is pinned instead).
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            bootstrap_self_managed_addons=False,
            bootstrap_cluster_creator_admin_permissions=False,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=KubectlV33Layer(self, "KubectlLayer"),
                private_subnets=vpc.select_subnets(subnet_type=subnets.subnet_type).subnets,
                role=kubectl_role,
                memory=cdk.Size.mebibytes(1024),
            ),
        )
        self.kubectl_role = kubectl_role
        self._scope_kubectl_role()
        self._acknowledge_kubectl_provider()
        for i, arn in enumerate(admin_role_arns):
            eks.AccessEntry(
                self,
                f"Admin{i}",
                cluster=self.cluster,  # type: ignore[arg-type]  # jsii protocol gap
                principal=arn,
                access_policies=[
                    eks.AccessPolicy.from_access_policy_name(
                        CLUSTER_ADMIN, access_scope_type=eks.AccessScopeType.CLUSTER
                    )
                ],
            )

        self.addons: dict[str, eks.CfnAddon] = {}
        for name, needs in ADDON_ORDER.items():
            addon = pinned_addon(
                self,
                f"Addon-{name}",
                cluster_name=self.cluster.cluster_name,
                name=name,
                version=addon_versions[name],
            )
            for need in needs:
                addon.node.add_dependency(self.addons[need])
            self.addons[name] = addon

    def bind_service_account(
        self, construct_id: str, *, role: iam.IRole, namespace: str, service_account: str
    ) -> eks.CfnPodIdentityAssociation:
        """A separate Pod Identity association, after the agent add-on is running; the role's
        trust then admits this cluster's ``namespace/service_account`` only."""
        if not isinstance(role, PodIdentityRole):
            raise TypeError(
                f"{role}: bind a role made by pod_identity_role, whose trust policy this "
                "binding narrows to the cluster, namespace and service account"
            )
        role.trust_binding(
            cluster_arn=self.cluster.cluster_arn,
            namespace=namespace,
            service_account=service_account,
        )
        association = eks.CfnPodIdentityAssociation(
            self,
            construct_id,
            cluster_name=self.cluster.cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.role_arn,
        )
        association.node.add_dependency(self.addons["eks-pod-identity-agent"])
        return association

    def managed_identity(
        self,
        scope: Construct,
        name: str,
        *,
        role_name: str,
        policy: str,
        why: str,
        namespace: str,
        service_account: str,
    ) -> tuple[PodIdentityRole, eks.CfnPodIdentityAssociation]:
        """A Pod Identity role under ``scope`` (``<name>Role``) holding the AWS-managed
        ``policy`` (``why`` answers cdk-nag's IAM4), bound to ``namespace/service_account`` by
        an association under this cluster (``<name>Identity``)."""
        role = pod_identity_role(scope, f"{name}Role", role_name=role_name)
        attach_managed_policy(role, policy, why)
        association = self.bind_service_account(
            f"{name}Identity", role=role, namespace=namespace, service_account=service_account
        )
        return role, association

    def _scope_kubectl_role(self) -> None:
        """The kubectl provider attaches ``AmazonEC2ContainerRegistryReadOnly`` (pull from every
        repository of the account, other BUs' included) and, in the aws partition, public-ECR
        read-only to its handler role (aws-cdk-lib 2.275 ``aws-eks-v2/lib/kubectl-provider.js``).
        The role keeps only ``AWSLambdaVPCAccessExecutionRole`` (the handler's ENIs and logs in
        the private subnets) and gets, at synthesis, pull on exactly the charts this stack
        installs from its own account's ECR (:class:`_ChartPullGrant`)."""
        cfn_role = self.kubectl_role.node.default_child
        if not isinstance(cfn_role, iam.CfnRole):
            raise TypeError(f"unexpected role resource {cfn_role}")
        vpc_access = iam.ManagedPolicy.from_aws_managed_policy_name(VPC_ACCESS_POLICY)
        cfn_role.managed_policy_arns = [vpc_access.managed_policy_arn]
        # The partition condition only chose the public-ECR policy; unused, cfn-lint warns.
        if not self.node.try_remove_child("HasEcrPublic"):
            raise RuntimeError(
                "aws-eks-v2's kubectl provider no longer adds HasEcrPublic: re-check"
            )
        cdk.Aspects.of(self.kubectl_role).add(_ChartPullGrant(self))

    def chart_repository_arns(self) -> list[str]:
        """ECR repositories of this account and region that this stack's Helm charts are
        installed from (``oci://<account>.dkr.ecr.<region>.<suffix>/<repository>``)."""
        stack = cdk.Stack.of(self)
        own_registry = f"{stack.account}.dkr.ecr.{stack.region}."
        arns = []
        for construct in stack.node.find_all():
            if not isinstance(construct, eks.HelmChart) or not construct.repository:
                continue
            host, _, repository = construct.repository.removeprefix("oci://").partition("/")
            if construct.repository.startswith("oci://") and host.startswith(own_registry):
                arns.append(
                    stack.format_arn(service="ecr", resource="repository", resource_name=repository)
                )
        return sorted(set(arns))

    def _acknowledge_kubectl_provider(self) -> None:
        provider = self.cluster.node.find_child("KubectlProvider")
        what = "EKS kubectl provider (applies this stack's Kubernetes objects and Helm chart)"
        acknowledge_cdk_function(provider, what)
        handler = provider.node.find_child("Handler").node.default_child
        on_event = provider.node.find_child("Provider").node.find_child("framework-onEvent")
        for function in (handler, on_event.node.default_child):
            accept_role_depends_on(function)  # type: ignore[arg-type]
        handler_id = cdk.Stack.of(self).get_logical_id(handler)  # type: ignore[arg-type]
        acknowledge(
            provider,
            f"AwsSolutions-IAM5[Resource::<{handler_id}.Arn>:*]",
            "The provider framework invokes any version of the one kubectl handler function; "
            "the :* suffix covers its versions and aliases, no other function.",
        )
        findings = {
            managed_policy_finding(VPC_ACCESS_POLICY): f"{what}: the handler runs in the "
            "private subnets (no internet path) and this AWS policy holds its ENI and log-stream "
            "permissions; it is the only managed policy left on the role.",
            "AwsSolutions-IAM5[Resource::*]": f"{what}: ecr:GetAuthorizationToken has no "
            "resource-level permissions (Service Authorization Reference); image pulls are "
            "limited to this stack's chart repositories by the statement beside it.",
        }
        for pack in COMPLIANCE_PACKS:
            findings[f"{pack}-IAMNoInlinePolicy"] = (
                f"{what}: the handler role's own policy (eks:DescribeCluster on this cluster, "
                "ECR pull on this stack's chart repositories); it cannot be attached elsewhere."
            )
        acknowledge_each(self.kubectl_role, findings)


@jsii.implements(cdk.IAspect)
class _ChartPullGrant:
    """At synthesis, when every chart of the stack exists: ECR pull for the kubectl handler on
    the repositories of ``HyperPodEksCluster.chart_repository_arns`` (``helm pull oci://`` logs
    in with ``aws ecr get-login-password``, aws-cdk-lib 2.275 ``kubectl-handler/helm``), nothing
    when the stack installs no chart from its own ECR."""

    def __init__(self, owner: "HyperPodEksCluster") -> None:
        self._owner = owner
        self._done = False

    def visit(self, node: Any) -> None:
        if self._done or node.node.path != self._owner.kubectl_role.node.path:
            return
        self._done = True
        repositories = self._owner.chart_repository_arns()
        if not repositories:
            return
        role = self._owner.kubectl_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PullThisStacksCharts", actions=list(ECR_PULL_ACTIONS), resources=repositories
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            )
        )
