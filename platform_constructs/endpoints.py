"""An LMI model on a SageMaker real-time endpoint: model, endpoint config, endpoint, its
security group, target-tracking autoscaling and CloudWatch alarms.

L1 resources (``CfnModel``, ``CfnEndpointConfig``, ``CfnEndpoint``) on purpose: the
``aws-sagemaker-alpha`` L2s cannot express uncompressed S3 model data (``ModelDataSource``) or
data capture (aws-cdk#23150), which this endpoint needs; see the README.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from platform_constructs import service_roles, vpc_enis
from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge
from platform_constructs.security_groups import allow_https_to_s3, closed_group
from platform_constructs.topics import service_encrypted_topic

VARIANT = "AllTraffic"
# Sized for Qwen3-4B (8 GB of bf16 safetensors): the copy from S3 takes a minute or two, and
# LMI's start (vLLM engine, weights onto the GPU, CUDA graph capture) a few minutes more; the
# defaults (both 60 s) would fail every first deployment.
MODEL_DOWNLOAD_TIMEOUT_S = 1200
STARTUP_HEALTH_CHECK_TIMEOUT_S = 1200


@dataclass(frozen=True)
class ModelSource:
    """An uncompressed model: a key prefix (ending in '/') of the BU's models bucket.

    The bucket by name (from ``core.naming``, as the security stack named it) rather than
    its cross-stack ARN token: the policy resources and the S3 URI stay literal strings.
    """

    bucket_name: str
    prefix: str
    key: kms.IKey  # the models bucket's key

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket_name}/{self.prefix}"


@dataclass(frozen=True)
class AlarmThresholds:
    model_latency_p90_ms: int
    overhead_latency_p90_ms: int
    error_4xx_rate_percent: float
    error_5xx_rate_percent: float
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int


@dataclass(frozen=True)
class Scaling:
    min_capacity: int
    max_capacity: int
    target_concurrent_requests: int
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int


@dataclass(frozen=True)
class Capture:
    """Where data capture writes: a key prefix (ending in '/') of the capture bucket."""

    bucket_name: str
    prefix: str
    key: kms.IKey  # the capture bucket's key
    sampling_percent: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket_name}/{self.prefix.rstrip('/')}"


def image_repository_arn(scope: Construct, image_uri: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>` (or `<repo>@sha256:...`, the
    LMI image once inference/lmi_images.json records its digest) -> the repository's ARN."""
    registry, _, path = image_uri.partition("/")
    account, _, _, region = registry.split(".")[:4]
    return cdk.Stack.of(scope).format_arn(
        service="ecr",
        account=account,
        region=region,
        resource="repository",
        resource_name=path.partition("@")[0].rsplit(":", 1)[0],
    )


class EndpointExecutionRole(Construct):
    """The role every SageMaker model of the BU runs as. It may pull the LMI image and manage
    VPC ENIs; ``grant_endpoint`` adds one endpoint's model prefix, capture prefix and logs.

    Needs a stack with an explicit account and region (every BU stack has one): the policy
    resources are then literal ARNs, and each wildcard finding is acknowledged by its text.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        image_uri: str,
        vpc_id: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = service_roles.service_role(
            self,
            "Role",
            service=service_roles.SAGEMAKER,
            role_name=role_name,
            description="SageMaker LMI endpoints: read model prefixes, write data capture",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PullLmiImage",
                actions=list(service_roles.ECR_PULL_ACTIONS),
                resources=[image_repository_arn(self, image_uri)],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrTokenAndVpcDescribe",
                actions=["ecr:GetAuthorizationToken", *vpc_enis.DESCRIBE_ACTIONS],
                resources=["*"],  # see the acknowledgement below
            )
        )
        # ENIs do not exist yet; the condition pins them to this BU's VPC, so the role cannot
        # touch another BU's interfaces in a shared account.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EndpointEnisInThisVpc",
                actions=list(vpc_enis.MANAGE_ACTIONS),
                resources=["*"],
                conditions={
                    "ArnEquals": {
                        "ec2:Vpc": stack.format_arn(
                            service="ec2", resource="vpc", resource_name=vpc_id
                        )
                    }
                },
            )
        )
        self.policy = self.role.node.find_child("DefaultPolicy")
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                self.policy,
                f"{pack}-IAMNoInlinePolicy",
                "The endpoint role's own grants (model prefixes, capture prefixes, endpoint log "
                "groups, the LMI image); an inline policy cannot be attached to another principal.",
            )
        self._wildcard(
            "*",
            "ecr:GetAuthorizationToken and the EC2 Describe calls have no resource-level "
            "permissions; SageMaker creates the VPC ENIs before their IDs exist, pinned to this "
            "BU's VPC by the ec2:Vpc condition.",
        )

    def grant_endpoint(
        self, *, endpoint_name: str, model: ModelSource, capture: Capture | None
    ) -> None:
        """Read exactly `model`'s prefix, write exactly `capture`'s, log to the endpoint's group."""
        stack = cdk.Stack.of(self)
        objects = stack.format_arn(
            service="s3", region="", account="", resource=model.bucket_name,
            resource_name=f"{model.prefix}*",
        )  # fmt: skip
        bucket = stack.format_arn(service="s3", region="", account="", resource=model.bucket_name)
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects]))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket],
                conditions={"StringLike": {"s3:prefix": [f"{model.prefix}*"]}},
            )
        )
        model.key.grant_decrypt(self.role)
        self._wildcard(objects, f"the objects of {endpoint_name}'s model prefix, read only")
        if capture is not None:
            captured = stack.format_arn(
                service="s3", region="", account="", resource=capture.bucket_name,
                resource_name=f"{capture.prefix}*",
            )  # fmt: skip
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:PutObject"], resources=[captured])
            )
            capture.key.grant(self.role, "kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt")
            self._wildcard(captured, f"the capture files SageMaker writes for {endpoint_name}")
        group = stack.format_arn(
            service="logs", resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )  # fmt: skip
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"], resources=[group]
            )
        )
        streams = f"{group}:log-stream:*"
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[streams]
            )
        )
        self._wildcard(streams, f"the log streams of {endpoint_name}'s own log group")

    def _wildcard(self, resource: str, reason: str) -> None:
        if cdk.Token.is_unresolved(resource):
            raise ValueError("EndpointExecutionRole needs a stack with explicit account/region")
        acknowledge(
            self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", f"Scoped wildcard: {reason}"
        )


class LmiEndpoint(Construct):
    """One LMI model served on a SageMaker real-time endpoint inside the BU's VPC.

    The model is uncompressed S3 data (`ModelDataSource`, `CompressionType: None`): SageMaker
    copies the prefix to /opt/ml/model before the container starts, so LMI loads from disk and
    the container can run with network isolation (no S3, no Hugging Face Hub from inside it).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        image_uri: str,
        environment: Mapping[str, str],
        instance_type: str,
        model: ModelSource,
        role: EndpointExecutionRole,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        capture: Capture | None,
        volume_key: kms.IKey | None,
        initial_instance_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoint_name = endpoint_name
        self.security_group = closed_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"SageMaker endpoint {endpoint_name}: no ingress, HTTPS out only",
        )
        # The container itself is network-isolated.
        allow_https_to_s3(
            self.security_group, "HTTPS to S3 (gateway endpoint) and the interface endpoints"
        )
        role.grant_endpoint(endpoint_name=endpoint_name, model=model, capture=capture)
        selected = vpc.select_subnets(
            subnet_type=subnets.subnet_type, subnet_group_name=subnets.subnet_group_name
        )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role.role_arn,
            enable_network_isolation=True,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                environment=dict(environment),
                model_data_source=sagemaker.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                        s3_uri=model.uri,
                        s3_data_type="S3Prefix",
                        compression_type="None",
                    )
                ),
            ),
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=[self.security_group.security_group_id],
                subnets=selected.subnet_ids,
            ),
        )
        # The model must not start before its role may read the prefix and pull the image.
        self.model.node.add_dependency(role.policy)
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=self.model.attr_model_name,
                    instance_type=instance_type,
                    initial_instance_count=initial_instance_count,
                    model_data_download_timeout_in_seconds=MODEL_DOWNLOAD_TIMEOUT_S,
                    container_startup_health_check_timeout_in_seconds=STARTUP_HEALTH_CHECK_TIMEOUT_S,
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                    ),
                )
            ],
            kms_key_id=volume_key.key_arn if volume_key is not None else None,
            data_capture_config=_data_capture(capture) if capture is not None else None,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        if volume_key is None:
            for pack in COMPLIANCE_PACKS:
                acknowledge(
                    self.endpoint_config,
                    f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured",
                    f"{instance_type} has local NVMe instance storage, encrypted by the "
                    "instance's hardware module; SageMaker refuses a KmsKeyId for such types.",
                )

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint.attr_endpoint_name}/variant/{VARIANT}"

    def metric(self, name: str, statistic: str, period: cdk.Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": VARIANT},
            statistic=statistic,
            period=period,
        )


def _data_capture(capture: Capture) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty:
    return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
        enable_capture=True,
        initial_sampling_percentage=capture.sampling_percent,
        destination_s3_uri=capture.uri,
        kms_key_id=capture.key.key_arn,
        capture_options=[
            sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
            sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
        ],
        capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
            json_content_types=["application/json"]
        ),
    )


class EndpointAutoscaling(Construct):
    """Instance count between min and max, tracking concurrent requests per model copy.

    The long scale-in cooldown keeps a lull between bursts from removing an instance that takes
    many minutes to come back (download, load, warm-up); scale-out is not held back by it.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint: LmiEndpoint, scaling: Scaling
    ) -> None:
        super().__init__(scope, construct_id)
        self.target = appscaling.ScalableTarget(
            self,
            "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=endpoint.resource_id,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=scaling.min_capacity,
            max_capacity=scaling.max_capacity,
        )
        self.policy = self.target.scale_to_track_metric(
            "ConcurrentRequests",
            target_value=scaling.target_concurrent_requests,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION,
            scale_in_cooldown=cdk.Duration.seconds(scaling.scale_in_cooldown_seconds),
            scale_out_cooldown=cdk.Duration.seconds(scaling.scale_out_cooldown_seconds),
        )


class AlarmTopic(Construct):
    """An SNS topic for the endpoint alarms, encrypted with its own key, TLS-only.

    CloudWatch publishes the alarm notifications and must use the topic's key to do so (SNS
    developer guide, "Key management": compatibility between event sources from AWS services
    and encrypted topics). The key admits it only for alarms of this account and region
    (``aws:SourceAccount``, ``aws:SourceArn``): the confused-deputy keys CloudWatch sets on
    that call, as AWS's modern-data-architecture-accelerator also conditions this grant
    (``cloudwatch-constructs/lib/alarm-topic-utils.ts``). The alarms carry CloudFormation-
    generated names, so ``aws:SourceArn`` names every alarm of the account and region rather
    than this BU's; naming the alarms would narrow it.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, topic_name: str, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = service_encrypted_topic(
            self,
            topic_name=topic_name,
            key=key,
            service="cloudwatch.amazonaws.com",
            key_actions=("kms:Decrypt", "kms:GenerateDataKey"),
            sid="CloudWatchAlarmsOfThisAccount",
            conditions={
                "StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account},
                "ArnLike": {"aws:SourceArn": alarm_arns(self)},
            },
        )


def alarm_arns(scope: Construct) -> str:
    """Every CloudWatch alarm of the stack's account and region, as an ARN pattern."""
    return cdk.Stack.of(scope).format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name="*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


class EndpointAlarms(Construct):
    """Model latency, overhead latency and 4xx/5xx error rates, each notifying the topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: LmiEndpoint,
        thresholds: AlarmThresholds,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        t = thresholds
        period = cdk.Duration.seconds(t.period_seconds)
        invocations = endpoint.metric("Invocations", "Sum", period)

        def rate(name: str) -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                using_metrics={
                    "errors": endpoint.metric(name, "Sum", period),
                    "invocations": invocations,
                },
                label=f"{name} rate (%)",
                period=period,
            )

        # ModelLatency and OverheadLatency are reported in microseconds.
        checks: Sequence[tuple[str, cloudwatch.IMetric, float, str]] = [
            (
                "ModelLatency",
                endpoint.metric("ModelLatency", "p90", period),
                t.model_latency_p90_ms * 1000,
                f"p90 model latency over {t.model_latency_p90_ms} ms",
            ),
            (
                "OverheadLatency",
                endpoint.metric("OverheadLatency", "p90", period),
                t.overhead_latency_p90_ms * 1000,
                f"p90 SageMaker overhead latency over {t.overhead_latency_p90_ms} ms",
            ),
            (
                "Invocation4XXErrors",
                rate("Invocation4XXErrors"),
                t.error_4xx_rate_percent,
                f"4xx error rate over {t.error_4xx_rate_percent:g} %",
            ),
            (
                "Invocation5XXErrors",
                rate("Invocation5XXErrors"),
                t.error_5xx_rate_percent,
                f"5xx error rate over {t.error_5xx_rate_percent:g} %",
            ),
        ]
        action = cw_actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for name, metric, threshold, what in checks:
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_description=f"{endpoint.endpoint_name}: {what}",
                metric=metric,
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=t.evaluation_periods,
                datapoints_to_alarm=t.datapoints_to_alarm,
                # No traffic is not an outage; the endpoint's own status covers that.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[name] = alarm
