"""The security gates: the three cdk-nag packs on every synth, and one-finding acknowledgements.

cdk-nag 3 runs as a CDK policy-validation plugin (``Validations.of(app).add_plugins``): the
report fails ``cdk synth`` on any unacknowledged finding, warnings included.
"""

import re

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks
from constructs import IConstruct

PACKS: tuple[type[NagPack], ...] = (AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks)

# One rule id, optionally scoped to one finding: `AwsSolutions-IAM5[Action::s3:*]`.
_FINDING = re.compile(r"^(AwsSolutions|HIPAA\.Security|NIST\.800\.53\.R5)-[A-Za-z0-9]+(\[.+\])?$")
MIN_REASON_LENGTH = 40


def register_gates(app: cdk.App) -> None:
    """Run every pack over the whole app at synth time."""
    cdk.Validations.of(app).add_plugins(*(pack(app) for pack in PACKS))


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ONE finding on ONE construct (and its children) with a specific reason."""
    if not _FINDING.match(finding):
        raise ValueError(f"acknowledge one nag rule id (optionally [finding]), got {finding!r}")
    if len(reason) < MIN_REASON_LENGTH:
        raise ValueError(f"{finding}: give a specific reason, not {reason!r}")
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def acknowledge_cdk_function(construct: IConstruct, what: str) -> None:
    """The findings every Lambda that the CDK itself writes raises (a custom-resource provider,
    a bucket deployment), acknowledged on that provider's construct with ``what`` it does.

    Each is a CloudFormation-driven, run-on-deploy function: CloudFormation retries and
    reports its failures (no DLQ consumer exists), it runs once per deploy (a concurrency
    limit protects nothing), and its runtime and basic-execution policies are the CDK's.
    """
    reasons = {
        "AwsSolutions-L1": f"{what}: the CDK pins this function's runtime with its release; "
        "upgrading aws-cdk-lib (pinned in requirements.txt) moves it.",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]": f"{what}: the CDK-written role needs only to write its "
        "own log stream, which this AWS policy grants.",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaVPCAccessExecutionRole]": f"{what}: runs inside the private subnets (no internet "
        "path) and needs its ENI permissions from this AWS policy.",
    }
    for pack in ("HIPAA.Security", "NIST.800.53.R5"):
        reasons[f"{pack}-LambdaDLQ"] = (
            f"{what}: invoked only by CloudFormation, which records every failure on the stack "
            "event and rolls back; a dead-letter queue would have no consumer."
        )
        reasons[f"{pack}-LambdaConcurrency"] = (
            f"{what}: runs once per deployment of this stack; a reserved-concurrency limit "
            "would only make deployments fail under account-level pressure."
        )
        reasons[f"{pack}-IAMNoInlinePolicy"] = (
            f"{what}: CDK writes this function role's policy for it alone (its own log group, "
            "the one resource it manages); it cannot be attached to another principal."
        )
    for finding, reason in reasons.items():
        acknowledge(construct, finding, reason)


def accept_role_depends_on(function: cdk.CfnResource) -> None:
    """cfn-lint W3005 on a CDK-written Lambda: CDK makes every function depend on its role
    (and its role's policy) even though ``Role: GetAtt`` already orders them; the explicit
    edge is CDK's, harmless, and not removable without rewriting the CDK construct."""
    function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
