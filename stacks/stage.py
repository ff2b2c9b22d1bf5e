"""One business unit = one Stage, so `cdk deploy '<bu>/*'` deploys exactly that BU."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config.naming import BU_TAG_KEY
from config.schema import BusinessUnitConfig
from stacks.mlflow_stack import MlflowStack
from stacks.network_stack import NetworkStack
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
        # Each later section adds its stack here, only when the BU's config has the section,
        # and passes the constructs it needs as typed arguments (never a name lookup):
        #   mlflow    -> takes network + security; exposes MlflowAccess (platform_constructs.access)
        #   studio    -> takes network + security + the MlflowAccess (or None)
        #   hyperpod  -> takes network + security + the MlflowAccess (or None)
        #   endpoints -> takes network + security (+ the hyperpod stack for its HyperPod target)
        # MLflow first: Studio (and later HyperPod and training) get access through it.
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
        for key, value in config.tags.as_dict().items():
            cdk.Tags.of(self).add(key, value)
        # The BU's name on every resource: IAM conditions scope by it where an ARN cannot.
        cdk.Tags.of(self).add(BU_TAG_KEY, config.name)
