"""The BU's network, one construct per job: the VPC (private subnets over explicit AZs), its
encrypted flow logs, and the endpoints a network without internet access needs to reach
SageMaker, EKS and the services around them.

Construct ids: ``NetworkStack`` nests the flow logs and endpoints under the ``PlatformVpc``
and each of them names its main resource ``Default``, which CDK leaves out of logical IDs. So
the log group, the endpoints' security group and the endpoints keep the logical IDs they had
when one construct built all three, and a deployed BU updates in place (``make replacements``
against the old code reports no stateful change).
"""

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge

_SVC = ec2.InterfaceVpcEndpointAwsService
# Interface endpoints, by construct id. SageMaker MLflow is served by the `experiments`
# PrivateLink service (aws.sagemaker.<region>.experiments).
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": _SVC.SAGEMAKER_API,
    "SageMakerRuntime": _SVC.SAGEMAKER_RUNTIME,
    "SageMakerStudio": _SVC.SAGEMAKER_STUDIO,
    "SageMakerNotebook": _SVC.SAGEMAKER_NOTEBOOK,
    "SageMakerMlflow": _SVC.SAGEMAKER_EXPERIMENTS,
    "Sts": _SVC.STS,
    "EcrApi": _SVC.ECR,
    "EcrDocker": _SVC.ECR_DOCKER,
    "CloudWatchLogs": _SVC.CLOUDWATCH_LOGS,
    "CloudWatchMonitoring": _SVC.CLOUDWATCH_MONITORING,
    "Eks": _SVC.EKS,
    "EksAuth": _SVC.EKS_AUTH,
    "Ec2": _SVC.EC2,
    "ElasticLoadBalancing": _SVC.ELASTIC_LOAD_BALANCING,
    "Kms": _SVC.KMS,
    # Session Manager (SSM sessions to HyperPod nodes, Studio spaces' remote IDE access): the
    # SSM Agent registers on ssm, opens session channels on ssmmessages and, before agent
    # 3.3.40.0, takes commands from ec2messages (Systems Manager user guide, "Reference:
    # ec2messages, ssmmessages, and other API operations"). AWS's closed-network HyperPod
    # sample (awsome-distributed-ai, closed-network.tfvars) creates all three.
    "Ssm": _SVC.SSM,
    "SsmMessages": _SVC.SSM_MESSAGES,
    "Ec2Messages": _SVC.EC2_MESSAGES,
    "SecretsManager": _SVC.SECRETS_MANAGER,
    "Fsx": _SVC.FSX,
    # The EKS kubectl provider's framework function invokes its handler from the VPC.
    "Lambda": _SVC.LAMBDA_,
    # HyperPod's observability add-on remote-writes GPU metrics to Managed Prometheus.
    "PrometheusWorkspaces": _SVC.PROMETHEUS_WORKSPACES,
}
HTTPS = 443


class PlatformVpc(Construct):
    """A VPC whose workloads reach AWS only through endpoints (plus NAT when opted in).

    ``nat_gateways=0`` means the closed mode: isolated subnets, no internet gateway, no NAT.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_name: str,
        cidr: str,
        availability_zones: Sequence[str],
        private_subnet_prefix: int,
        nat_gateways: int,
        public_subnet_prefix: int,
    ) -> None:
        super().__init__(scope, construct_id)
        private_type = (
            ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_gateways else ec2.SubnetType.PRIVATE_ISOLATED
        )
        subnets = [
            ec2.SubnetConfiguration(
                name="private", subnet_type=private_type, cidr_mask=private_subnet_prefix
            )
        ]
        if nat_gateways:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="public",
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=public_subnet_prefix,
                    map_public_ip_on_launch=False,  # only the NAT gateways live here
                )
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=vpc_name,
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            availability_zones=list(availability_zones),  # never a live AZ lookup
            nat_gateways=nat_gateways,
            subnet_configuration=subnets,
            # Closing the default SG needs a Lambda custom resource; see the acknowledgement.
            restrict_default_security_group=False,
        )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                self.vpc,
                f"{pack}-VPCDefaultSecurityGroupClosed",
                "No construct in this platform attaches the default security group (every ENI "
                "gets its own group); closing it from CDK needs a Lambda custom resource outside "
                "the VPC that itself fails the Lambda rules.",
            )
        for subnet in self.vpc.public_subnets:
            for pack in COMPLIANCE_PACKS:
                acknowledge(
                    subnet.node.find_child("DefaultRoute"),
                    f"{pack}-VPCNoUnrestrictedRouteToIGW",
                    "egress: nat was opted into in the BU config; NAT needs this public subnet's "
                    "0.0.0.0/0 route to the IGW, and only the NAT gateways live here.",
                )
        self.private_subnets = ec2.SubnetSelection(subnet_type=private_type)


class VpcFlowLogs(Construct):
    """Every accepted and rejected packet of a VPC, to a KMS-encrypted log group.

    The key's owner must admit CloudWatch Logs for this log group
    (``PurposeKey.admit_log_group``): this construct never edits a key policy it does not own.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        log_group_name: str,
        encryption_key: kms.IKey,
        retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Default",  # hidden from the logical ID: see the module docstring
            log_group_name=log_group_name,
            encryption_key=encryption_key,
            retention=retention,
            removal_policy=removal_policy,
        )
        self.flow_log = ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                self.flow_log.node.find_child("IAMRole").node.find_child("DefaultPolicy"),
                f"{pack}-IAMNoInlinePolicy",
                "CDK's flow-log grant: it allows only writing to this one log group and passing "
                "this one role, and an inline policy cannot be attached to any other principal.",
            )


class VpcEndpoints(Construct):
    """The S3 gateway endpoint and every interface endpoint of :data:`INTERFACE_ENDPOINTS`,
    behind one security group that admits HTTPS from the VPC's CIDR only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.Vpc,
        cidr: str,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "Default",  # hidden from the logical ID: see the module docstring
            vpc=vpc,
            description="Interface VPC endpoints: HTTPS from the VPC CIDR only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            # The literal CIDR (not the VPC's GetAtt) so the nag rules can evaluate the peer.
            ec2.Peer.ipv4(cidr),
            ec2.Port.tcp(HTTPS),
            "HTTPS from the VPC",
        )
        # The VPC's own helpers place the endpoints under the VPC construct.
        self.s3_endpoint = vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[subnets]
        )
        self.interface_endpoints = {
            endpoint_id: vpc.add_interface_endpoint(
                endpoint_id,
                service=service,
                subnets=subnets,
                security_groups=[self.security_group],
                open=False,  # the group above admits the VPC; no duplicate rule per endpoint
                private_dns_enabled=True,
            )
            for endpoint_id, service in INTERFACE_ENDPOINTS.items()
        }
