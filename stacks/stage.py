"""One business unit = one Stage, so `cdk deploy '<bu>/*'` deploys exactly that BU."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config.schema import BusinessUnitConfig
from stacks._common import stage_tags
from stacks.endpoints_stack import EndpointsStack
from stacks.governance_stack import GovernanceStack
from stacks.hyperpod_stack import HyperPodStack
from stacks.mlflow_stack import MlflowStack
from stacks.network_stack import NetworkStack
from stacks.pipeline_stack import PipelineStack
from stacks.security_stack import SecurityStack
from stacks.studio_stack import StudioStack
from stacks.training_stack import TrainingStack


class BusinessUnitStage(cdk.Stage):
    """The BU's stacks, split by lifecycle; later issues add Studio, HyperPod, MLflow and
    endpoint stacks here when the BU's config has that section."""

    def __init__(self, scope: Construct, *, config: BusinessUnitConfig, **kwargs: Any) -> None:
        env = cdk.Environment(account=config.account, region=config.region)
        super().__init__(scope, config.name, env=env, **kwargs)
        protect = config.removal_policy == "retain"
        common: dict[str, Any] = {"config": config, "termination_protection": protect}
        self.network = NetworkStack(
            self,
            "network",
            stack_name=config.naming.stack("network"),
            description=f"{config.name}: VPC, flow logs and VPC endpoints",
            **common,
        )
        self.security = SecurityStack(
            self,
            "security",
            stack_name=config.naming.stack("security"),
            description=f"{config.name}: KMS keys and S3 buckets",
            **common,
        )
        # Each optional section adds its stack only when the BU's config has the section, and
        # stacks get what they need as typed arguments (never a name lookup). MLflow comes
        # first: Studio's, HyperPod's and training's roles get their access through it
        # (platform_constructs.access.MlflowAccess).
        self.mlflow: MlflowStack | None = None
        if config.mlflow is not None:
            self.mlflow = MlflowStack(
                self,
                "mlflow",
                stack_name=config.naming.stack("mlflow"),
                description=f"{config.name}: managed MLflow ({config.mlflow.kind})",
                security=self.security,
                **common,
            )
        self.studio: StudioStack | None = None
        if config.studio is not None:
            self.studio = StudioStack(
                self,
                "studio",
                stack_name=config.naming.stack("studio"),
                description=f"{config.name}: Studio domain, execution role, users and spaces",
                network=self.network,
                security=self.security,
                mlflow=self.mlflow,
                **common,
            )
        self.hyperpod: HyperPodStack | None = None
        if config.hyperpod is not None:
            self.hyperpod = HyperPodStack(
                self,
                "hyperpod",
                stack_name=config.naming.stack("hyperpod"),
                description=f"{config.name}: HyperPod cluster on private EKS, teams and quotas",
                network=self.network,
                security=self.security,
                mlflow=self.mlflow,
                **common,
            )
        # Every BU gets one: the image repository and managed-job role are useful without any
        # optional section. The MLflow stack grants its role access.
        self.training = TrainingStack(
            self,
            "training",
            stack_name=config.naming.stack("training"),
            description=f"{config.name}: training image, managed-job role and parameters",
            network=self.network,
            security=self.security,
            mlflow=self.mlflow,
            **common,
        )
        self.endpoints: EndpointsStack | None = None
        if config.endpoints is not None:
            self.endpoints = EndpointsStack(
                self,
                "endpoints",
                stack_name=config.naming.stack("endpoints"),
                description=f"{config.name}: LMI endpoints, autoscaling and alarms",
                network=self.network,
                security=self.security,
                **common,
            )
        # After the stacks whose resources it names: the training-job role it passes, the
        # endpoint it updates (and the endpoint role it lets read candidates), the HyperPod
        # cluster it submits to (added by the stack itself) and MLflow.
        self.pipeline: PipelineStack | None = None
        if config.pipeline is not None:
            self.pipeline = PipelineStack(
                self,
                "pipeline",
                stack_name=config.naming.stack("pipeline"),
                description=f"{config.name}: model pipeline on Amazon MWAA (Airflow "
                f"{config.pipeline.airflow_version})",
                network=self.network,
                security=self.security,
                mlflow=self.mlflow,
                hyperpod=self.hyperpod,
                **common,
            )
            for needed in (self.training, self.endpoints):
                if needed is not None:
                    self.pipeline.add_stack_dependency(needed)
        # Last: the budget action names the Studio, training and HyperPod roles it stops, and
        # the dashboard the endpoints; both by derived name, so they must exist first.
        self.governance: GovernanceStack | None = None
        if config.governance is not None:
            self.governance = GovernanceStack(
                self,
                "governance",
                stack_name=config.naming.stack("governance"),
                description=f"{config.name}: budget, alerts, budget action and dashboard",
                **common,
            )
            for stack in (
                self.studio,
                self.hyperpod,
                self.training,
                self.endpoints,
                self.pipeline,
            ):
                if stack is not None:
                    self.governance.add_stack_dependency(stack)
        for key, value in stage_tags(config).items():
            cdk.Tags.of(self).add(key, value)
