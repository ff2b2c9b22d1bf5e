"""One business unit = one Stage, so `cdk deploy '<bu>/*'` deploys exactly that BU."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from config.schema import BusinessUnitConfig
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack


class BusinessUnitStage(cdk.Stage):
    """The BU's stacks, split by lifecycle; later issues add Studio, HyperPod, MLflow and
    endpoint stacks here when the BU's config has that section."""

    def __init__(self, scope: Construct, *, config: BusinessUnitConfig, **kwargs: Any) -> None:
        env = cdk.Environment(account=config.account, region=config.region)
        super().__init__(scope, config.name, env=env, **kwargs)
        names = config.naming
        protect = config.removal_policy == "retain"
        self.network = NetworkStack(
            self,
            "network",
            config=config,
            stack_name=names.stack("network"),
            termination_protection=protect,
            description=f"{config.name}: VPC, flow logs and VPC endpoints",
        )
        self.security = SecurityStack(
            self,
            "security",
            config=config,
            stack_name=names.stack("security"),
            termination_protection=protect,
            description=f"{config.name}: KMS keys and S3 buckets",
        )
        for key, value in config.tags.as_dict().items():
            cdk.Tags.of(self).add(key, value)
