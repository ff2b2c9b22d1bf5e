"""FSx for Lustre for datasets and checkpoints: one AZ (next to the nodes), KMS, no public path."""

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_kms as kms
from constructs import Construct

# Lustre needs a file-system version for PERSISTENT_2; 2.15 is the current one FSx offers.
LUSTRE_VERSION = "2.15"


class LustreFileSystem(Construct):
    """A Lustre file system in one private subnet, reachable only from ``security_group``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnet: ec2.ISubnet,
        security_group: ec2.ISecurityGroup,
        key: kms.IKey,
        deployment_type: str,
        storage_capacity_gib: int,
        throughput_mbps_per_tib: int | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.file_system = fsx.LustreFileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnet=subnet,
            security_group=security_group,
            kms_key=key,
            storage_capacity_gib=storage_capacity_gib,
            file_system_type_version=fsx.FileSystemTypeVersion.V_2_15,
            lustre_configuration=fsx.LustreConfiguration(
                deployment_type=fsx.LustreDeploymentType[deployment_type],
                per_unit_storage_throughput=throughput_mbps_per_tib,
                data_compression_type=fsx.LustreDataCompressionType.LZ4,
            ),
            removal_policy=removal_policy,
        )
