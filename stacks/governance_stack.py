"""Governance stack: the BU's monthly cost budget on its cost-allocation tag, its alerts (email
and an encrypted SNS topic), an optional budget action that stops new capacity, and the BU's
CloudWatch dashboard. It names other stacks' resources by their derived names only (endpoint
names, role names), so it deploys after them and changes without touching them.
"""

import aws_cdk as cdk
from constructs import Construct

from config.governance import Governance
from config.schema import BusinessUnitConfig
from core.naming import BU_TAG_KEY
from platform_constructs.budgets import (
    Alerts,
    BudgetAlertTopic,
    CapacityBrake,
    MonthlyCostBudget,
    tag_filter,
)
from platform_constructs.dashboard import DashboardSpec, PlatformDashboard
from stacks._common import BuStack

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "budget, alerts, budget action and dashboard"


def dashboard_spec(config: BusinessUnitConfig) -> DashboardSpec:
    """What the BU's dashboard shows; ``tools/render_dashboard.py`` renders the same body."""
    if config.governance is None:
        raise ValueError(f"{config.name}: no governance section")
    names = config.naming
    endpoints = (
        [names.resource(item.name) for item in config.endpoints.on("sagemaker")]
        if config.endpoints is not None
        else []
    )
    hyperpod = config.hyperpod is not None
    return DashboardSpec(
        bu=config.name,
        region=config.region,
        endpoint_names=endpoints,
        monthly_limit_usd=config.governance.monthly_limit_usd,
        prometheus_alias=names.resource("hyperpod-metrics") if hyperpod else None,
        hyperpod_cluster=names.resource("hyperpod") if hyperpod else None,
    )


def brake_role_names(config: BusinessUnitConfig) -> list[str]:
    """The roles the budget action stops: those data scientists and their jobs act as (Studio's
    execution role, the managed-job role) and the HyperPod inference operator's, which creates
    SageMaker endpoints for HyperPod-served models, and the pipeline's (MWAA) execution role,
    which starts training and processing jobs and updates an endpoint. CloudFormation's own
    deploy role is not among them: a platform admin can still deploy."""
    names = config.naming
    roles = [names.role("training-job")]
    if config.studio is not None:
        roles.insert(0, names.role("studio-execution"))
    if (
        config.hyperpod is not None
        and config.endpoints is not None
        and config.endpoints.on("hyperpod")
    ):
        roles.append(names.role("hyperpod-inference"))
    if config.pipeline is not None:
        roles.append(names.role("pipeline-execution"))
    return roles


class GovernanceStack(BuStack):
    def __init__(
        self, stage: Construct, *, config: BusinessUnitConfig, governance: Governance
    ) -> None:
        super().__init__(stage, "governance", config=config, description=DESCRIPTION)
        names = self.names
        self.topic = None
        if governance.sns_topic:
            key = self.purpose_key(
                "BudgetAlertsKey", "budget-alerts", "budget alert notifications (SNS)"
            ).key
            self.topic = BudgetAlertTopic(
                self, "BudgetAlerts", topic_name=names.resource("budget-alerts"), key=key
            ).topic
            cdk.CfnOutput(self, "BudgetAlertTopicArn", value=self.topic.topic_arn)
        alerts = Alerts(emails=list(governance.notification_emails), topic=self.topic)
        self.budget = MonthlyCostBudget(
            self,
            "MonthlyCost",
            budget_name=names.resource("monthly-cost"),
            limit_usd=governance.monthly_limit_usd,
            cost_filter=tag_filter(BU_TAG_KEY, config.name),
            thresholds_percent=governance.alert_thresholds_percent,
            alerts=alerts,
        )
        self.brake: CapacityBrake | None = None
        if governance.budget_action:
            self.brake = CapacityBrake(
                self,
                "CapacityBrake",
                budget=self.budget,
                role_names=brake_role_names(config),
                execution_role_name=names.role("budget-action"),
                threshold_percent=governance.action_threshold,
                approval=governance.action_approval,
                alerts=alerts,
            )
        self.dashboard: PlatformDashboard | None = None
        if governance.dashboard:
            self.dashboard = PlatformDashboard(
                self,
                "Dashboard",
                dashboard_name=names.resource("platform"),
                spec=dashboard_spec(config),
            )
            cdk.CfnOutput(
                self,
                "DashboardUrl",
                value=f"https://{config.region}.console.aws.amazon.com/cloudwatch/home"
                f"?region={config.region}#dashboards/dashboard/{names.resource('platform')}",
            )
