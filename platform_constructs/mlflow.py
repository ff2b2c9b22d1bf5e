"""Managed MLflow for one BU: a serverless MLflow App or a sized tracking server, its artifacts in
the BU's KMS-encrypted bucket, and the one place that writes MLflow's IAM actions.

Action names, from the AWS Service Authorization Reference (checked 2026-12-01 through the
generated statements of udondan/iam-floyd, which mirror it):
- tracking server: service prefix ``sagemaker-mlflow``, resource type ``mlflow-tracking-server``
  (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemakerwithmlflow.html);
- MLflow App: one action, ``sagemaker:CallMlflowAppApi`` ("Grants permission to invoke MLflow
  APIs"), covering the App's whole REST API
  (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html).
"""

from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

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
        size: str = "Small",
        mlflow_version: str | None = None,
        weekly_maintenance_window_start: str | None = None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.kind: MlflowKind = kind
        self.artifact_bucket = artifact_bucket
        self.artifact_store_uri = artifact_bucket.s3_url_for_object(ARTIFACT_PREFIX)
        self.service_role = iam.Role(
            self,
            "ServiceRole",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{name}: SageMaker managed MLflow reads and writes its artifact bucket",
        )
        artifact_bucket.grant_read_write(self.service_role, f"{ARTIFACT_PREFIX}/*")
        # Versioned objects are listed at bucket level; the prefix grant covers the objects.
        artifact_bucket.grant_read(self.service_role)
        if automatic_model_registration:
            self._allow_model_registry()
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
                "CDK's bucket grant to the MLflow service role: read/write on this BU's MLflow "
                "artifact bucket and its key only; an inline policy cannot be attached elsewhere.",
            )

    def _allow_model_registry(self) -> None:
        """Automatic registration creates a model package group per registered model."""
        stack = cdk.Stack.of(self)
        groups = stack.format_arn(
            service="sagemaker", resource="model-package-group", resource_name="*"
        )
        packages = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name="*"
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
            groups: "automatic model registration makes one model package group per MLflow "
            "registered model, named by users at run time (unknown at deploy time)",
            packages: "automatic model registration adds model package versions to the groups "
            "it creates (named at run time), in this account and region only",
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
