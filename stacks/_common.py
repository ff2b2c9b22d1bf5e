"""What the stacks share: the opening of a BU's stack, what the later stacks build on, and
translations from config values to CDK values."""

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.schema import BusinessUnitConfig
from core.naming import BU_TAG_KEY
from platform_constructs.keys import PurposeKey

Spec = TypeVar("Spec")


class BuStack(cdk.Stack):
    """One stack of a BU's stage, ``key`` naming it: the construct id ``key``, the stack name
    ``config.naming.stack(key)``, the description "<bu>: <description>", and termination
    protection when the BU retains its resources. ``config`` (the BU's name, region, tags and
    removal policy), ``names`` (its naming helper) and ``removal_policy`` (the CDK form of the
    config's) stay at hand for the stack's body."""

    def __init__(
        self, stage: Construct, key: str, *, config: BusinessUnitConfig, description: str
    ) -> None:
        super().__init__(
            stage,
            key,
            stack_name=config.naming.stack(key),
            description=f"{config.name}: {description}",
            termination_protection=config.removal_policy == "retain",
        )
        self.config = config
        self.names = config.naming
        retain = config.removal_policy == "retain"
        self.removal_policy = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY

    def imported_buckets(
        self, keys: Mapping[str, kms.IKey], *purposes: str
    ) -> dict[str, s3.IBucket]:
        """The security stack's buckets for ``purposes`` (see `named_bucket`), by purpose;
        ``keys`` is ``SecurityStack.keys``."""
        return {p: named_bucket(self, config=self.config, key=keys[p], purpose=p) for p in purposes}

    def purpose_key(self, construct_id: str, purpose: str, holds: str) -> PurposeKey:
        """The BU's customer-managed key for one purpose: alias ``names.key_alias(purpose)``,
        described as "<bu>: <holds>", kept or destroyed with the BU's resources."""
        return PurposeKey(
            self,
            construct_id,
            alias=self.names.key_alias(purpose),
            description=f"{self.config.name}: {holds}",
            removal_policy=self.removal_policy,
        )


def spec_of(cls: type[Spec], section: object, /, **given: Any) -> Spec:
    """A construct's frozen spec from a config section: each field not ``given`` is the
    section's field of the same name, so a translation names only what differs (a missing
    name fails at synth, not at deploy)."""
    copied = {f.name for f in dataclasses.fields(cls)} - given.keys()  # type: ignore[arg-type]
    return cls(**{name: getattr(section, name) for name in copied}, **given)


def stage_tags(config: BusinessUnitConfig) -> dict[str, str]:
    """The tags the Stage puts on every resource: cost allocation, and the BU's name (IAM
    conditions scope by it where an ARN cannot). Raw ``CfnResource``s, which ``cdk.Tags``
    skips, take these explicitly."""
    return {**config.tags.as_dict(), BU_TAG_KEY: config.name}


_RETENTION = {
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The schema only admits the day counts CloudWatch Logs offers, all listed here."""
    return _RETENTION[days]


def named_bucket(
    scope: Construct, *, config: BusinessUnitConfig, key: kms.IKey, purpose: str
) -> s3.IBucket:
    """The security stack's ``purpose`` bucket, referenced by its derived name (and with its key,
    ``SecurityStack.keys[purpose]``) for grants made in another stack.

    cdk-nag names a grant's object wildcard after the bucket ARN as written: ``<Id.Arn>/*`` when
    it checks constructs, the export name (``<bu>-security:ExportsOutput...``) when it checks the
    synthesized template, so a cross-stack ARN cannot be acknowledged by one finding. The name
    is the same one the security stack gave the bucket (both come from ``core.naming``), and
    the key reference keeps the deploy order. (An import: its construct id reaches no template.)
    """
    name = config.naming.bucket(purpose)
    stack = cdk.Stack.of(scope)
    return s3.Bucket.from_bucket_attributes(
        scope,
        f"Bucket-{purpose}",
        bucket_name=name,
        bucket_arn=stack.format_arn(service="s3", region="", account="", resource=name),
        encryption_key=key,
    )
