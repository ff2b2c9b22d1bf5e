"""Network stack: the BU's VPC, its flow logs and VPC endpoints (changes rarely)."""

from constructs import Construct

from config.aws_registries import node_image_accounts
from config.schema import BusinessUnitConfig
from core.naming import BUCKET_PURPOSES, OPTIONAL_BUCKET_PURPOSES
from inference.serving import image_uri
from platform_constructs.network import AdmittedBucket, PlatformVpc, VpcEndpoints, VpcFlowLogs
from stacks._common import BuStack, log_retention

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "VPC, flow logs and VPC endpoints"


def bu_bucket_names(config: BusinessUnitConfig) -> list[str]:
    """Every bucket the BU may have (``core.naming``): one per purpose, and the MWAA source
    bucket of a BU with a ``pipeline`` section (MWAA's containers read DAGs, plugins.zip and
    requirements.txt through the S3 gateway endpoint: MWAA user guide, "Security in your VPC on
    Amazon MWAA", the gateway endpoint policy must allow "the bucket where your DAGs and
    supporting files are stored")."""
    names = [config.naming.bucket(p) for p in (*BUCKET_PURPOSES, *OPTIONAL_BUCKET_PURPOSES)]
    if config.pipeline is not None:
        names.append(config.naming.airflow_bucket())
    return names


def bu_buckets(config: BusinessUnitConfig) -> list[AdmittedBucket]:
    """Every bucket of :func:`bu_bucket_names`, admitted whole by the S3 endpoint."""
    return [
        AdmittedBucket(
            kind="BusinessUnitBuckets",
            name=name,
            actions=("s3:*",),
            objects_only=False,
            reason=f"this BU's bucket {name} (config.naming); IAM and the bucket policy "
            "decide who may do what in it",
        )
        for name in bu_bucket_names(config)
    ]


def bu_repositories(config: BusinessUnitConfig) -> tuple[str, ...]:
    """This account's ECR repositories of the BU: the training image and everything under
    ``<bu>/`` (the dependencies chart, the chart's image mirrors)."""
    return (config.naming.resource("training"), f"{config.name}/*")


def aws_registries(config: BusinessUnitConfig) -> dict[str, str]:
    """AWS-owned registry account -> what the BU pulls from it in its region: the HyperPod
    nodes' images (``config.aws_registries``) and the LMI image of SageMaker endpoints."""
    registries: dict[str, str] = {}
    hp = config.hyperpod
    if hp is not None:
        registries |= node_image_accounts(
            config.region,
            mig=any(g.mig_label for g in hp.gpu_groups),
            hyperpod_inference=config.endpoints is not None
            and bool(config.endpoints.on("hyperpod")),
        )
    if config.endpoints is not None and config.endpoints.on("sagemaker"):
        lmi_account = image_uri(config.region).split(".", 1)[0]
        registries.setdefault(lmi_account, "the LMI serving image of the SageMaker endpoints")
    return registries


class NetworkStack(BuStack):
    def __init__(self, stage: Construct, *, config: BusinessUnitConfig) -> None:
        self._azs = list(config.network.availability_zones)
        super().__init__(stage, "network", config=config, description=DESCRIPTION)
        names, net = self.names, config.network
        policy = self.removal_policy
        # The flow-log key lives with the network: it must exist before the VPC logs a packet.
        # This stack owns it, so this stack writes its policy.
        flow_log_group_name = names.log_group("vpc-flow-logs")
        logs_key = self.purpose_key("LogsKey", "logs", "VPC flow logs and platform log groups")
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
            buckets=bu_buckets(config),
            own_repositories=bu_repositories(config),
            registry_accounts=aws_registries(config),
            mwaa=config.pipeline is not None,
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
