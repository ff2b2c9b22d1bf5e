"""The HyperPod inference operator on a BU's EKS cluster: its IRSA execution role and the EKS
add-ons it runs on (`amazon-sagemaker-hyperpod-inference`, the Mountpoint S3 CSI driver,
metrics-server), each at a version pinned in config.

The operator's add-on uses IRSA, so the cluster needs an IAM OIDC provider: this construct
creates a native ``AWS::IAM::OIDCProvider`` unless the caller passes the cluster's own.
cert-manager and the FSx CSI driver, which the operator also needs, belong to the HyperPod
stack that owns the cluster (training needs them too).
"""

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from platform_constructs import service_roles
from platform_constructs.gates import (
    COMPLIANCE_PACKS,
    acknowledge,
    acknowledge_grant,
    managed_policy_finding,
)
from platform_constructs.hyperpod_eks import pinned_addon

OPERATOR_NAMESPACE = "hyperpod-inference-system"
OPERATOR_SERVICE_ACCOUNT = "hyperpod-inference-controller-manager"
S3_CSI_SERVICE_ACCOUNT = ("kube-system", "s3-csi-driver-sa")
OPERATOR_MANAGED_POLICY = "AmazonSageMakerHyperPodInferenceAccess"
TLS_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging")


@dataclass(frozen=True)
class AddonVersions:
    """EKS add-on versions (``config.endpoints.HyperPodInferenceAddons``)."""

    inference_operator: str
    s3_csi_driver: str
    metrics_server: str


class HyperPodInferenceOperator(Construct):
    """The inference operator's role and add-ons on ``cluster``.

    ``models_bucket_name``/``models_key``: the BU's models bucket, the only one the operator's
    S3 mounts may read (the operator mounts an endpoint's ``modelSourceConfig`` prefix).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        role_name: str,
        versions: AddonVersions,
        models_bucket_name: str,
        models_key: kms.IKey,
        tls_bucket_name: str,
        tls_key: kms.IKey,
        hyperpod_cluster_arn: str,
        oidc_provider: iam.IOidcProvider | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # A native AWS::IAM::OIDCProvider: eks_v2's `cluster.open_id_connect_provider` is the
        # deprecated Lambda-backed one. Pass the cluster's own when another construct made it.
        self.oidc_provider = oidc_provider or eks.OidcProviderNative(
            self, "OidcProvider", url=cluster.cluster_open_id_connect_issuer_url
        )
        stack = cdk.Stack.of(self)

        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            role_name=role_name,
            description="HyperPod inference operator (IRSA) and the endpoints it registers",
            # The trust is replaced below by `_irsa_trust` (the principal here only types it).
            assumed_by=iam.ServicePrincipal(service_roles.SAGEMAKER),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(OPERATOR_MANAGED_POLICY)
            ],
        )
        acknowledge(
            self.execution_role,
            managed_policy_finding(OPERATOR_MANAGED_POLICY),
            "AWS's policy for the HyperPod inference operator, maintained with the operator's "
            "releases (endpoint registration, ALB, ACM, CloudWatch); a copy would drift.",
        )

        # The operator keeps the TLS certificates of the endpoints it serves in this bucket. Its
        # managed policy covers only buckets named `hyperpod-tls-*`; any other bucket needs
        # these object actions on the execution role (SageMaker guide, "Setting up your
        # HyperPod clusters for model deployment", the tlsCertificateS3Bucket note).
        tls_objects = stack.format_arn(
            service="s3", region="", account="", resource=tls_bucket_name, resource_name="*"
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(actions=list(TLS_OBJECT_ACTIONS), resources=[tls_objects])
        )
        tls_key.grant_encrypt_decrypt(self.execution_role)
        self._acknowledge_tls_grant(tls_objects)

        # The Mountpoint S3 CSI driver reads model prefixes for the operator's volumes.
        self.s3_csi_role = iam.Role(
            self,
            "S3CsiRole",
            description="Mountpoint S3 CSI driver: read the BU's models bucket",
            assumed_by=iam.ServicePrincipal(service_roles.SAGEMAKER),  # replaced below
        )
        oidc = (self.oidc_provider.oidc_provider_arn, self.oidc_provider.oidc_provider_issuer)
        _irsa_trust(
            self.execution_role,
            oidc=oidc,
            service_account=(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT),
            sagemaker_account=stack.account,
        )
        _irsa_trust(self.s3_csi_role, oidc=oidc, service_account=S3_CSI_SERVICE_ACCOUNT)
        objects = stack.format_arn(
            service="s3", region="", account="", resource=models_bucket_name, resource_name="*"
        )
        bucket = stack.format_arn(service="s3", region="", account="", resource=models_bucket_name)
        self.s3_csi_role.add_to_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket])
        )
        self.s3_csi_role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects])
        )
        models_key.grant_decrypt(self.s3_csi_role)
        policy = self.s3_csi_role.node.find_child("DefaultPolicy")
        if not cdk.Token.is_unresolved(objects):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{objects}]",
                "Read-only access to the models bucket's objects: any endpoint's model prefix "
                "may be mounted, and the bucket holds only exported models.",
            )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                policy,
                f"{pack}-IAMNoInlinePolicy",
                "The S3 CSI driver role's own read grant on the models bucket and its key; an "
                "inline policy cannot be attached to any other principal.",
            )

        def addon(construct_id: str, name: str, version: str, **properties: Any) -> eks.CfnAddon:
            return pinned_addon(
                self,
                construct_id,
                cluster_name=cluster.cluster_name,
                name=name,
                version=version,
                preserve_on_delete=None,
                **properties,
            )

        self.metrics_server = addon("MetricsServer", "metrics-server", versions.metrics_server)
        self.s3_csi_driver = addon(
            "S3CsiDriver",
            "aws-mountpoint-s3-csi-driver",
            versions.s3_csi_driver,
            service_account_role_arn=self.s3_csi_role.role_arn,
        )
        self.inference_operator = addon(
            "InferenceOperator",
            "amazon-sagemaker-hyperpod-inference",
            versions.inference_operator,
            # Fn::Join, not Stack.to_json_string: that adds a CfnUtils custom-resource Lambda.
            configuration_values=cdk.Fn.join(
                "",
                [
                    '{"executionRoleArn":"',
                    self.execution_role.role_arn,
                    '","tlsCertificateS3Bucket":"',
                    tls_bucket_name,
                    '","hyperpodClusterArn":"',
                    hyperpod_cluster_arn,
                    '"}',
                ],
            ),
        )
        # The operator's pods need its dependencies' APIs (volumes, HPA metrics) at start-up.
        self.inference_operator.node.add_dependency(self.metrics_server, self.s3_csi_driver)
        self.addons = (self.metrics_server, self.s3_csi_driver, self.inference_operator)

    def _acknowledge_tls_grant(self, tls_objects: str) -> None:
        policy = self.execution_role.node.find_child("DefaultPolicy")
        findings = {
            f"Resource::{tls_objects}": "The operator names each endpoint's certificate object "
            "itself; the grant covers only the BU's TLS-certificate bucket.",
            "Action::kms:GenerateDataKey*": "CDK's encrypt/decrypt grant on the TLS bucket's "
            "own key: the envelope-encryption calls of writing a certificate object.",
            "Action::kms:ReEncrypt*": "CDK's encrypt/decrypt grant on the TLS bucket's own key, "
            "which S3 uses when it rewrites a certificate object.",
        }
        acknowledge_grant(
            policy,
            findings,
            inline_reason="The operator role's grant on its TLS-certificate bucket and key, "
            "written for this role alone; an inline policy cannot be attached to another "
            "principal.",
        )


def _irsa_trust(
    role: iam.Role,
    *,
    oidc: tuple[str, str],
    service_account: tuple[str, str],
    sagemaker_account: str | None = None,
) -> None:
    """Trust one Kubernetes service account through the cluster's OIDC provider (IRSA), and
    SageMaker from this account when ``sagemaker_account`` is given.

    The condition keys hold the cluster's issuer, known only at deploy time, and a JSON object
    key cannot be an intrinsic; CDK's answer (CfnJson) is a Lambda outside the VPC. The trust
    policy property also takes a JSON string (the IAM registry schema types it object|string),
    so the document is written as a string with the issuer joined in: no function at all.
    """
    provider_arn, issuer = oidc
    namespace, name = service_account
    statements: list[dict[str, object]] = [
        {
            "Effect": "Allow",
            "Principal": {"Federated": _PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{_ISSUER}:sub": f"system:serviceaccount:{namespace}:{name}",
                    f"{_ISSUER}:aud": "sts.amazonaws.com",
                }
            },
        }
    ]
    if sagemaker_account is not None:
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": sagemaker_account}},
            }
        )
    text = json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))
    parts: list[str] = []
    for i, chunk in enumerate(text.split(_ISSUER)):
        if i:
            parts.append(issuer)
        for j, piece in enumerate(chunk.split(_PROVIDER)):
            if j:
                parts.append(provider_arn)
            parts.append(piece)
    cfn_role = role.node.default_child
    if not isinstance(cfn_role, iam.CfnRole):
        raise TypeError(f"unexpected role resource {cfn_role}")
    cfn_role.add_property_override("AssumeRolePolicyDocument", cdk.Fn.join("", parts))


_ISSUER, _PROVIDER = "@@ISSUER@@", "@@PROVIDER@@"
