"""The one way this platform makes an AWS API call at deploy time: an ``AwsCustomResource`` whose
stack-wide provider function runs inside the BU's private subnets (HTTPS out only, the SDK the
runtime bundles, so nothing is downloaded), with one acknowledgement per finding it cannot meet."""

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from platform_constructs.gates import (
    COMPLIANCE_PACKS,
    acknowledge,
    acknowledge_each,
    managed_policy_finding,
)
from platform_constructs.security_groups import HTTPS


def sdk_call(
    scope: Construct,
    construct_id: str,
    *,
    call: cr.AwsSdkCall,
    on_create: bool,
    statements: list[iam.PolicyStatement],
    permits: str,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    log_group: logs.ILogGroup | None = None,
) -> cr.AwsCustomResource:
    """``call`` on update (and on create when ``on_create``); nothing on delete.

    ``permits`` says in words what ``statements`` allow, for the acknowledgements."""
    resource = cr.AwsCustomResource(
        scope,
        construct_id,
        on_create=call if on_create else None,
        on_update=call,
        policy=cr.AwsCustomResourcePolicy.from_statements(statements),
        # The runtime's bundled SDK: no npm download at deploy time (a closed BU has no
        # internet), and the call cannot change under us between deployments.
        install_latest_aws_sdk=False,
        # Inside the VPC: the service API through its interface endpoint, the CloudFormation
        # response through the S3 gateway endpoint.
        vpc=vpc,
        vpc_subnets=subnets,
        log_group=log_group,
        timeout=cdk.Duration.minutes(2),
    )
    harden_sdk_call_provider(resource, permits=permits)
    return resource


def harden_sdk_call_provider(resource: cr.AwsCustomResource, *, permits: str) -> None:
    """The stack-wide singleton function behind every AwsCustomResource: HTTPS out only,
    and one acknowledgement per finding it cannot meet."""
    stack = cdk.Stack.of(resource)
    uuid = cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
    function = stack.node.find_child(f"AWS{uuid}")
    if not isinstance(function, lambda_.Function) or function.role is None:
        raise TypeError(f"AwsCustomResource's provider is not a Function with a role: {function}")
    for group in function.connections.security_groups:
        cfn_group = group.node.default_child
        if not isinstance(cfn_group, ec2.CfnSecurityGroup):
            raise TypeError(f"unexpected security group resource {cfn_group}")
        cfn_group.add_property_override(
            "SecurityGroupEgress",
            [
                {
                    "CidrIp": "0.0.0.0/0",
                    "IpProtocol": "tcp",
                    "FromPort": HTTPS,
                    "ToPort": HTTPS,
                    "Description": "HTTPS to the service's API endpoint and the S3 gateway",
                }
            ],
        )
    reasons = {
        "LambdaDLQ": (
            "A CloudFormation custom-resource handler: CloudFormation itself waits for the "
            "response and fails the deployment on error, so a dead-letter queue would only "
            "hold events nobody replays."
        ),
        "LambdaConcurrency": (
            "Runs only during a deployment of this stack, once per custom-resource event; "
            "reserving concurrency would take capacity from the account for an idle function."
        ),
    }
    acknowledge_each(
        function,
        {f"{pack}-{rule}": reason for pack in COMPLIANCE_PACKS for rule, reason in reasons.items()},
    )
    # CDK's Function adds DependsOn its role on top of the Role GetAtt (a construct-level
    # dependency this code cannot remove); cfn-lint W3005 reports the redundancy, and only
    # that check is skipped, on this one resource.
    cfn_function = function.node.default_child
    if not isinstance(cfn_function, cdk.CfnResource):
        raise TypeError(f"unexpected function resource {cfn_function}")
    cfn_function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
    managed = {
        "AWSLambdaBasicExecutionRole": "write its own log stream",
        "AWSLambdaVPCAccessExecutionRole": "create and delete its ENIs in the private subnets",
    }
    acknowledge_each(
        function.role,
        {
            managed_policy_finding(f"service-role/{name}"): "CDK's AwsCustomResource provider "
            f"role: the AWS-managed {name} lets the function {why}; its other permissions are the "
            "deploy-time calls of this stack, each scoped to its resource."
            for name, why in managed.items()
        },
    )
    policy = resource.node.find_child("CustomResourcePolicy")
    for pack in COMPLIANCE_PACKS:
        acknowledge(
            policy,
            f"{pack}-IAMNoInlinePolicy",
            "AwsCustomResource attaches its call's policy inline to its function's role: "
            f"{permits} only.",
        )
