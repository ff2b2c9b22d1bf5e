"""Network stack: the BU's VPC, its flow logs and VPC endpoints (changes rarely)."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config.schema import BusinessUnitConfig
from platform_constructs.keys import PurposeKey
from platform_constructs.network import PlatformVpc, VpcEndpoints, VpcFlowLogs
from stacks._common import log_retention, removal_policy


class NetworkStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: BusinessUnitConfig, **kwargs: Any
    ) -> None:
        self._azs = list(config.network.availability_zones)
        super().__init__(scope, construct_id, **kwargs)
        names, net = config.naming, config.network
        policy = removal_policy(config)
        # The flow-log key lives with the network: it must exist before the VPC logs a packet.
        # This stack owns it, so this stack writes its policy.
        flow_log_group_name = names.log_group("vpc-flow-logs")
        logs_key = PurposeKey(
            self,
            "LogsKey",
            alias=names.key_alias("logs"),
            description=f"{config.name}: VPC flow logs and platform log groups",
            removal_policy=policy,
        )
        logs_key.admit_log_group(flow_log_group_name)
        self.logs_key = logs_key.key
        self.network = PlatformVpc(
            self,
            "Network",
            vpc_name=names.resource("vpc"),
            cidr=str(net.cidr),
            availability_zones=net.availability_zones,
            private_subnet_prefix=net.private_subnet_prefix,
            nat_gateways=net.nat_gateway_count,
            public_subnet_prefix=net.public_subnet_prefix,
        )
        # Nested under the VPC construct with these ids so that the deployed resources keep
        # their logical IDs (platform_constructs/network.py says how).
        self.flow_logs = VpcFlowLogs(
            self.network,
            "FlowLogGroup",
            vpc=self.network.vpc,
            log_group_name=flow_log_group_name,
            encryption_key=self.logs_key,
            retention=log_retention(net.flow_log_retention_days),
            removal_policy=policy,
        )
        self.endpoints = VpcEndpoints(
            self.network,
            "EndpointSecurityGroup",
            vpc=self.network.vpc,
            cidr=str(net.cidr),
            subnets=self.network.private_subnets,
        )
        # What the other stacks attach to: the VPC, its private subnets and the endpoints' group.
        self.vpc = self.network.vpc
        self.private_subnets = self.network.private_subnets
        self.endpoint_security_group = self.endpoints.security_group

    @property
    def availability_zones(self) -> list[str]:
        """The config's AZs. With an explicit account, CDK would look them up (a call to AWS
        that fails offline, then a second synth pass); ``ec2.Vpc`` reads this to check its
        ``availability_zones`` against the stack's."""
        return self._azs
