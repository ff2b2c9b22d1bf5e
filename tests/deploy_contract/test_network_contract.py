"""Network: the interface endpoints a BU without internet access needs at run time, which no
registry schema or nag rule asks for."""

import pytest
from aws_cdk.assertions import Match
from harness.synthesized_app import CLONED_BU

from config.loader import CONFIG_DIR, config_files

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)
SESSION_MANAGER_SERVICES = ("ssm", "ssmmessages", "ec2messages")


@pytest.mark.parametrize("bu", BUS)
@pytest.mark.parametrize("service", SESSION_MANAGER_SERVICES)
def test_session_manager_reaches_aws_without_internet(synthesized, bu: str, service: str) -> None:
    """SSM sessions into HyperPod nodes and Studio spaces' remote IDE access work in a closed VPC.

    Fact: the SSM Agent uses ``ssm`` (registration, inventory), ``ssmmessages`` (Session Manager
    control and data channels) and, before agent 3.3.40.0, ``ec2messages`` (commands); a
    private subnet without internet needs an interface endpoint for each. Sources: AWS Systems
    Manager user guide, "Reference: ec2messages, ssmmessages, and other API operations"
    (https://docs.aws.amazon.com/systems-manager/latest/userguide/systems-manager-setting-up-messageAPIs.html)
    and "Improve the security of EC2 instances by using VPC endpoints for Systems Manager";
    AWS's closed-network HyperPod EKS sample, awslabs/awsome-distributed-ai @ 95b939c,
    1.architectures/7.sagemaker-hyperpod-eks/terraform-modules/hyperpod-eks-tf/
    closed-network.tfvars and modules/vpc_endpoints/main.tf, creates all three. Every BU gets
    them (a NAT BU too: the endpoints keep that traffic off the NAT gateway).
    """
    region = synthesized.configs[bu].region
    synthesized.template(bu, "network").has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": f"com.amazonaws.{region}.{service}",
            "VpcEndpointType": "Interface",
            # Private DNS: the agent calls the public service name and must land on the ENIs.
            "PrivateDnsEnabled": True,
            "SubnetIds": Match.any_value(),
            "SecurityGroupIds": Match.any_value(),
        },
    )
