"""What the stacks after the first ones build on (a module of its own: the network and
security stacks import stacks._common, so it cannot name them)."""

from dataclasses import dataclass

from config.schema import BusinessUnitConfig
from platform_constructs.access import MlflowUiAccess
from stacks.network_stack import NetworkStack
from stacks.security_stack import SecurityStack


@dataclass(frozen=True)
class Foundation:
    """What the stacks after the first ones build on: the BU's config, its network and security
    stacks, and its MLflow when the config has an ``mlflow`` section (the MLflow stack)."""

    config: BusinessUnitConfig
    network: NetworkStack
    security: SecurityStack
    mlflow: MlflowUiAccess | None
