"""A BU's monthly cost budget on its cost-allocation tag, the encrypted topic its alerts go to,
and an optional budget action that stops new capacity once the budget is spent.

AWS facts (AWS Cost Management user guide and the CloudFormation reference):
- ``AWS::Budgets::Budget`` filters by a tag with ``CostFilters {"TagKeyValue":
  ["user:<key>$<value>"]}``; the tag must be activated as a cost-allocation tag first (no
  CloudFormation resource does that; README "Governance").
- Budgets publishes to an SNS topic of the same account only; the topic policy admits
  ``budgets.amazonaws.com`` for ``aws:SourceAccount`` and ``aws:SourceArn
  arn:<partition>:budgets::<account>:*`` ("Creating an Amazon SNS topic for budget
  notifications"); an encrypted topic needs the key to admit the publishing service too (SNS
  developer guide, "Key management", compatibility with AWS service event sources).
- ``AWS::Budgets::BudgetsAction`` ``APPLY_IAM_POLICY`` attaches a managed policy to roles, users
  or groups, acting as ``ExecutionRoleArn``; Budgets reverses it when the user resets it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from platform_constructs import service_roles
from platform_constructs.topics import service_encrypted_topic

BUDGETS_PRINCIPAL = "budgets.amazonaws.com"
# What the budget action denies once it fires: every call that starts or grows paid capacity
# on SageMaker (endpoints, HyperPod clusters, managed jobs). Running capacity keeps running,
# deletes and scale-downs stay allowed (UpdateEndpoint and UpdateCluster are denied because
# they can also add instances; an admin outside these roles scales down).
DENIED_ACTIONS = (
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:CreateInferenceComponent",
    "sagemaker:UpdateInferenceComponent",
    "sagemaker:UpdateInferenceComponentRuntimeConfig",
    "sagemaker:CreateCluster",
    "sagemaker:UpdateCluster",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:CreateHyperParameterTuningJob",
)
# What the action's execution role may do: attach and detach that one policy, nothing else.
ATTACH_ACTIONS = ("iam:AttachRolePolicy", "iam:DetachRolePolicy")


@dataclass(frozen=True)
class Alerts:
    """Who hears of the budget: email addresses and/or the encrypted topic."""

    emails: Sequence[str]
    topic: sns.ITopic | None

    def subscribers(self) -> list[budgets.CfnBudget.SubscriberProperty]:
        found = [
            budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=address)
            for address in self.emails
        ]
        if self.topic is not None:
            found.append(
                budgets.CfnBudget.SubscriberProperty(
                    subscription_type="SNS", address=self.topic.topic_arn
                )
            )
        return found


def tag_filter(tag_key: str, tag_value: str) -> dict[str, list[str]]:
    """The budget's cost filter on one user-defined cost-allocation tag."""
    return {"TagKeyValue": [f"user:{tag_key}${tag_value}"]}


class BudgetAlertTopic(Construct):
    """An SNS topic for budget alerts, encrypted with ``key``, TLS only, that only AWS Budgets
    acting for this account may publish to (and use the key for)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, topic_name: str, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.topic = service_encrypted_topic(
            self,
            topic_name=topic_name,
            key=key,
            service=BUDGETS_PRINCIPAL,
            key_actions=("kms:GenerateDataKey*", "kms:Decrypt"),
            sid="BudgetsOfThisAccount",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="BudgetsPublish",
                principals=[iam.ServicePrincipal(BUDGETS_PRINCIPAL)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": budget_arns(self)},
                },
            )
        )


def budget_arns(scope: Construct) -> str:
    """Every budget of the stack's account (budgets are global: no region in the ARN)."""
    return cdk.Stack.of(scope).format_arn(
        service="budgets", region="", resource="*", arn_format=cdk.ArnFormat.NO_RESOURCE_NAME
    )


class MonthlyCostBudget(Construct):
    """A monthly COST budget in USD on one cost-allocation tag, alerting on actual spend at each
    threshold (percent of the limit)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        budget_name: str,
        limit_usd: float,
        cost_filter: dict[str, list[str]],
        thresholds_percent: Sequence[float],
        alerts: Alerts,
    ) -> None:
        super().__init__(scope, construct_id)
        self.budget_name = budget_name
        subscribers = alerts.subscribers()
        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=budget_name,
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=float(limit_usd), unit="USD"),
                cost_filters=cost_filter,
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type="ACTUAL",
                        comparison_operator="GREATER_THAN",
                        threshold=float(threshold),
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=subscribers,
                )
                for threshold in thresholds_percent
            ],
        )
        if alerts.topic is not None:
            # Budgets checks that it may publish when the budget is created.
            policy = alerts.topic.node.try_find_child("Policy")
            if policy is not None:
                self.budget.node.add_dependency(policy)


class CapacityBrake(Construct):
    """A budget action: at ``threshold_percent`` of the budget, AWS Budgets attaches a managed
    deny policy (``DENIED_ACTIONS`` on every resource) to ``role_names``.

    The execution role Budgets acts as may only attach and detach that one policy
    (``iam:PolicyARN`` condition) on exactly those roles.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        budget: MonthlyCostBudget,
        role_names: Sequence[str],
        execution_role_name: str,
        threshold_percent: float,
        approval: str,
        alerts: Alerts,
    ) -> None:
        super().__init__(scope, construct_id)
        if not role_names:
            raise ValueError("a capacity brake needs at least one role to stop")
        stack = cdk.Stack.of(self)
        self.deny_policy = iam.ManagedPolicy(
            self,
            "DenyNewCapacity",
            description=f"Attached by AWS Budgets when {budget.budget_name} passes "
            f"{threshold_percent:g}%: no new SageMaker endpoints, HyperPod capacity or jobs",
            statements=[
                iam.PolicyStatement(
                    sid="BudgetSpentNoNewCapacity",
                    effect=iam.Effect.DENY,
                    actions=list(DENIED_ACTIONS),
                    resources=["*"],
                )
            ],
        )
        role_arns = [
            stack.format_arn(service="iam", region="", resource="role", resource_name=name)
            for name in role_names
        ]
        attach = iam.ManagedPolicy(
            self,
            "AttachDenyPolicy",
            description=f"AWS Budgets: attach/detach the {budget.budget_name} deny policy only",
            statements=[
                iam.PolicyStatement(
                    sid="AttachThatPolicyToThoseRoles",
                    actions=list(ATTACH_ACTIONS),
                    resources=role_arns,
                    conditions={
                        "ArnEquals": {"iam:PolicyARN": self.deny_policy.managed_policy_arn}
                    },
                )
            ],
        )
        self.execution_role = service_roles.service_role(
            self,
            "ExecutionRole",
            service=BUDGETS_PRINCIPAL,
            role_name=execution_role_name,
            managed_policies=[attach],
            description=f"AWS Budgets runs the {budget.budget_name} action as this role",
        )
        subscribers = [
            budgets.CfnBudgetsAction.SubscriberProperty(type=s.subscription_type, address=s.address)
            for s in alerts.subscribers()
        ]
        self.action = budgets.CfnBudgetsAction(
            self,
            "Action",
            budget_name=budget.budget_name,
            action_type="APPLY_IAM_POLICY",
            action_threshold=budgets.CfnBudgetsAction.ActionThresholdProperty(
                type="PERCENTAGE", value=float(threshold_percent)
            ),
            approval_model=approval.upper(),
            notification_type="ACTUAL",
            execution_role_arn=self.execution_role.role_arn,
            definition=budgets.CfnBudgetsAction.DefinitionProperty(
                iam_action_definition=budgets.CfnBudgetsAction.IamActionDefinitionProperty(
                    policy_arn=self.deny_policy.managed_policy_arn, roles=list(role_names)
                )
            ),
            subscribers=subscribers,
        )
        self.action.node.add_dependency(budget.budget)
