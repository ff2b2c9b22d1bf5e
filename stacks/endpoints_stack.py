"""Endpoints stack: the BU's LMI endpoints on SageMaker real-time hosting (changes often).

Every endpoint is its config's `Endpoint.served` translation (the one `python -m
inference.hyperpod` deploys from too): the container environment is `inference.serving`'s output
and the image `inference.serving.image_uri`'s, so the stack states no LMI option or image URI of
its own. HyperPod-target endpoints are not CloudFormation resources: the stack
only prints the `python -m inference.hyperpod apply` command that creates them on the cluster.
"""

import aws_cdk as cdk
from constructs import Construct

from config.endpoints import Endpoint, Endpoints
from inference.serving import image_uri
from platform_constructs.endpoints import (
    AlarmThresholds,
    AlarmTopic,
    Capture,
    EndpointAlarms,
    EndpointAutoscaling,
    EndpointExecutionRole,
    LmiEndpoint,
    ModelSource,
    Scaling,
)
from stacks._common import BuStack, spec_of
from stacks.foundation import Foundation
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "LMI endpoints, autoscaling and alarms"


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def smoke_command(endpoint_name: str, region: str) -> str:
    return f"python -m inference.smoke --endpoint {endpoint_name} --region {region}"


class EndpointsStack(BuStack):
    def __init__(self, stage: Construct, *, base: Foundation, endpoints: Endpoints) -> None:
        super().__init__(stage, "endpoints", config=base.config, description=DESCRIPTION)
        config, names, network, security = self.config, self.names, base.network, base.security
        image = image_uri(config.region)  # the one every endpoint's `served()` names too
        self.alarm_key = self.purpose_key(
            "AlarmsKey", "endpoint-alarms", "endpoint alarm notifications (SNS)"
        ).key
        self.alarm_topic = AlarmTopic(
            self, "Alarms", topic_name=names.resource("endpoint-alarms"), key=self.alarm_key
        ).topic
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        self.role = EndpointExecutionRole(
            self,
            "ExecutionRole",
            role_name=names.role("endpoint-execution"),
            image_uri=image,
            vpc_id=network.vpc.vpc_id,
        )
        self.endpoints: dict[str, LmiEndpoint] = {}
        for item in endpoints.on("sagemaker"):
            self._sagemaker_endpoint(item, network, security)
        for item in endpoints.on("hyperpod"):
            cdk.CfnOutput(
                self,
                f"{_construct_id(item.name)}HyperPodApply",
                description=f"create {names.resource(item.name)} on the HyperPod cluster",
                value=f"python -m inference.hyperpod apply --config config/{config.name}.yaml "
                f"--endpoint {item.name}",
            )

    def _sagemaker_endpoint(
        self, item: Endpoint, network: NetworkStack, security: SecurityStack
    ) -> None:
        names = self.names
        served = item.served(names)  # the translation `python -m inference.hyperpod` uses too
        endpoint_name, serving = served.endpoint_name, served.serving
        cid = _construct_id(item.name)
        capture = None
        if item.data_capture.enabled:
            capture = Capture(
                bucket_name=names.bucket("inference-capture"),
                key=security.keys["inference-capture"],
                prefix=f"{endpoint_name}/",
                sampling_percent=item.data_capture.sampling_percent,
            )
        endpoint = LmiEndpoint(
            self,
            cid,
            endpoint_name=endpoint_name,
            image_uri=served.image,
            environment=serving.to_environment(),
            instance_type=serving.instance_type,
            model=ModelSource(
                bucket_name=served.bucket,
                prefix=served.model_prefix,
                key=security.keys["models"],
            ),
            role=self.role,
            vpc=network.vpc,
            subnets=network.private_subnets,
            capture=capture,
            # Types with local NVMe encrypt it in hardware and refuse a volume key.
            volume_key=None if serving.gpu_shape.instance_storage else security.keys["models"],
            initial_instance_count=served.replicas,
        )
        EndpointAutoscaling(
            self,
            f"{cid}Scaling",
            endpoint=endpoint,
            scaling=spec_of(
                Scaling, item.autoscaling, target_concurrent_requests=item.target_concurrency
            ),
        )
        EndpointAlarms(
            self,
            f"{cid}Alarms",
            endpoint=endpoint,
            thresholds=spec_of(AlarmThresholds, item.alarms),
            topic=self.alarm_topic,
        )
        cdk.CfnOutput(self, f"{cid}EndpointName", value=endpoint_name)
        cdk.CfnOutput(
            self,
            f"{cid}SmokeCommand",
            description="run after cdk deploy, once the endpoint is InService",
            value=smoke_command(endpoint_name, self.config.region),
        )
        self.endpoints[item.name] = endpoint
