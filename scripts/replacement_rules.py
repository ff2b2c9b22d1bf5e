"""Update behaviour the CloudFormation registry schemas miss, each entry with the AWS page that
states it; ``scripts.replacement_plan`` adds them to the registry's create-only properties.

An entry belongs here only when an AWS page confirms it and cfn-lint's registry schema does not
already list the path as create-only (tests/unit/test_replacement_rules.py checks both halves:
drop an entry once the registry has it). Checked and left out, because the current AWS pages
say the property updates in place or the registry already has it: FSx ``StorageType`` (No
interruption; ``UpdateFileSystem`` takes it), FSx ``KmsKeyId``/``SubnetIds``/
``SecurityGroupIds`` (create-only in the registry), EKS ``ResourcesVpcConfig.SubnetIds``/
``SecurityGroupIds`` (No interruption; see :data:`VPC_BOUND_PROPERTIES`), SageMaker Domain
``SubnetIds`` (No interruption) and ``AuthMode``/``KmsKeyId`` (create-only in the registry).
"""

from dataclasses import dataclass

CFN_PAGES = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference"
LUSTRE_PAGE = f"{CFN_PAGES}/aws-properties-fsx-filesystem-lustreconfiguration.html"
DOMAIN_PAGE = f"{CFN_PAGES}/aws-resource-sagemaker-domain.html"
UPDATE_DOMAIN = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateDomain.html"
UPDATE_EKS = "https://docs.aws.amazon.com/eks/latest/APIReference/API_UpdateClusterConfig.html"


@dataclass(frozen=True)
class ReplacingProperty:
    """A property whose change makes CloudFormation replace the resource."""

    resource_type: str
    path: tuple[str, ...]  # under Properties
    source: str  # the AWS page, with the property's anchor
    says: str  # what the page says, in short
    # Replaced only when the base already sets it (setting it the first time updates in place).
    only_when_set: bool = False

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class VpcBoundProperty:
    """A property that updates in place, but only to values in the resource's own VPC: pointing
    it at a resource in a new VPC makes the update fail instead."""

    resource_type: str
    path: tuple[str, ...]
    source: str
    says: str

    @property
    def name(self) -> str:
        return ".".join(self.path)


REPLACING_PROPERTIES: tuple[ReplacingProperty, ...] = (
    ReplacingProperty(
        "AWS::FSx::FileSystem",
        ("LustreConfiguration", "DeploymentType"),
        f"{LUSTRE_PAGE}#cfn-fsx-filesystem-lustreconfiguration-deploymenttype",
        "Update requires: Replacement (SCRATCH_1 | SCRATCH_2 | PERSISTENT_1 | PERSISTENT_2)",
    ),
    ReplacingProperty(
        "AWS::FSx::FileSystem",
        ("LustreConfiguration", "CopyTagsToBackups"),
        f"{LUSTRE_PAGE}#cfn-fsx-filesystem-lustreconfiguration-copytagstobackups",
        "Update requires: Replacement",
    ),
    ReplacingProperty(
        "AWS::SageMaker::Domain",
        ("VpcId",),
        f"{UPDATE_DOMAIN}#sagemaker-UpdateDomain-request-VpcId",
        "UpdateDomain takes VpcId only to add a VPC to a domain created without one; the "
        "registry lists VpcId as conditionally create-only (replaced when it cannot be updated)"
        f" and {DOMAIN_PAGE}#cfn-sagemaker-domain-vpcid says Some interruptions",
        only_when_set=True,
    ),
)

VPC_BOUND_PROPERTIES: tuple[VpcBoundProperty, ...] = (
    VpcBoundProperty(
        "AWS::EKS::Cluster",
        ("ResourcesVpcConfig", "SubnetIds"),
        f"{UPDATE_EKS}#AmazonEKS-UpdateClusterConfig-request-resourcesVpcConfig",
        "You can't change which VPC the subnets are from, the subnets must be in the same VPC "
        "as the subnets that the cluster was created with",
    ),
)


def replacing_properties(resource_type: str) -> list[ReplacingProperty]:
    return [p for p in REPLACING_PROPERTIES if p.resource_type == resource_type]


def vpc_bound_properties(resource_type: str) -> list[VpcBoundProperty]:
    return [p for p in VPC_BOUND_PROPERTIES if p.resource_type == resource_type]
