"""One business unit = one Stage, so `cdk deploy '<bu>/*'` deploys exactly that BU."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config.schema import BusinessUnitConfig
from stacks.endpoints_stack import EndpointsStack
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack


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
        #   training  -> takes network + security + the MlflowAccess (or None)
        #   endpoints -> takes network + security (+ the hyperpod stack for its HyperPod target)
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
        for key, value in config.tags.as_dict().items():
            cdk.Tags.of(self).add(key, value)
