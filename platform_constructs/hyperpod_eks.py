"""The EKS control plane a HyperPod cluster attaches to: private endpoint, API auth, pinned add-ons.

Add-ons are ``AWS::EKS::Addon`` resources, each at the version the BU config pins, created in
dependency order (networking, then cert-manager and the Pod Identity agent, then the HyperPod
operators). Roles for add-ons are bound with separate ``AWS::EKS::PodIdentityAssociation``
resources: the default training-operator version rejects the inline form.
"""

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v33 import KubectlV33Layer
from constructs import Construct

from platform_constructs.gates import accept_role_depends_on, acknowledge, acknowledge_cdk_function

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


def pod_identity_role(scope: Construct, construct_id: str, *, role_name: str) -> iam.Role:
    """A role only EKS Pod Identity can assume (``sts:AssumeRole`` + ``sts:TagSession``)."""
    role = iam.Role(
        scope,
        construct_id,
        role_name=role_name,
        assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com"),
    )
    role.assume_role_policy.add_statements(  # type: ignore[union-attr]
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("pods.eks.amazonaws.com")],
            actions=["sts:TagSession"],
        )
    )
    return role


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
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSClusterPolicy]",
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
            addon = eks.CfnAddon(
                self,
                f"Addon-{name}",
                cluster_name=self.cluster.cluster_name,
                addon_name=name,
                addon_version=addon_versions[name],
                # The config owns the version; a manual change on the cluster is overwritten.
                resolve_conflicts="OVERWRITE",
                preserve_on_delete=False,
            )
            for need in needs:
                addon.node.add_dependency(self.addons[need])
            self.addons[name] = addon

    def bind_service_account(
        self, construct_id: str, *, role: iam.IRole, namespace: str, service_account: str
    ) -> eks.CfnPodIdentityAssociation:
        """A separate Pod Identity association, after the agent add-on is running."""
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

    def _acknowledge_kubectl_provider(self) -> None:
        provider = self.cluster.node.find_child("KubectlProvider")
        what = "EKS kubectl provider (applies this stack's Kubernetes objects and Helm chart)"
        acknowledge_cdk_function(provider, what)
        acknowledge_cdk_function(self.kubectl_role, what)
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
        ecr = "arn:<AWS::Partition>:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
        acknowledge(
            self.kubectl_role,
            f"AwsSolutions-IAM4[Policy::{ecr}]",
            "The kubectl handler pulls the dependencies chart from the BU's private ECR (helm "
            "pull oci://); CDK attaches this read-only AWS policy to the handler role.",
        )
        condition = cdk.Stack.of(self).get_logical_id(
            self.node.find_child("HasEcrPublic")  # type: ignore[arg-type]
        )
        public = (
            f'{{"Fn::If":["{condition}",{{"Fn::Join":["",["arn:",{{"Ref":"AWS::Partition"}},'
            '":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly"]]},'
            '{"Ref":"AWS::NoValue"}]}'
        )
        acknowledge(
            self.kubectl_role,
            f"AwsSolutions-IAM4[Policy::{public}]",
            "CDK's kubectl handler adds public-ECR read-only in the aws partition; this platform "
            "never installs from public ECR (charts come from the BU's private ECR).",
        )
