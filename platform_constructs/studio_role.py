"""The execution role a BU's Studio apps run as: the signed-in user's identity travels with its
sessions (trusted identity propagation), and it reaches only this BU's domain, spaces, HyperPod
cluster and endpoints. S3, KMS and MLflow come from the owners' grants (the stack wires them)."""

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from platform_constructs.gates import acknowledge_each
from platform_constructs.grant_findings import nag_form
from platform_constructs.service_roles import SAGEMAKER

# Studio apps write their logs here (a log group SageMaker creates per account and region).
STUDIO_LOG_GROUP = "/aws/sagemaker/studio"


def confused_deputy_conditions(stack: cdk.Stack) -> dict[str, dict[str, str]]:
    """SageMaker may assume the Studio role only for this account and region.

    SageMaker AI developer guide, "Cross-service confused deputy prevention", section
    "SageMaker Studio" (docs.aws.amazon.com/sagemaker/latest/dg/
    security-confused-deputy-prevention.html): the Studio trust policy uses ``ArnLike``
    ``aws:SourceArn`` = ``arn:<partition>:sagemaker:<region>:<account>:*`` and warns not to
    replace it with the ARN of a specific Studio application, user profile or domain ("The
    asterisk in the ARN template does not stand for wildcard and should not be changed").
    That section calls ``aws:SourceAccount`` unneeded beside it (the account is in the ARN);
    it is kept because every SageMaker trust of the platform names the account
    (tests/deploy_contract/test_isolation_contract.py), and the page's "Limit Permissions With
    Global Condition Keys" example pairs both keys for ``sagemaker.amazonaws.com``, with the
    same account in each.
    """
    source_arn = stack.format_arn(
        service="sagemaker", resource="*", arn_format=cdk.ArnFormat.NO_RESOURCE_NAME
    )
    return {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {"aws:SourceArn": source_arn},
    }


class StudioExecutionRole(Construct):
    """One role for the BU's domain, user profiles and spaces.

    Its trust policy lets SageMaker assume it, set the caller's Identity Center context
    (``sts:SetContext``, trusted identity propagation) and the user-profile name as source
    identity (``sts:SetSourceIdentity``), so CloudTrail names the person behind every call;
    only for this account and region (``confused_deputy_conditions``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, role_name: str) -> None:
        super().__init__(scope, construct_id)
        conditions = confused_deputy_conditions(cdk.Stack.of(self))
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal(SAGEMAKER, conditions=conditions),
            description="Studio apps of this BU: data, models, MLflow, HyperPod, endpoints",
        )
        trust = self.role.assume_role_policy
        if trust is None:  # an iam.Role always has one; keeps the type checker honest
            raise TypeError("iam.Role without a trust policy")
        # Same principal and conditions, so CDK merges this into the AssumeRole statement
        # (SetContext and SetSourceIdentity come in the same AssumeRole request).
        trust.add_statements(
            iam.PolicyStatement(
                actions=["sts:SetContext", "sts:SetSourceIdentity"],
                principals=[iam.ServicePrincipal(SAGEMAKER, conditions=conditions)],
            )
        )
        # Each wildcard resource of the role's own policy, with why (acknowledged by name).
        self._wildcards: dict[str, str] = {
            "*": "ListApps, ListSpaces and ListClusters have no resource types in the Service "
            "Authorization Reference, so Resource must be *; every other action here names "
            "this BU's resources",
        }
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="Studio apps: this domain's spaces and apps, this BU's cluster/endpoints",
            roles=[self.role],
        )

    def allow_domain(self, domain: sagemaker.CfnDomain) -> None:
        """Studio's own calls (open/close apps, read the profile and spaces) on this domain
        only, and remote IDE sessions into the caller's own spaces only."""
        stack = cdk.Stack.of(self)
        domain_id, domain_arn = domain.attr_domain_id, domain.attr_domain_arn

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        # This domain's apps, spaces and profiles: app/<domain>/<profile>/<type>/<name>,
        # space/<domain>/<name>, user-profile/<domain>/<name> (Service Authorization Reference).
        apps, spaces, profiles = (
            arn(kind, f"{domain_id}/*") for kind in ("app", "space", "user-profile")
        )

        logs_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{STUDIO_LOG_GROUP}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="OwnSpacesRemoteSessions",
                actions=["sagemaker:StartSession"],
                resources=[spaces],
                # SageMaker tags every space with its owner's profile ARN; the policy variable
                # is the profile the session belongs to (developer guide, "Set up remote access").
                conditions={
                    "ArnLike": {
                        "sagemaker:ResourceTag/sagemaker:user-profile-arn": arn(
                            "user-profile", f"{domain_id}/${{sagemaker:UserProfileName}}"
                        )
                    }
                },
            ),
            iam.PolicyStatement(
                sid="StudioAppsInThisDomain",
                actions=[
                    "sagemaker:CreateApp",
                    "sagemaker:DeleteApp",
                    "sagemaker:DescribeApp",
                    "sagemaker:DescribeSpace",
                    "sagemaker:UpdateSpace",
                    "sagemaker:DescribeUserProfile",
                    "sagemaker:DescribeDomain",
                    # ListTags takes the resource's ARN (its resource types include domain,
                    # app, space and user-profile), so it needs no "*".
                    "sagemaker:ListTags",
                ],
                resources=[domain_arn, apps, spaces, profiles],
            ),
            iam.PolicyStatement(
                sid="StudioTagsAppsOnCreate",
                # Studio tags every resource it creates, so a custom policy that lets it create
                # them must allow sagemaker:AddTags ("Give your users access to private
                # spaces", SageMaker developer guide). Apps are all this role creates (spaces
                # and profiles come from CloudFormation). sagemaker:TaggingAction names the
                # create call the tags travel with, so existing resources cannot be retagged:
                # no one can copy a space's sagemaker:user-profile-arn tag (the StartSession
                # condition above) onto another space.
                actions=["sagemaker:AddTags"],
                resources=[apps],
                conditions={"StringEquals": {"sagemaker:TaggingAction": "CreateApp"}},
            ),
            iam.PolicyStatement(
                sid="StudioListings",
                # No resource types in the Service Authorization Reference: Resource must be *.
                actions=["sagemaker:ListApps", "sagemaker:ListSpaces"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="StudioAppLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[logs_arn],
            ),
        )
        self._wildcards.update(
            {
                spaces: "remote IDE sessions and Studio's space and tag reads: spaces of "
                "this domain only, StartSession further narrowed by condition to the caller's "
                "own spaces",
                apps: "Studio opens and closes the JupyterLab/Code Editor apps of this domain's "
                "spaces and tags each in its CreateApp call (AddTags only where "
                "sagemaker:TaggingAction is CreateApp); Studio names the apps",
                profiles: "Studio reads the signed-in user's profile and its tags; profiles of "
                "this domain only, one per configured user",
                logs_arn: "Studio apps create one log stream per app in SageMaker's own Studio "
                "log group; stream names are generated at app start",
            }
        )

    def allow_bu_workloads(self, *, hyperpod_tag: tuple[str, str], endpoint_prefix: str) -> None:
        """Describe this BU's HyperPod cluster and invoke this BU's endpoints.

        A HyperPod cluster ARN ends in a generated ID (``cluster/[a-z0-9]{12}``), not its name,
        so the cluster is matched by the BU tag the Stage puts on every resource.
        """
        stack = cdk.Stack.of(self)
        tag_key, tag_value = hyperpod_tag
        clusters = stack.format_arn(service="sagemaker", resource="cluster", resource_name="*")
        endpoints = stack.format_arn(
            service="sagemaker", resource="endpoint", resource_name=f"{endpoint_prefix}*"
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="ThisBuHyperPodCluster",
                actions=[
                    "sagemaker:DescribeCluster",
                    "sagemaker:ListClusterNodes",
                    "sagemaker:DescribeClusterNode",
                    "sagemaker:ListTags",
                ],
                resources=[clusters],
                conditions={"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
            ),
            iam.PolicyStatement(
                sid="FindClusters",
                actions=["sagemaker:ListClusters"],  # no resource-level permissions
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ThisBuEndpoints",
                actions=[
                    "sagemaker:InvokeEndpoint",
                    "sagemaker:InvokeEndpointWithResponseStream",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:ListTags",
                ],
                resources=[endpoints],
            ),
        )
        self._wildcards.update(
            {
                clusters: "HyperPod cluster ARNs end in a generated ID, not the name; the "
                "statement is limited by condition to clusters tagged with this BU's name",
                endpoints: "every endpoint of this BU is named <bu>-<name> by the naming "
                "helper; endpoints come and go with the endpoints stack, so the BU prefix is "
                "the stable scope",
            }
        )

    def acknowledge_wildcards(self) -> None:
        """One acknowledgement per wildcard finding of this role's own policy, each with why
        (call after the allow_* methods)."""
        acknowledge_each(
            self.policy,
            {
                f"AwsSolutions-IAM5[Resource::{nag_form(self.policy, resource)}]": reason
                for resource, reason in self._wildcards.items()
            },
        )
