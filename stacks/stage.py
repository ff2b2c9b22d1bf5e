"""One business unit = one Stage, so `cdk deploy '<bu>/*'` deploys exactly that BU."""

from collections.abc import Callable
from typing import Any, TypeVar

import aws_cdk as cdk
from constructs import Construct

from config.schema import BusinessUnitConfig
from stacks._common import stage_tags
from stacks.endpoints_stack import EndpointsStack
from stacks.foundation import Foundation
from stacks.governance_stack import GovernanceStack
from stacks.hyperpod_stack import HyperPodStack
from stacks.mlflow_stack import MlflowStack
from stacks.network_stack import NetworkStack
from stacks.pipeline_stack import PipelineStack
from stacks.security_stack import SecurityStack
from stacks.studio_stack import StudioStack
from stacks.training_stack import TrainingStack

Section = TypeVar("Section")
BuiltStack = TypeVar("BuiltStack", bound=cdk.Stack)


def _if_set(section: Section | None, build: Callable[[Section], BuiltStack]) -> BuiltStack | None:
    """The stack ``build`` makes of an optional config section, or None without the section."""
    return None if section is None else build(section)


def _after(later: cdk.Stack | None, *earlier: cdk.Stack | None) -> None:
    """``later`` (when the BU has it) deploys after each stack of ``earlier`` the BU has."""
    if later is not None:
        for stack in earlier:
            if stack is not None:
                later.add_stack_dependency(stack)


class BusinessUnitStage(cdk.Stage):
    """The BU's stacks, split by lifecycle: network, security and training always, and one stack
    per optional section (MLflow, Studio, HyperPod, endpoints, pipeline, governance) the BU's
    config has."""

    def __init__(self, scope: Construct, *, config: BusinessUnitConfig, **kwargs: Any) -> None:
        env = cdk.Environment(account=config.account, region=config.region)
        super().__init__(scope, config.name, env=env, **kwargs)
        # Each stack names and describes itself (stacks._common.BuStack). Each optional section
        # adds its stack only when the BU's config has the section, and is passed to it typed;
        # stacks get what they need as typed arguments (never a name lookup).
        self.network = NetworkStack(self, config=config)
        self.security = SecurityStack(self, config=config)
        # MLflow comes first: Studio's, HyperPod's and training's roles get their access through
        # it (platform_constructs.access.MlflowAccess).
        self.mlflow = _if_set(
            config.mlflow,
            lambda s: MlflowStack(self, config=config, mlflow=s, security=self.security),
        )
        base = Foundation(config, self.network, self.security, self.mlflow)
        self.studio = _if_set(config.studio, lambda s: StudioStack(self, base=base, studio=s))
        self.hyperpod = _if_set(
            config.hyperpod, lambda s: HyperPodStack(self, base=base, hyperpod=s)
        )
        # Every BU gets one: the image repository and managed-job role are useful without any
        # optional section. The MLflow stack grants its role access.
        self.training = TrainingStack(self, base=base)
        self.endpoints = _if_set(
            config.endpoints, lambda s: EndpointsStack(self, base=base, endpoints=s)
        )
        # After the stacks whose resources it names: the training-job role it passes, the
        # endpoint it updates (and the endpoint role it lets read candidates), the HyperPod
        # cluster it submits to (added by the stack itself) and MLflow.
        self.pipeline = _if_set(
            config.pipeline,
            lambda s: PipelineStack(self, base=base, pipeline=s, hyperpod=self.hyperpod),
        )
        _after(self.pipeline, self.training, self.endpoints)
        # Last: the budget action names the Studio, training and HyperPod roles it stops, and
        # the dashboard the endpoints; both by derived name, so they must exist first.
        self.governance = _if_set(
            config.governance, lambda s: GovernanceStack(self, config=config, governance=s)
        )
        _after(
            self.governance,
            self.studio,
            self.hyperpod,
            self.training,
            self.endpoints,
            self.pipeline,
        )
        for key, value in stage_tags(config).items():
            cdk.Tags.of(self).add(key, value)
