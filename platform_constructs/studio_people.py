"""Who may open a Studio domain and where they work: Identity Center application assignments,
user profiles bound to Identity Center user names, and private or shared spaces."""

from dataclasses import dataclass
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sso as sso
from constructs import Construct

SpaceApp = Literal["JupyterLab", "CodeEditor"]


class ApplicationAssignment(Construct):
    """Admit one Identity Center user or group to the domain's Identity Center application."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        application_arn: str,
        principal_id: str,
        principal_type: Literal["USER", "GROUP"],
    ) -> None:
        super().__init__(scope, construct_id)
        self.assignment = sso.CfnApplicationAssignment(
            self,
            "Assignment",
            application_arn=application_arn,
            principal_id=principal_id,
            principal_type=principal_type,
        )


class StudioUserProfile(Construct):
    """A person's user profile (bound to their Identity Center user name) and their admission
    to the domain's application. Settings come from the domain's defaults.

    The profile depends on the admission: with Identity Center authentication the user must be
    assigned to the domain's application before CloudFormation can create their profile (the
    note on ``AWS::SageMaker::UserProfile`` in the CloudFormation template reference), and on
    delete the profile goes before the admission.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_id: str,
        application_arn: str,
        profile_name: str,
        user_name: str,
        user_id: str,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.profile_name = profile_name
        self.assignment = ApplicationAssignment(
            self,
            "Assignment",
            application_arn=application_arn,
            principal_id=user_id,
            principal_type="USER",
        ).assignment
        self.profile = sagemaker.CfnUserProfile(
            self,
            "Profile",
            domain_id=domain_id,
            user_profile_name=profile_name,
            single_sign_on_user_identifier="UserName",
            single_sign_on_user_value=user_name,
        )
        self.profile.apply_removal_policy(removal_policy)
        self.profile.add_dependency(self.assignment)


@dataclass(frozen=True)
class SpaceSpec:
    """One space: its app, instance, disk, sharing and remote IDE access."""

    name: str
    app: SpaceApp
    instance_type: str
    ebs_size_gb: int
    owner_profile: str
    shared: bool
    remote_access: bool
    display_name: str | None = None


class StudioSpace(Construct):
    """A JupyterLab or Code Editor space owned by one profile (private: only the owner sees it;
    shared: every member of the domain can open it)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_id: str,
        spec: SpaceSpec,
        owner: sagemaker.CfnUserProfile,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        _space = sagemaker.CfnSpace
        resources = _space.ResourceSpecProperty(instance_type=spec.instance_type)
        self.space = _space(
            self,
            "Space",
            domain_id=domain_id,
            space_name=spec.name,
            space_display_name=spec.display_name or spec.name,
            ownership_settings=_space.OwnershipSettingsProperty(
                owner_user_profile_name=spec.owner_profile
            ),
            space_sharing_settings=_space.SpaceSharingSettingsProperty(
                sharing_type="Shared" if spec.shared else "Private"
            ),
            space_settings=_space.SpaceSettingsProperty(
                app_type=spec.app,
                jupyter_lab_app_settings=(
                    _space.SpaceJupyterLabAppSettingsProperty(default_resource_spec=resources)
                    if spec.app == "JupyterLab"
                    else None
                ),
                code_editor_app_settings=(
                    _space.SpaceCodeEditorAppSettingsProperty(default_resource_spec=resources)
                    if spec.app == "CodeEditor"
                    else None
                ),
                space_storage_settings=_space.SpaceStorageSettingsProperty(
                    ebs_storage_settings=_space.EbsStorageSettingsProperty(
                        ebs_volume_size_in_gb=spec.ebs_size_gb
                    )
                ),
                remote_access="ENABLED" if spec.remote_access else "DISABLED",
            ),
        )
        # The owner's profile must exist first (and outlive the space on delete).
        self.space.node.add_dependency(owner)
        self.space.apply_removal_policy(removal_policy)
