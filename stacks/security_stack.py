"""Security stack: the BU's customer-managed keys and its buckets (stateful, changes rarely)."""

from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config.schema import BusinessUnitConfig
from core.naming import BUCKET_PURPOSES, OPTIONAL_BUCKET_PURPOSES
from platform_constructs.buckets import AccessLogBucket, SecureBucket
from stacks._common import BuStack

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "KMS keys and S3 buckets"

# Per-purpose retention of superseded object versions (checkpoints churn fastest).
NONCURRENT_VERSION_DAYS = {"checkpoints": 7, "hyperpod-lifecycle": 30}


def _construct_id(purpose: str) -> str:
    return "".join(part.capitalize() for part in purpose.split("-"))


class SecurityStack(BuStack):
    """One KMS key and one bucket per purpose, all logging to the access-log bucket."""

    def __init__(self, stage: Construct, *, config: BusinessUnitConfig) -> None:
        super().__init__(stage, "security", config=config, description=DESCRIPTION)
        names = self.names
        policy = self.removal_policy
        self.access_logs = AccessLogBucket(
            self, "AccessLogs", bucket_name=names.bucket("access-logs"), removal_policy=policy
        ).bucket
        self.keys: dict[str, kms.IKey] = {}
        self.buckets: dict[str, s3.IBucket] = {}
        optional = {
            "inference-tls": config.endpoints is not None and config.endpoints.on("hyperpod"),
        }
        wanted = [p for p in OPTIONAL_BUCKET_PURPOSES if optional[p]]
        for purpose in (*BUCKET_PURPOSES, *wanted):
            if purpose == "access-logs":
                continue
            cid = _construct_id(purpose)
            self.keys[purpose] = self.purpose_key(f"{cid}Key", purpose, f"{purpose} bucket").key
            self.buckets[purpose] = SecureBucket(
                self,
                cid,
                bucket_name=names.bucket(purpose),
                encryption_key=self.keys[purpose],
                access_logs=self.access_logs,
                removal_policy=policy,
                noncurrent_version_days=NONCURRENT_VERSION_DAYS.get(purpose, 90),
            ).bucket
