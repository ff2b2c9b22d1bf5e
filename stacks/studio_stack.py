"""Studio stack: the BU's SageMaker Studio domain, its execution role, who may sign in and
their spaces (changes whenever a team changes; the network, keys and MLflow stay put)."""

import aws_cdk as cdk
from constructs import Construct

from config.studio import SPACE_SUFFIXES, AppDefaults, Studio
from core.naming import BU_TAG_KEY
from platform_constructs.gates import COMPLIANCE_PACKS, acknowledge
from platform_constructs.grant_findings import acknowledge_bucket_grant
from platform_constructs.studio_domain import IdeSettings, StudioDomain
from platform_constructs.studio_people import (
    ApplicationAssignment,
    SpaceSpec,
    StudioSpace,
    StudioUserProfile,
)
from platform_constructs.studio_role import StudioExecutionRole
from stacks._common import BuStack, log_retention, spec_of
from stacks.foundation import Foundation

# The stack's description (after "<bu>: "), as CloudFormation shows it.
DESCRIPTION = "Studio domain, execution role, users and spaces"

APP_TYPES = {"jupyterlab": "JupyterLab", "code_editor": "CodeEditor"}


def _ide(app: AppDefaults) -> IdeSettings:
    return spec_of(IdeSettings, app)


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


class StudioStack(BuStack):
    def __init__(self, stage: Construct, *, base: Foundation, studio: Studio) -> None:
        super().__init__(stage, "studio", config=base.config, description=DESCRIPTION)
        config, names, network, security = self.config, self.names, base.network, base.security
        if studio.identity_center is None:  # the schema refuses it; this narrows the type
            raise ValueError(f"{config.name}: a Studio domain needs an identity_center")
        policy = self.removal_policy
        studio_key = self.purpose_key(
            "StudioKey", "studio", "Studio home EFS, space EBS volumes, Studio logs"
        )
        studio_key.admit_log_group(names.log_group("studio"))
        self.key = studio_key.key

        # One execution role for the domain, its profiles and spaces.
        self.execution = StudioExecutionRole(
            self, "ExecutionRole", role_name=names.role("studio-execution")
        )
        role = self.execution.role
        buckets = self.imported_buckets(security.keys, "data", "models", "checkpoints")
        buckets["data"].grant_read_write(role)
        buckets["models"].grant_read_write(role)
        buckets["checkpoints"].grant_read(role)
        if base.mlflow is not None:
            base.mlflow.grant_access(role)
            base.mlflow.grant_ui(role)

        self.studio = StudioDomain(
            self,
            "Studio",
            domain_name=names.resource("studio"),
            vpc=network.vpc,
            subnets=network.private_subnets,
            vpc_cidr=str(config.network.cidr),
            encryption_key=self.key,
            execution_role=role,
            jupyterlab=_ide(studio.jupyterlab),
            code_editor=_ide(studio.code_editor),
            max_ebs_size_gb=studio.max_ebs_size_gb,
            trusted_identity_propagation=studio.trusted_identity_propagation,
            log_group_name=names.log_group("studio"),
            log_retention=log_retention(config.network.flow_log_retention_days),
            removal_policy=policy,
        )
        domain = self.studio.domain
        self.execution.allow_domain(domain)
        self.execution.allow_bu_workloads(
            hyperpod_tag=(BU_TAG_KEY, config.name), endpoint_prefix=names.resource("")
        )
        self.execution.acknowledge_wildcards()
        grants = role.node.find_child("DefaultPolicy")
        for purpose, write in (("data", True), ("models", True), ("checkpoints", False)):
            acknowledge_bucket_grant(
                grants,
                bucket=buckets[purpose],
                write=write,
                why=f"Studio users {'read and write' if write else 'read'} the BU's {purpose}.",
            )
        for pack in COMPLIANCE_PACKS:
            acknowledge(
                grants,
                f"{pack}-IAMNoInlinePolicy",
                "CDK's bucket, key and MLflow grants to the Studio role (this BU's data and "
                "models buckets, its checkpoints read-only, its MLflow); inline by design.",
            )
        app_arn = domain.attr_single_sign_on_application_arn

        # People: a profile and an assignment each, private JupyterLab and Code Editor spaces.
        self.profiles: dict[str, StudioUserProfile] = {}
        self.spaces: dict[str, StudioSpace] = {}
        for user in studio.users:
            profile = StudioUserProfile(
                self,
                f"User{_construct_id(user.profile)}",
                domain_id=self.studio.domain_id,
                application_arn=app_arn,
                profile_name=user.profile,
                user_name=user.user_name,
                user_id=user.user_id,
                removal_policy=policy,
            )
            # Profiles after the TIP switch: UpdateDomain must not race profile creation.
            profile.node.add_dependency(self.studio.trusted_identity_propagation)
            self.profiles[user.user_name] = profile
            for kind, suffix in SPACE_SUFFIXES.items():
                app = studio.jupyterlab if kind == "jupyterlab" else studio.code_editor
                self._space(
                    profile,
                    f"{user.profile}-{suffix}",
                    kind,
                    shared=False,
                    remote_access=studio.remote_access,
                    instance_type=app.instance_type,
                    ebs_size_gb=app.ebs_size_gb,
                )
        for space in studio.shared_spaces:
            self._space(
                self.profiles[space.owner],
                space.name,
                space.app,
                shared=True,
                remote_access=space.remote_access,
                instance_type=studio.instance_type_of(space),
                ebs_size_gb=studio.ebs_size_of(space),
            )
        for group in studio.groups:
            ApplicationAssignment(
                self,
                f"Group{_construct_id(group.name)}",
                application_arn=app_arn,
                principal_id=group.group_id,
                principal_type="GROUP",
            )

        center = studio.identity_center
        outputs = {
            "DomainId": (self.studio.domain_id, "Studio domain ID"),
            "DomainUrl": (domain.attr_url, "Studio URL (sign in through the access portal)"),
            "AccessPortalUrl": (center.portal_url, "IAM Identity Center access portal"),
            "IdentityCenterInstanceArn": (center.instance_arn, "Identity Center instance"),
            "IdentityCenterApplicationArn": (app_arn, "The domain's Identity Center application"),
            "ExecutionRoleArn": (role.role_arn, "Studio execution role"),
        }
        for output_id, (value, description) in outputs.items():
            cdk.CfnOutput(self, output_id, value=value, description=description)

    def _space(
        self,
        owner: StudioUserProfile,
        name: str,
        kind: str,
        *,
        shared: bool,
        remote_access: bool,
        instance_type: str,
        ebs_size_gb: int,
    ) -> None:
        """One space of ``owner``: private (``shared=False``) or open to the whole domain."""
        spec = SpaceSpec(
            name=name,
            app=APP_TYPES[kind],  # type: ignore[arg-type]
            instance_type=instance_type,
            ebs_size_gb=ebs_size_gb,
            owner_profile=owner.profile_name,
            shared=shared,
            remote_access=remote_access,
        )
        self.spaces[name] = StudioSpace(
            self,
            f"Space{_construct_id(name)}",
            domain_id=self.studio.domain_id,
            spec=spec,
            owner=owner.profile,
            removal_policy=self.removal_policy,
        )
