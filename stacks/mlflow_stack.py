"""MLflow stack: the BU's managed MLflow and where clients find it (outputs, SSM parameters).

Its own stack because it outlives Studio changes: Studio, HyperPod and training stacks get
MLflow access through :meth:`MlflowStack.grant_access` (``access.MlflowAccess``).
"""

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from config.mlflow import Mlflow
from config.schema import BusinessUnitConfig
from core import parameters
from platform_constructs.mlflow import ManagedMlflow
from platform_constructs.published import string_parameters
from stacks._common import BuStack
from stacks.security_stack import SecurityStack


def registered_model_prefix(config: BusinessUnitConfig) -> str:
    """What every MLflow registered model of the BU must be named with when automatic model
    registration is on: the Model Package Group SageMaker creates is named after it, and the
    MLflow service role may only touch groups with this prefix. ``--`` because BU names hold
    single hyphens only (``config.schema.BU_NAME``): no other BU's ``<name>--`` can be a prefix
    of it, as ``<bu>-`` could (``fraud-`` is a prefix of ``fraud-eu-...``)."""
    return f"{config.name}--"


class MlflowStack(BuStack):
    def __init__(
        self,
        stage: Construct,
        *,
        config: BusinessUnitConfig,
        mlflow: Mlflow,
        security: SecurityStack,
    ) -> None:
        super().__init__(
            stage, "mlflow", config=config, description=f"managed MLflow ({mlflow.kind})"
        )
        names = self.names
        tracking_server = mlflow.kind == "tracking_server"
        artifacts = self.imported_buckets(security.keys, "mlflow-artifacts")["mlflow-artifacts"]
        self.mlflow = ManagedMlflow(
            self,
            "Mlflow",
            name=names.resource("mlflow"),
            kind=mlflow.kind,
            artifact_bucket=artifacts,
            role_name=names.role("mlflow-tracking"),
            automatic_model_registration=mlflow.automatic_model_registration,
            registered_model_prefix=registered_model_prefix(config),
            size=mlflow.size,
            mlflow_version=mlflow.mlflow_version if tracking_server else None,
            weekly_maintenance_window_start=mlflow.weekly_maintenance_window_start,
            removal_policy=self.removal_policy,
        )
        published = {
            parameters.MLFLOW_TRACKING_ARN: (
                "TrackingArn",
                self.mlflow.arn,
                "MLFLOW_TRACKING_URI for the sagemaker-mlflow plugin",
            ),
            parameters.MLFLOW_ARTIFACT_BUCKET: (
                "ArtifactBucket",
                artifacts.bucket_name,
                "Bucket holding MLflow artifacts (under artifacts/)",
            ),
        }
        string_parameters(
            self,
            {
                names.parameter(name): (f"{oid}Parameter", value, f"{config.name}: {what}")
                for name, (oid, value, what) in published.items()
            },
        )
        for output_id, value, description in published.values():
            cdk.CfnOutput(self, output_id, value=value, description=description)
        if mlflow.automatic_model_registration:
            cdk.CfnOutput(
                self,
                "RegisteredModelPrefix",
                value=registered_model_prefix(config),
                description="name every MLflow registered model with this prefix: the Model "
                "Registry sync may only create model package groups that start with it",
            )

    def grant_access(self, grantee: iam.IGrantable) -> iam.Grant:
        """``MlflowAccess``: this BU's MLflow data plane and artifacts, nothing else."""
        return self.mlflow.grant_access(grantee)

    def grant_ui(self, grantee: iam.IGrantable) -> iam.Grant:
        """The MLflow UI (a presigned URL), for people."""
        return self.mlflow.grant_ui(grantee)
