"""Customer-managed KMS keys, one per purpose, rotation on; the key's owner writes its policy."""

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
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

    def admit_log_group(self, log_group_name: str, *, sid: str | None = None) -> None:
        """Let CloudWatch Logs of this stack's region use the key for one log group only (the
        ``aws:logs:arn`` encryption context), as a log group encrypted with it requires; a name
        with ``*`` admits the groups it matches (a service that names its own groups)."""
        stack = cdk.Stack.of(self)
        operator = "ArnLike" if "*" in log_group_name else "ArnEquals"
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    operator: {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=log_group_name,
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
