"""What the platform's service roles share: the trust in an AWS service acting for this account
only, and the ECR actions that pull an image."""

from aws_cdk import aws_iam as iam

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
