"""Small interfaces that let one stack grant access to what another owns, without importing it.

The MLflow stack implements :class:`MlflowAccess`; the Studio, HyperPod and training stacks take
one as a constructor argument (``None`` when the BU has no ``mlflow`` section) and call it on
the roles they create, so the MLflow data-plane actions are written in exactly one place.
"""

from typing import Protocol

from aws_cdk import aws_iam as iam


class MlflowAccess(Protocol):
    def grant_access(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` log runs, read them and register models on this BU's MLflow only."""
        ...


class MlflowUiAccess(MlflowAccess, Protocol):
    """What Studio needs on top: people open the MLflow UI (workloads never do)."""

    def grant_ui(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` open this BU's MLflow UI through a presigned URL."""
        ...
