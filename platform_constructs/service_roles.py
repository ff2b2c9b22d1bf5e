"""What the platform's service roles share: the trust in an AWS service acting for this account
only, and the ECR actions that pull an image."""

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

SAGEMAKER = "sagemaker.amazonaws.com"
# What a node, a training job or an endpoint needs to pull an image (ECR user guide, "Private
# repository policies"; the same three this platform grants its execution roles).
ECR_PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)


def for_account(service: str, account: str) -> iam.ServicePrincipal:
    """``service`` acting for ``account`` only: the confused-deputy key ``aws:SourceAccount``
    (SageMaker AI developer guide, "Cross-service confused deputy prevention")."""
    return iam.ServicePrincipal(
        service, conditions={"StringEquals": {"aws:SourceAccount": account}}
    )


def service_role(
    scope: Construct,
    construct_id: str,
    *,
    service: str,
    role_name: str,
    description: str,
    managed_policies: Sequence[iam.IManagedPolicy] = (),
    max_session_duration: cdk.Duration | None = None,
) -> iam.Role:
    """A role that only ``service`` acting for the stack's account may assume (``for_account``)."""
    return iam.Role(
        scope,
        construct_id,
        role_name=role_name,
        assumed_by=for_account(service, cdk.Stack.of(scope).account),
        description=description,
        managed_policies=list(managed_policies),
        max_session_duration=max_session_duration,
    )
