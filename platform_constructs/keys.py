"""Customer-managed KMS keys, one per purpose, rotation on."""

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from constructs import Construct


class PurposeKey(Construct):
    """A rotating customer-managed key behind a BU-scoped alias (``alias/<bu>/<purpose>``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: str,
        description: str,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=alias,
            description=description,
            enable_key_rotation=True,
            # The longest window: a destroyed BU's data stays recoverable for 30 days.
            pending_window=cdk.Duration.days(30),
            removal_policy=removal_policy,
        )
