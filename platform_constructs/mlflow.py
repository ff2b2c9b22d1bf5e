"""Managed MLflow for one BU: a serverless MLflow App or a sized tracking server, its artifacts in
the BU's KMS-encrypted bucket, and the one place that writes MLflow's IAM actions.

Action names, from the AWS Service Authorization Reference (checked 2026-12-01 through the
generated statements of udondan/iam-floyd, which mirror it):
- tracking server: service prefix ``sagemaker-mlflow``, resource type ``mlflow-tracking-server``
  (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemakerwithmlflow.html);
- MLflow App: one action, ``sagemaker:CallMlflowAppApi`` ("Grants permission to invoke MLflow
  APIs"), covering the App's whole REST API
  (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html).

Automatic model registration names the Model Package Group after the MLflow registered model:
``<registered-model-name>-<suffix>``, the suffix being the first six characters of the SHA-256
of the tracking server name or App ID (SageMaker AI developer guide, "Automatically register
SageMaker AI models with SageMaker Model Registry"). The service role may only create and change
groups whose name starts with the BU's registered-model prefix (``<bu>--``, see
``stacks.mlflow_stack.registered_model_prefix``): group names allow letters, digits and hyphens
only (``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``, SageMaker API reference, CreateModelPackageGroup), so
no ``<bu>/`` path exists, and a tag condition cannot replace the prefix: versioned model packages
"do not support tags" (Model Registry FAQ) and the groups MLflow creates carry no BU tag.
"""

from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from platform_constructs import service_roles
from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge
from platform_constructs.grant_findings import acknowledge_bucket_grant, nag_form

MlflowKind = Literal["app", "tracking_server"]

# Tracking server data plane: every run, experiment, model-registry, logged-model and trace
# action except AccessUI (the UI is granted separately, to people only).
TRACKING_SERVER_ACTIONS = tuple(
    f"sagemaker-mlflow:{action}"
    for action in (
        # Read and List
        "GetDownloadURIForModelVersionArtifacts",
        "GetExperiment",
        "GetExperimentByName",
        "GetLatestModelVersions",
        "GetLoggedModel",
        "GetMetricHistory",
        "GetModelVersion",
        "GetModelVersionByAlias",
        "GetRegisteredModel",
        "GetRun",
        "GetTraceInfo",
        "ListArtifacts",
        "ListLoggedModelArtifacts",
        "SearchExperiments",
        "SearchLoggedModels",
        "SearchModelVersions",
        "SearchRegisteredModels",
        "SearchRuns",
        "SearchTraces",
        # Write
        "CreateExperiment",
        "CreateModelVersion",
        "CreateRegisteredModel",
        "CreateRun",
        "DeleteExperiment",
        "DeleteLoggedModel",
        "DeleteLoggedModelTag",
        "DeleteModelVersion",
        "DeleteModelVersionTag",
        "DeleteRegisteredModel",
        "DeleteRegisteredModelAlias",
        "DeleteRegisteredModelTag",
        "DeleteRun",
        "DeleteTag",
        "DeleteTraceTag",
        "DeleteTraces",
        "EndTrace",
        "FinalizeLoggedModel",
        "LogBatch",
        "LogInputs",
        "LogLoggedModelParams",
        "LogMetric",
        "LogModel",
        "LogOutputs",
        "LogParam",
        "RenameRegisteredModel",
        "RestoreExperiment",
        "RestoreRun",
        "SetExperimentTag",
        "SetLoggedModelTags",
        "SetModelVersionTag",
        "SetRegisteredModelAlias",
        "SetRegisteredModelTag",
        "SetTag",
        "SetTraceTag",
        "StartTrace",
        "TransitionModelVersionStage",
        "UpdateExperiment",
        "UpdateModelVersion",
        "UpdateRegisteredModel",
        "UpdateRun",
    )
)
APP_ACTIONS = ("sagemaker:CallMlflowAppApi",)
# The sagemaker-mlflow plugin resolves the ARN to the server's URL with Describe*.
DESCRIBE_ACTION = {
    "app": "sagemaker:DescribeMlflowApp",
    "tracking_server": "sagemaker:DescribeMlflowTrackingServer",
}
UI_ACTIONS = {
    "app": ("sagemaker:CreatePresignedMlflowAppUrl",),
    "tracking_server": (
        "sagemaker:CreatePresignedMlflowTrackingServerUrl",
        "sagemaker-mlflow:AccessUI",
    ),
}
ARTIFACT_PREFIX = "artifacts"


class ManagedMlflow(Construct):
    """The BU's MLflow; implements ``platform_constructs.access.MlflowAccess``.

    ``service_role`` is what SageMaker runs the server as: read/write on the artifact bucket
    (and its key) only, plus the Model Registry when automatic registration is on.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        kind: MlflowKind,
        artifact_bucket: s3.IBucket,
        role_name: str,
        automatic_model_registration: bool,
        registered_model_prefix: str | None = None,
        size: str = "Small",
        mlflow_version: str | None = None,
        weekly_maintenance_window_start: str | None = None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if automatic_model_registration and not registered_model_prefix:
            raise ValueError(
                f"{name}: automatic model registration needs the registered-model prefix that "
                "scopes the Model Registry grant to this BU's model package groups"
            )
        self.kind: MlflowKind = kind
        self.artifact_bucket = artifact_bucket
        self.artifact_store_uri = artifact_bucket.s3_url_for_object(ARTIFACT_PREFIX)
        self.registered_model_prefix = registered_model_prefix
        # SageMaker acting for this account only (confused-deputy prevention: SageMaker AI
        # developer guide, "Cross-service confused deputy prevention"). No aws:SourceArn: that
        # page documents the source ARN for jobs, endpoints and Studio, not for MLflow.
        self.service_role = service_roles.service_role(
            self,
            "ServiceRole",
            service=service_roles.SAGEMAKER,
            role_name=role_name,
            description=f"{name}: SageMaker managed MLflow reads and writes its artifact bucket",
        )
        artifact_bucket.grant_read_write(self.service_role, f"{ARTIFACT_PREFIX}/*")
        # Versioned objects are listed at bucket level; the prefix grant covers the objects.
        artifact_bucket.grant_read(self.service_role)
        if registered_model_prefix and automatic_model_registration:
            self._allow_model_registry(registered_model_prefix)
        if kind == "app":
            app = sagemaker.CfnMlflowApp(
                self,
                "App",
                name=name,
                artifact_store_uri=self.artifact_store_uri,
                role_arn=self.service_role.role_arn,
                model_registration_mode=(
                    "AutoModelRegistrationEnabled"
                    if automatic_model_registration
                    else "AutoModelRegistrationDisabled"
                ),
                weekly_maintenance_window_start=weekly_maintenance_window_start,
            )
            self.resource: cdk.CfnResource = app
            self.arn = app.attr_arn
        else:
            server = sagemaker.CfnMlflowTrackingServer(
                self,
                "TrackingServer",
                tracking_server_name=name,
                artifact_store_uri=self.artifact_store_uri,
                role_arn=self.service_role.role_arn,
                tracking_server_size=size,
                mlflow_version=mlflow_version,
                automatic_model_registration=automatic_model_registration,
                weekly_maintenance_window_start=weekly_maintenance_window_start,
            )
            self.resource = server
            self.arn = server.attr_tracking_server_arn
        # The server must not start before its role may reach the bucket (the grant's policy).
        self.resource.node.add_dependency(self.service_role.node.find_child("DefaultPolicy"))
        self.resource.apply_removal_policy(removal_policy)
        service_policy = self.service_role.node.find_child("DefaultPolicy")
        acknowledge_bucket_grant(
            service_policy,
            bucket=artifact_bucket,
            objects=f"{ARTIFACT_PREFIX}/*",
            write=True,
            why="SageMaker's MLflow stores run artifacts under artifacts/.",
        )
        acknowledge_bucket_grant(
            service_policy,
            bucket=artifact_bucket,
            write=False,
            why="MLflow lists and reads artifact versions of its own bucket.",
        )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                service_policy,
                f"{pack}-IAMNoInlinePolicy",
                "The MLflow service role's own policy: CDK's read/write grant on this BU's MLflow "
                "artifact bucket and its key, and with automatic registration the Model Registry "
                "on this BU's prefixed groups; an inline policy cannot be attached elsewhere.",
            )

    def _allow_model_registry(self, prefix: str) -> None:
        """Automatic registration creates a model package group per registered model; the
        service role may create, update and approve packages only in this BU's groups."""
        stack = cdk.Stack.of(self)
        groups = stack.format_arn(
            service="sagemaker", resource="model-package-group", resource_name=f"{prefix}*"
        )
        # A versioned package's ARN is model-package/<group name>/<version>.
        packages = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{prefix}*"
        )
        self.service_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:AddTags",
                    "sagemaker:CreateModelPackageGroup",
                    "sagemaker:CreateModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                ],
                resources=[groups, packages],
            )
        )
        policy = self.service_role.node.find_child("DefaultPolicy")
        reasons = {
            groups: f"automatic model registration makes one model package group per MLflow "
            f"registered model; names are chosen at run time and must start with this BU's "
            f"prefix {prefix!r}, which no other BU's names can start with",
            packages: f"model package versions MLflow adds to this BU's groups (ARN "
            f"model-package/<group>/<version>, group names starting with {prefix!r}), in this "
            "account and region only",
        }
        for resource, reason in reasons.items():
            acknowledge(
                policy, f"AwsSolutions-IAM5[Resource::{nag_form(policy, resource)}]", reason
            )

    def grant_access(self, grantee: iam.IGrantable) -> iam.Grant:
        """Log runs, read them and register models on this MLflow only, and read/write its
        artifacts (the MLflow client uploads artifacts to S3 itself)."""
        actions = APP_ACTIONS if self.kind == "app" else TRACKING_SERVER_ACTIONS
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[*actions, DESCRIBE_ACTION[self.kind]],
            resource_arns=[self.arn],
        )
        self.artifact_bucket.grant_read_write(grantee, f"{ARTIFACT_PREFIX}/*")
        principal = grantee.grant_principal
        policy = (
            principal.node.try_find_child("DefaultPolicy")
            if isinstance(principal, iam.Role)
            else None
        )
        if policy is not None:
            acknowledge_bucket_grant(
                policy,
                bucket=self.artifact_bucket,
                objects=f"{ARTIFACT_PREFIX}/*",
                write=True,
                why="the MLflow client uploads and downloads run artifacts under artifacts/.",
            )
        return grant

    def grant_ui(self, grantee: iam.IGrantable) -> iam.Grant:
        """Open the MLflow UI (a presigned URL): for people, not for workloads."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(UI_ACTIONS[self.kind]), resource_arns=[self.arn]
        )
