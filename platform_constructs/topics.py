"""The one way a BU's alert topic is made: SNS, encrypted with a BU key, TLS only, whose key one
AWS service may use (to publish into the encrypted topic) under the caller's conditions (SNS
developer guide, "Key management": compatibility with event sources from AWS services)."""

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct


def service_encrypted_topic(
    scope: Construct,
    *,
    topic_name: str,
    key: kms.IKey,
    service: str,
    key_actions: Sequence[str],
    sid: str,
    conditions: Mapping[str, Any],
) -> sns.Topic:
    """Topic ``Topic`` under ``scope``; ``service`` may use ``key`` for ``key_actions`` only
    under ``conditions`` (the confused-deputy keys the service sets on that call)."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(service)],
            actions=list(key_actions),
            resources=["*"],  # in a key policy, "*" is this key
            conditions=dict(conditions),
        )
    )
    return sns.Topic(scope, "Topic", topic_name=topic_name, master_key=key, enforce_ssl=True)
