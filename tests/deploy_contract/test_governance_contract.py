"""What a governance deploy relies on that cfn-lint and cdk-nag cannot see: the budget counts
this BU's costs only, its alerts can be delivered through an encrypted topic, the budget action
can do exactly one thing to exactly the roles that exist, and the dashboard shows this BU's
endpoints only. Each test names its source; README "Governance" states the same facts.

Sources: AWS CloudFormation reference (``AWS::Budgets::Budget``, ``AWS::Budgets::BudgetsAction``),
AWS Cost Management user guide ("Creating an Amazon SNS topic for budget notifications",
"Using cost allocation tags"), Amazon SNS developer guide ("Key management"), Amazon SageMaker
developer guide ("Metrics for monitoring Amazon SageMaker AI with Amazon CloudWatch").
"""

import json
from typing import Any

import pytest
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of

from core.naming import BU_TAG_KEY
from platform_constructs.budgets import ATTACH_ACTIONS, BUDGETS_PRINCIPAL, DENIED_ACTIONS
from platform_constructs.dashboard import dashboard_body
from stacks.governance_stack import dashboard_spec

GOVERNED_BUS = ("credit",)


def _governance(synthesized: Any, bu: str) -> tuple[TemplateGraph, Any]:
    config = synthesized.configs[bu]
    assert config.governance is not None
    return TemplateGraph(synthesized.template(bu, "governance").to_json()), config


def _budget(graph: TemplateGraph) -> dict[str, Any]:
    (budget,) = graph.of_type("AWS::Budgets::Budget").values()
    return budget


def test_only_bus_with_the_section_get_the_stack(synthesized: Any) -> None:
    for bu, config in synthesized.configs.items():
        has_stack = (bu, "governance") in synthesized.templates
        assert has_stack == (config.governance is not None), bu
    assert set(GOVERNED_BUS) <= set(synthesized.configs)


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_budget_counts_the_bu_cost_allocation_tag(synthesized: Any, bu: str) -> None:
    """A cost budget filters on a user-defined cost-allocation tag as ``CostFilters
    {"TagKeyValue": ["user:<key>$<value>"]}`` (CloudFormation ``BudgetData.CostFilters``;
    user-defined tags carry the ``user:`` prefix in Billing). The tag is the one the Stage puts
    on every resource (``stacks._common.stage_tags``)."""
    graph, config = _governance(synthesized, bu)
    data = _budget(graph)["Properties"]["Budget"]
    assert data["CostFilters"] == {"TagKeyValue": [f"user:{BU_TAG_KEY}${bu}"]}
    assert (data["BudgetType"], data["TimeUnit"]) == ("COST", "MONTHLY")
    assert data["BudgetLimit"] == {"Amount": config.governance.monthly_limit_usd, "Unit": "USD"}
    assert data["BudgetName"] == config.naming.resource("monthly-cost")
    # The tag the budget counts is on this BU's resources, with this value.
    (topic,) = graph.of_type("AWS::SNS::Topic").values()
    assert {"Key": BU_TAG_KEY, "Value": bu} in topic["Properties"]["Tags"]


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_alerts_at_each_threshold_reach_every_subscriber(synthesized: Any, bu: str) -> None:
    """One notification per threshold (``ACTUAL``, ``PERCENTAGE``, ``GREATER_THAN``), each to
    every configured address (``EMAIL``) and the BU's topic (``SNS``)."""
    graph, config = _governance(synthesized, bu)
    notifications = _budget(graph)["Properties"]["NotificationsWithSubscribers"]
    assert [n["Notification"]["Threshold"] for n in notifications] == list(
        config.governance.alert_thresholds_percent
    )
    (topic_id,) = graph.of_type("AWS::SNS::Topic")
    for item in notifications:
        notice = item["Notification"]
        assert (notice["NotificationType"], notice["ThresholdType"]) == ("ACTUAL", "PERCENTAGE")
        assert notice["ComparisonOperator"] == "GREATER_THAN"
        emails = [s["Address"] for s in item["Subscribers"] if s["SubscriptionType"] == "EMAIL"]
        assert emails == list(config.governance.notification_emails)
        sns = [s["Address"] for s in item["Subscribers"] if s["SubscriptionType"] == "SNS"]
        assert sns == [{"Ref": topic_id}]


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_topic_and_key_admit_budgets_of_this_account_only(synthesized: Any, bu: str) -> None:
    """Budgets publishes to a topic whose policy admits ``budgets.amazonaws.com`` with
    ``aws:SourceAccount`` and ``aws:SourceArn arn:aws:budgets::<account>:*`` (Cost Management
    user guide, "Creating an Amazon SNS topic for budget notifications"); an SSE-KMS topic also
    needs the key to let that service ``kms:GenerateDataKey*`` and ``kms:Decrypt`` (SNS
    developer guide, "Key management"). The budget is created after the topic policy: Budgets
    checks its publish permission on create."""
    graph, config = _governance(synthesized, bu)
    (topic_id, topic) = next(iter(graph.of_type("AWS::SNS::Topic").items()))
    key_id = graph.ref_target(topic["Properties"]["KmsMasterKeyId"])
    key_statements = policy_statements(graph.resource(key_id)["Properties"]["KeyPolicy"])
    (budgets_key,) = [
        s for s in key_statements if s.get("Principal") == {"Service": BUDGETS_PRINCIPAL}
    ]
    assert budgets_key["Effect"] == "Allow"
    assert sorted(actions_of(budgets_key)) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert budgets_key["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}

    (policy_id, policy) = next(iter(graph.of_type("AWS::SNS::TopicPolicy").items()))
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    (publish,) = [
        s
        for s in policy_statements(policy["Properties"]["PolicyDocument"])
        if s.get("Principal") == {"Service": BUDGETS_PRINCIPAL}
    ]
    assert actions_of(publish) == ["sns:Publish"]
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": config.account}
    assert TemplateGraph.render(publish["Condition"]["ArnLike"]["aws:SourceArn"]) == (
        f"arn:aws:budgets::{config.account}:*"
    )
    assert graph.depends_on(graph.id_of(_budget(graph)), policy_id)


def _roles_in_bu(synthesized: Any, bu: str) -> set[str]:
    return {
        role["Properties"].get("RoleName")
        for (name, _), template in synthesized.templates.items()
        if name == bu
        for role in TemplateGraph(template.to_json()).of_type("AWS::IAM::Role").values()
    }


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_budget_action_denies_new_capacity_to_existing_roles(synthesized: Any, bu: str) -> None:
    """``APPLY_IAM_POLICY`` attaches ``Definition.IamActionDefinition.PolicyArn`` to the listed
    roles at the threshold (CloudFormation ``AWS::Budgets::BudgetsAction``). The policy denies
    exactly ``DENIED_ACTIONS`` (new endpoints, HyperPod capacity, managed jobs) and nothing
    else; the roles it names are this BU's and exist in its other stacks, which deploy first."""
    graph, config = _governance(synthesized, bu)
    governance = config.governance
    assert governance.budget_action
    (action,) = graph.of_type("AWS::Budgets::BudgetsAction").values()
    props = action["Properties"]
    assert props["ActionType"] == "APPLY_IAM_POLICY"
    assert props["BudgetName"] == _budget(graph)["Properties"]["Budget"]["BudgetName"]
    assert props["ActionThreshold"] == {"Type": "PERCENTAGE", "Value": governance.action_threshold}
    assert props["ApprovalModel"] == governance.action_approval.upper()
    definition = props["Definition"]["IamActionDefinition"]
    roles = definition["Roles"]
    assert config.naming.role("studio-execution") in roles
    assert config.naming.role("training-job") in roles
    assert set(roles) <= _roles_in_bu(synthesized, bu)
    assert all(role.startswith(f"{bu}-") for role in roles)

    deny = graph.resource(graph.ref_target(definition["PolicyArn"]))
    assert deny["Type"] == "AWS::IAM::ManagedPolicy"
    (statement,) = policy_statements(deny["Properties"]["PolicyDocument"])
    assert statement["Effect"] == "Deny"
    assert sorted(actions_of(statement)) == sorted(DENIED_ACTIONS)
    assert resources_of(statement) == ["*"]
    assert "Condition" not in statement
    stage = synthesized.stages[bu]
    named = {stage.studio, stage.training, stage.hyperpod, stage.endpoints} - {None}
    assert named <= set(stage.governance.dependencies)


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_budget_action_role_may_only_attach_that_policy(synthesized: Any, bu: str) -> None:
    """The execution role (``ExecutionRoleArn``) is assumed by Budgets for this account only and
    may attach and detach the deny policy (``iam:PolicyARN``) on the listed roles, nothing else:
    no inline policy, no AWS managed policy."""
    graph, config = _governance(synthesized, bu)
    (action,) = graph.of_type("AWS::Budgets::BudgetsAction").values()
    role_id = graph.ref_target(action["Properties"]["ExecutionRoleArn"])
    role = graph.resource(role_id)["Properties"]
    assert role["RoleName"] == config.naming.role("budget-action")
    (trust,) = policy_statements(role["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": BUDGETS_PRINCIPAL}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": config.account}}
    assert graph.policies_of(role_id) == []
    (managed,) = role["ManagedPolicyArns"]
    document = graph.resource(graph.ref_target(managed))["Properties"]["PolicyDocument"]
    (statement,) = policy_statements(document)
    definition = action["Properties"]["Definition"]["IamActionDefinition"]
    assert statement["Effect"] == "Allow"
    assert sorted(actions_of(statement)) == sorted(ATTACH_ACTIONS)
    assert resources_of(statement) == [
        f"arn:aws:iam::{config.account}:role/{name}" for name in definition["Roles"]
    ]
    assert statement["Condition"] == {"ArnEquals": {"iam:PolicyARN": definition["PolicyArn"]}}


@pytest.mark.parametrize("bu", GOVERNED_BUS)
def test_dashboard_shows_this_bus_endpoints_only(synthesized: Any, bu: str) -> None:
    """Endpoint widgets plot ``AWS/SageMaker`` and ``/aws/sagemaker/Endpoints`` metrics with
    dimensions ``EndpointName`` and ``VariantName=AllTraffic`` (SageMaker developer guide), for
    exactly the endpoints this BU's endpoints stack creates; the body deployed is the one
    ``tools/render_dashboard.py`` draws."""
    graph, config = _governance(synthesized, bu)
    (dashboard,) = graph.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.loads(TemplateGraph.render(dashboard["Properties"]["DashboardBody"]))
    assert body == dashboard_body(dashboard_spec(config))
    endpoints = TemplateGraph(synthesized.template(bu, "endpoints").to_json())
    created = {
        e["Properties"]["EndpointName"]
        for e in endpoints.of_type("AWS::SageMaker::Endpoint").values()
    }
    assert created
    plotted = set()
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for metric in widget["properties"]["metrics"]:
            if metric[0] in ("AWS/SageMaker", "/aws/sagemaker/Endpoints"):
                assert metric[4:6] == ["VariantName", "AllTraffic"]
                assert metric[2] == "EndpointName"
                plotted.add(metric[3])
            else:
                assert metric[:2] == ["AWS/Billing", "EstimatedCharges"]
                assert widget["properties"]["region"] == "us-east-1"
    assert plotted == created
    others = {
        e["Properties"]["EndpointName"]
        for (name, unit), template in synthesized.templates.items()
        if unit == "endpoints" and name != bu
        for e in TemplateGraph(template.to_json()).of_type("AWS::SageMaker::Endpoint").values()
    }
    assert not others & plotted
    assert not any(other in dashboard["Properties"]["DashboardBody"] for other in others)
