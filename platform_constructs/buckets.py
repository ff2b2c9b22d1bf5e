"""Secure S3 buckets: KMS, TLS only, no public access, versioned, logged, lifecycle-managed."""

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge_each

_REPLICATION_REASON = (
    "Single-region BU platform: durability comes from S3's multi-AZ storage plus versioning; "
    "cross-region replication needs a second region and key that the BU config does not define."
)


class SecureBucket(Construct):
    """A bucket encrypted with a customer-managed key that logs its access to ``access_logs``.

    No ``auto_delete_objects``: that adds a Lambda custom resource (outside the VPC, no DLQ)
    that the HIPAA and NIST packs reject; a `destroy` BU's bucket must be emptied first.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        removal_policy: cdk.RemovalPolicy,
        noncurrent_version_days: int = 90,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            **_baseline(bucket_name, removal_policy),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,  # fewer KMS calls for checkpoint-heavy workloads
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{bucket_name}/",
            lifecycle_rules=[_housekeeping(noncurrent_version_days)],
        )
        acknowledge_each(self.bucket, _replication_findings())


class AccessLogBucket(Construct):
    """The target of every bucket's server access logs (S3-managed keys: SSE-KMS is refused)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        removal_policy: cdk.RemovalPolicy,
        retention_days: int = 400,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            **_baseline(bucket_name, removal_policy),
            # S3 server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            lifecycle_rules=[
                _housekeeping(30),
                s3.LifecycleRule(id="expire-logs", expiration=cdk.Duration.days(retention_days)),
            ],
        )
        why_sse_s3 = (
            "S3 server access logs can only be delivered to a bucket with SSE-S3 (AES256) "
            "default encryption; SSE-KMS targets are not supported by the logging service."
        )
        findings = {f"{pack}-S3DefaultEncryptionKMS": why_sse_s3 for pack in COMPLIANCE_PACKS}
        acknowledge_each(self.bucket, findings | _replication_findings())


def _replication_findings() -> dict[str, str]:
    return {f"{pack}-S3BucketReplicationEnabled": _REPLICATION_REASON for pack in COMPLIANCE_PACKS}


def _baseline(bucket_name: str, removal_policy: cdk.RemovalPolicy) -> dict[str, Any]:
    """What every bucket has: its derived name, TLS only, no public access, versioning."""
    return {
        "bucket_name": bucket_name,
        "enforce_ssl": True,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "versioned": True,
        "removal_policy": removal_policy,
    }


def _housekeeping(noncurrent_version_days: int) -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id="housekeeping",
        noncurrent_version_expiration=cdk.Duration.days(noncurrent_version_days),
        abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
    )
