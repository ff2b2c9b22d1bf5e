"""The platform constructs a bare-stack test builds around the construct it checks (a purpose
key, the VPC and its flow logs), with the settings those tests share, so each test names only
what it varies."""

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from platform_constructs.keys import PurposeKey
from platform_constructs.network import PlatformVpc, VpcFlowLogs

DESTROY = cdk.RemovalPolicy.DESTROY


def purpose_key(
    scope: Construct,
    construct_id: str,
    alias: str,
    *,
    description: str = "t",
    removal_policy: cdk.RemovalPolicy = DESTROY,
) -> PurposeKey:
    """A ``PurposeKey`` under ``alias``, destroyed with the test's stack unless told otherwise."""
    return PurposeKey(
        scope, construct_id, alias=alias, description=description, removal_policy=removal_policy
    )


def platform_vpc(
    scope: Construct,
    vpc_name: str,
    *,
    cidr: str,
    availability_zones: Sequence[str],
    nat_gateways: int = 0,
) -> PlatformVpc:
    """A ``PlatformVpc`` with /19 private and /26 public subnets, closed (no NAT) by default."""
    return PlatformVpc(
        scope,
        "Network",
        vpc_name=vpc_name,
        cidr=cidr,
        availability_zones=availability_zones,
        private_subnet_prefix=19,
        nat_gateways=nat_gateways,
        public_subnet_prefix=26,
    )


def flow_logs(
    scope: Construct, vpc: ec2.IVpc, *, log_group_name: str, encryption_key: kms.IKey
) -> VpcFlowLogs:
    """``VpcFlowLogs`` kept a year and destroyed with the test's stack."""
    return VpcFlowLogs(
        scope,
        "FlowLogs",
        vpc=vpc,
        log_group_name=log_group_name,
        encryption_key=encryption_key,
        retention=cdk.aws_logs.RetentionDays.ONE_YEAR,
        removal_policy=DESTROY,
    )
