"""The security groups of the BU's VPC workloads: closed until their rules are added, and the
one rule that lets a workload reach S3 through the gateway endpoint."""

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

HTTPS = 443


def closed_group(
    scope: Construct, construct_id: str, *, vpc: ec2.IVpc, description: str
) -> ec2.SecurityGroup:
    """A group that admits nothing and lets nothing out but the rules added to it."""
    return ec2.SecurityGroup(
        scope, construct_id, vpc=vpc, description=description, allow_all_outbound=False
    )


def allow_https_to_s3(group: ec2.SecurityGroup, description: str) -> None:
    """HTTPS out to any address. S3 is reached through the gateway endpoint, whose prefix-list
    ID exists only at deploy time (a lookup would break offline synthesis): a closed BU's route
    tables send 443 nowhere but the VPC endpoints, and a `nat` BU's VPC allows the same egress."""
    group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), description)
