"""A SageMaker Studio domain signed into through IAM Identity Center, reachable only from the
BU's VPC, with trusted identity propagation switched on by a custom resource.

``AWS::SageMaker::Domain`` has no property for trusted identity propagation (TIP); the API has
``DomainSettingsForUpdate.TrustedIdentityPropagationSettings``, so an ``AwsCustomResource`` calls
``UpdateDomain`` after the domain exists, from a function inside the VPC.
"""

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import custom_resources as cr
from constructs import Construct

from platform_constructs.sdk_calls import sdk_call
from platform_constructs.security_groups import allow_https_to_s3, closed_group

NFS = 2049
# Studio's JupyterLab/Code Editor servers and their kernels talk over these ports inside the
# app security group (SageMaker developer guide, "Connect Studio notebooks in a VPC").
APP_PORTS = ec2.Port.tcp_range(8192, 65535)


@dataclass(frozen=True)
class IdeSettings:
    """Defaults for one IDE app type: instance, disk, idle shutdown."""

    instance_type: str
    ebs_size_gb: int
    idle_timeout_minutes: int
    min_idle_timeout_minutes: int
    max_idle_timeout_minutes: int

    def resource_spec(self) -> sagemaker.CfnDomain.ResourceSpecProperty:
        return sagemaker.CfnDomain.ResourceSpecProperty(instance_type=self.instance_type)

    def lifecycle(self) -> sagemaker.CfnDomain.AppLifecycleManagementProperty:
        """Idle shutdown on, with the user-adjustable range."""
        return sagemaker.CfnDomain.AppLifecycleManagementProperty(
            idle_settings=sagemaker.CfnDomain.IdleSettingsProperty(
                lifecycle_management="ENABLED",
                idle_timeout_in_minutes=self.idle_timeout_minutes,
                min_idle_timeout_in_minutes=self.min_idle_timeout_minutes,
                max_idle_timeout_in_minutes=self.max_idle_timeout_minutes,
            )
        )


class StudioDomain(Construct):
    """The domain, its app security group and the TIP switch.

    The home EFS and the spaces' EBS volumes are encrypted with ``encryption_key``; the domain's
    apps run in ``subnets`` behind ``security_group`` (each other, NFS inside the VPC, HTTPS to
    endpoints). Users sign in through the Identity Center application SageMaker creates for the
    domain (``domain.attr_single_sign_on_application_arn``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        vpc_cidr: str,
        encryption_key: kms.IKey,
        execution_role: iam.IRole,
        jupyterlab: IdeSettings,
        code_editor: IdeSettings,
        max_ebs_size_gb: int,
        trusted_identity_propagation: bool,
        log_group_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = closed_group(
            self,
            "AppSecurityGroup",
            vpc=vpc,
            description="Studio apps: each other, NFS to the home EFS, HTTPS to VPC endpoints",
        )
        sg = self.security_group
        sg.add_ingress_rule(sg, APP_PORTS, "Studio app servers and kernels")
        sg.add_egress_rule(sg, APP_PORTS, "Studio app servers and kernels")
        sg.add_egress_rule(ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(NFS), "NFS to the home EFS")
        allow_https_to_s3(sg, "HTTPS to VPC endpoints and the S3 gateway endpoint")
        _domain = sagemaker.CfnDomain
        storage = _domain.DefaultSpaceStorageSettingsProperty(
            default_ebs_storage_settings=_domain.DefaultEbsStorageSettingsProperty(
                default_ebs_volume_size_in_gb=min(jupyterlab.ebs_size_gb, code_editor.ebs_size_gb),
                maximum_ebs_volume_size_in_gb=max_ebs_size_gb,
            )
        )
        jupyterlab_settings = _domain.JupyterLabAppSettingsProperty(
            default_resource_spec=jupyterlab.resource_spec(),
            app_lifecycle_management=jupyterlab.lifecycle(),
        )
        self.domain = _domain(
            self,
            "Domain",
            domain_name=domain_name,
            auth_mode="SSO",
            app_network_access_type="VpcOnly",
            vpc_id=vpc.vpc_id,
            subnet_ids=_subnet_ids(vpc, subnets),
            kms_key_id=encryption_key.key_arn,
            tag_propagation="ENABLED",
            default_user_settings=_domain.UserSettingsProperty(
                execution_role=execution_role.role_arn,
                security_groups=[sg.security_group_id],
                jupyter_lab_app_settings=jupyterlab_settings,
                code_editor_app_settings=_domain.CodeEditorAppSettingsProperty(
                    default_resource_spec=code_editor.resource_spec(),
                    app_lifecycle_management=code_editor.lifecycle(),
                ),
                space_storage_settings=storage,
                studio_web_portal="ENABLED",
                default_landing_uri="studio::",
            ),
            default_space_settings=_domain.DefaultSpaceSettingsProperty(
                execution_role=execution_role.role_arn,
                security_groups=[sg.security_group_id],
                jupyter_lab_app_settings=jupyterlab_settings,
                space_storage_settings=storage,
            ),
            domain_settings=_domain.DomainSettingsProperty(
                # CloudTrail shows the user-profile name as sts:SourceIdentity of every call
                # made with the execution role (the trust policy allows sts:SetSourceIdentity).
                execution_role_identity_config="USER_PROFILE_NAME",
            ),
        )
        self.domain.apply_removal_policy(removal_policy)
        self.domain_id = self.domain.attr_domain_id
        self.domain_arn = self.domain.attr_domain_arn

        # The TIP switch's function logs here, encrypted with the domain's key (whose owner
        # admits CloudWatch Logs for this log group: PurposeKey.admit_log_group).
        self.log_group = logs.LogGroup(
            self,
            "CustomResourceLogs",
            log_group_name=log_group_name,
            encryption_key=encryption_key,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.trusted_identity_propagation = self._tip_switch(
            enabled=trusted_identity_propagation, vpc=vpc, subnets=subnets
        )

    def _tip_switch(
        self, *, enabled: bool, vpc: ec2.IVpc, subnets: ec2.SubnetSelection
    ) -> cr.AwsCustomResource:
        """``UpdateDomain`` on create and on update (the same call, so a re-run is harmless);
        nothing on delete: the setting goes with the domain."""
        call = cr.AwsSdkCall(
            service="SageMaker",
            action="updateDomain",
            parameters={
                "DomainId": self.domain_id,
                "DomainSettingsForUpdate": {
                    "TrustedIdentityPropagationSettings": {
                        "Status": "ENABLED" if enabled else "DISABLED"
                    }
                },
            },
            physical_resource_id=cr.PhysicalResourceId.of(self.domain_id),
        )
        return sdk_call(
            self,
            "TrustedIdentityPropagation",
            call=call,
            on_create=True,
            statements=[
                iam.PolicyStatement(actions=["sagemaker:UpdateDomain"], resources=[self.domain_arn])
            ],
            permits="sagemaker:UpdateDomain on this domain",
            vpc=vpc,
            subnets=subnets,
            log_group=self.log_group,
        )


def _subnet_ids(vpc: ec2.IVpc, selection: ec2.SubnetSelection) -> list[str]:
    """The IDs of the subnets ``selection`` picks (the network stack hands over a selection)."""
    return vpc.select_subnets(
        subnet_type=selection.subnet_type,
        subnet_group_name=selection.subnet_group_name,
        subnets=selection.subnets,
        availability_zones=selection.availability_zones,
        one_per_az=selection.one_per_az,
    ).subnet_ids
