"""The wildcards CDK's own bucket and key grants write, named as cdk-nag prints them, so each is
acknowledged by name on the one policy that holds it (never by rule alone)."""

from collections.abc import Iterable
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from platform_constructs.gates import acknowledge_each

# The action families `grant_read` / `grant_read_write` write (bucket and its KMS key).
S3_READ_ACTIONS = ("s3:GetBucket*", "s3:GetObject*", "s3:List*")
S3_READ_WRITE_ACTIONS = (*S3_READ_ACTIONS, "s3:Abort*", "s3:DeleteObject*")
KMS_READ_WRITE_ACTIONS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")
_ACTION_REASON = (
    "An action family of CDK's bucket/key grant (e.g. s3:GetObject* = GetObject, "
    "GetObjectVersion, GetObjectTagging...); the same statements name this BU's buckets and "
    "their keys as resources, nothing else."
)


def nag_form(scope: IConstruct, value: str) -> str:
    """``value`` as cdk-nag writes it in a finding: ``<LogicalId.Attr>`` for each reference."""
    return _render(cdk.Stack.of(scope).resolve(value))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_render(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise ValueError(f"cannot render {value!r} as cdk-nag does")


def acknowledge_bucket_grant(
    policy: IConstruct,
    *,
    bucket: s3.IBucket,
    objects: str = "*",
    write: bool,
    why: str,
) -> None:
    """Acknowledge the findings of ``bucket.grant_read[_write](..., objects)`` on ``policy``."""
    resource = nag_form(policy, bucket.arn_for_objects(objects))
    actions: Iterable[str] = (
        (*S3_READ_WRITE_ACTIONS, *KMS_READ_WRITE_ACTIONS) if write else S3_READ_ACTIONS
    )
    findings = {
        f"AwsSolutions-IAM5[Resource::{resource}]": "Objects of one bucket of this BU, by CDK's "
        f"grant: {why}"
    }
    findings |= {f"AwsSolutions-IAM5[Action::{action}]": _ACTION_REASON for action in actions}
    acknowledge_each(policy, findings)
