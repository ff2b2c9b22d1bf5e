"""The EC2 calls SageMaker makes with a role to place a job's, endpoint's or HyperPod node's
network interfaces in the BU's VPC: one list, used by every role that needs it."""

# No resource-level permissions exist for these (Describe*): they take Resource "*".
DESCRIBE_ACTIONS = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
# The ENIs do not exist when the policy is written: "*" scoped by a condition where possible.
MANAGE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)
