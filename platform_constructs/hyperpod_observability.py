"""GPU and cluster metrics: an Amazon Managed Service for Prometheus workspace (KMS) that the
HyperPod observability add-on writes to, and optionally a Managed Grafana workspace on top."""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_aps as aps
from aws_cdk import aws_grafana as grafana
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge

# The add-on's collector runs under this service account (DESIGN.md, verified add-on facts).
NAMESPACE = "hyperpod-observability"
SERVICE_ACCOUNT = "hyperpod-observability-operator-otel-collector"


# What the collector does with the cluster's log groups (the SageMaker guide's statement, less
# the query actions a writer does not need).
COLLECTOR_LOG_ACTIONS = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
)


@dataclass(frozen=True)
class AddonSettings:
    """What the observability add-on collects: a level (BASIC or ADVANCED) per metricsProvider
    group, one scrape interval for all, and whether it ships logs."""

    levels: Mapping[str, str]  # metricsProvider group (e.g. ``nodeMetrics``) -> level, in order
    scrape_interval_seconds: int
    logging: bool


def addon_configuration(
    settings: AddonSettings,
    *,
    prometheus_endpoint: str,
    workspace_arn: str,
    grafana: tuple[str, str] | None,
) -> str:
    """ConfigurationValues for the observability add-on: where to write, at which levels."""
    config: dict[str, object] = {
        "ampWorkspace": {"prometheusEndpoint": prometheus_endpoint, "arn": workspace_arn},
        "metricsProvider": {
            group: {"level": level, "scrapeInterval": settings.scrape_interval_seconds}
            for group, level in settings.levels.items()
        },
        "logging": {"enabled": settings.logging},
    }
    if grafana is not None:
        config["amgWorkspace"] = {"workspaceName": grafana[0], "arn": grafana[1]}
    return json.dumps(config)


class MetricsWorkspace(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: str,
        key: kms.IKey,
        collector_role: iam.IRole,
        cluster_log_groups: str | None,
        grafana_name: str | None,
    ) -> None:
        """``cluster_log_groups``: the ARN pattern of the HyperPod cluster's log groups when the
        add-on's logging is on (``None``: off)."""
        super().__init__(scope, construct_id)
        self.workspace = aps.CfnWorkspace(self, "Prometheus", alias=alias, kms_key_arn=key.key_arn)
        collector_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["aps:RemoteWrite"], resources=[self.workspace.attr_arn])
        )
        if cluster_log_groups is not None:
            # With logging on, the collector ships pod and node logs to the cluster's log
            # groups, /aws/sagemaker/Clusters/<name>/<id> (SageMaker guide, "Set up the HyperPod
            # observability add-on": the collector role's CloudWatch Logs statement).
            collector_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=list(COLLECTOR_LOG_ACTIONS),
                    resources=[cluster_log_groups, f"{cluster_log_groups}:log-stream:*"],
                )
            )
            for resource in (cluster_log_groups, f"{cluster_log_groups}:log-stream:*"):
                acknowledge(
                    collector_role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::{resource}]",
                    "HyperPod names the cluster's log groups /aws/sagemaker/Clusters/<name>/<id> "
                    "with an ID known only after creation; the pattern admits this cluster's only.",
                )
        key.grant_encrypt_decrypt(collector_role)
        policy = collector_role.node.find_child("DefaultPolicy")
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's encrypt/decrypt grant on the one key of the Prometheus workspace the "
                "collector writes to; these are its envelope-encryption calls.",
            )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                policy,
                f"{pack}-IAMNoInlinePolicy",
                "The collector role's policy (remote-write to one workspace, its key) is written "
                "for this role alone; an inline policy cannot be attached elsewhere.",
            )
        self.grafana: grafana.CfnWorkspace | None = None
        if grafana_name is not None:
            reader = iam.Role(
                self,
                "GrafanaRole",
                assumed_by=iam.ServicePrincipal("grafana.amazonaws.com"),
            )
            reader.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "aps:QueryMetrics",
                        "aps:GetSeries",
                        "aps:GetLabels",
                        "aps:GetMetricMetadata",
                    ],
                    resources=[self.workspace.attr_arn],
                )
            )
            key.grant_decrypt(reader)
            for pack in COMPLIANCE_PACKS:
                acknowledge(
                    reader.node.find_child("DefaultPolicy"),
                    f"{pack}-IAMNoInlinePolicy",
                    "Grafana's data-source role may only query this one Prometheus workspace and "
                    "decrypt with its key; the policy is written for this role alone.",
                )
            self.grafana = grafana.CfnWorkspace(
                self,
                "Grafana",
                name=grafana_name,
                account_access_type="CURRENT_ACCOUNT",
                authentication_providers=["AWS_SSO"],
                permission_type="CUSTOMER_MANAGED",
                role_arn=reader.role_arn,
                data_sources=["PROMETHEUS"],
            )
