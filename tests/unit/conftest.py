"""Fixtures for config tests: a valid BU as a dict, and a writer of YAML files into tmp_path."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VALID: dict[str, Any] = {
    "name": "payments",
    "account": "333333333333",
    "region": "us-west-2",
    "network": {
        "cidr": "10.80.0.0/16",
        "availability_zones": ["us-west-2a", "us-west-2b"],
    },
    "tags": {"owner": "payments-ml", "cost_center": "CC-9000"},
}


@pytest.fixture
def valid_bu() -> dict[str, Any]:
    return copy.deepcopy(VALID)


@pytest.fixture
def write_bu(tmp_path: Path) -> Callable[..., Path]:
    def write(raw: dict[str, Any], name: str = "bu") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def construct_stacks() -> dict[str, Any]:
    """Each construct in its own bare ``Stack()``, built once per session (jsii is slow)."""
    import aws_cdk as cdk
    from harness.cdk_context import cdk_json_context
    from harness.construct_builders import flow_logs, platform_vpc, purpose_key

    from platform_constructs.buckets import AccessLogBucket, SecureBucket
    from platform_constructs.network import AdmittedBucket, VpcEndpoints

    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    storage = cdk.Stack(app, "Storage")
    key = purpose_key(
        storage, "Key", "alias/t/data", description="test", removal_policy=cdk.RemovalPolicy.RETAIN
    )
    logs_bucket = AccessLogBucket(
        storage, "Logs", bucket_name="t-access-logs", removal_policy=cdk.RemovalPolicy.RETAIN
    )
    SecureBucket(
        storage,
        "Data",
        bucket_name="t-data",
        encryption_key=key.key,
        access_logs=logs_bucket.bucket,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        noncurrent_version_days=7,
    )
    vpcs = {}
    for name, nat in (("ClosedVpc", 0), ("NatVpc", 3)):
        stack = cdk.Stack(app, name)
        logs_key = purpose_key(stack, "LogsKey", "alias/t/logs")
        logs_key.admit_log_group(f"/t/{name}")  # as NetworkStack does: the key's owner
        network = platform_vpc(
            stack,
            f"t-{name}",
            cidr="10.1.0.0/16",
            availability_zones=["us-east-1a", "us-east-1b", "us-east-1c"],
            nat_gateways=nat,
        )
        flow_logs(stack, network.vpc, log_group_name=f"/t/{name}", encryption_key=logs_key.key)
        VpcEndpoints(
            stack,
            "Endpoints",
            vpc=network.vpc,
            cidr="10.1.0.0/16",
            subnets=network.private_subnets,
            buckets=[AdmittedBucket("BusinessUnitBuckets", "t-data", ("s3:*",), False, "test")],
            own_repositories=("t-training", "t/*"),
            registry_accounts={"602401143452": "EKS add-ons"},
        )
        vpcs[name] = stack
    # Flow logs with a key nobody admitted CloudWatch Logs to: the construct must leave the
    # key's policy alone (its owner writes it).
    foreign = cdk.Stack(app, "ForeignKey")
    flow_logs(
        foreign,
        platform_vpc(
            foreign,
            "t-foreign",
            cidr="10.2.0.0/16",
            availability_zones=["us-east-1a", "us-east-1b"],
        ).vpc,
        log_group_name="/t/foreign",
        encryption_key=purpose_key(foreign, "Key", "alias/t/foreign").key,
    )
    vpcs["ForeignKey"] = foreign
    return {"app": app, "Storage": storage, **vpcs}
