"""The synthesis gates: the three cdk-nag packs and cfn-lint on every synth, and one-finding
acknowledgements.

Both run as CDK policy-validation plugins (``Validations.of(app).add_plugins``), so ``cdk synth``,
``cdk deploy``, ``make synth`` and the tests apply the same gates: the report fails synthesis on
any unacknowledged cdk-nag finding (warnings included) and on any cfn-lint error (cfn-lint
warnings are reported without failing).
"""

import re
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks
from constructs import IConstruct

from platform_constructs.template_lint import (
    CFN_LINT_VERSION,
    DEFAULT_REGION,
    Finding,
    TemplateLinter,
)

PACKS: tuple[type[NagPack], ...] = (AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks)
# The rule prefixes of the two compliance packs, which share most rule names.
COMPLIANCE_PACKS = ("HIPAA.Security", "NIST.800.53.R5")
CFN_LINT_PLUGIN = "cfn-lint"

# One rule id, optionally scoped to one finding: `AwsSolutions-IAM5[Action::s3:*]`.
_FINDING = re.compile(r"^(AwsSolutions|HIPAA\.Security|NIST\.800\.53\.R5)-[A-Za-z0-9]+(\[.+\])?$")
MIN_REASON_LENGTH = 40


@jsii.implements(cdk.IPolicyValidationPlugin)
class CfnLintPlugin:
    """cfn-lint over every template of the app, each in its stack's region.

    Errors fail synthesis (severity ``error``, so an unrelated acknowledgement never flips the
    report to success); warnings are reported as ``warning`` violations. Informational matches
    are left out. cfn-lint findings cannot be acknowledged: fix the template.
    """

    def __init__(
        self, *, cache_dir: Path | None = None, workers: int | None = None, early: bool = False
    ) -> None:
        self._linter = TemplateLinter(workers=workers, cache_dir=cache_dir, early=early)
        # What the last validation linted, every finding included (tests read it).
        self.results: dict[Path, list[Finding]] = {}

    @property
    def name(self) -> str:
        return CFN_LINT_PLUGIN

    @property
    def version(self) -> str:
        return CFN_LINT_VERSION

    @property
    def rule_ids(self) -> list[str] | None:
        return None  # every rule cfn-lint ships, by default configuration

    def lint_early(self, stage: cdk.Stage) -> None:
        """Synthesize ``stage`` now and start linting its templates (with ``early=True``), so
        the app's next stage is built while these are linted. ``app.synth()`` later reuses
        this stage's assembly (CDK synthesizes a stage once) and validates the same bytes."""
        assembly = stage.synth()
        self._linter.submit(
            [(Path(s.template_full_path), s.environment.region) for s in assembly.stacks]
        )

    def validate(self, context: cdk.IPolicyValidationContext) -> cdk.PolicyValidationPluginReport:
        stacks = list(context.stack_templates)
        jobs = [(Path(s.template_path), s.region or DEFAULT_REGION) for s in stacks]
        results = self._linter.lint(jobs)
        self.results = {path: findings for (path, _), findings in zip(jobs, results, strict=True)}
        violations = [
            _violation(path, finding)
            for (path, _), findings in zip(jobs, results, strict=True)
            for finding in findings
            if finding.level != "info"
        ]
        return cdk.PolicyValidationPluginReport(
            success=not any(v.severity == "error" for v in violations),
            violations=violations,
            plugin_version=CFN_LINT_VERSION,
        )


def _violation(template: Path, finding: Finding) -> cdk.PolicyViolation:
    resource = cdk.PolicyViolatingResource(
        template_path=str(template),
        resource_logical_id=finding.logical_id,
        locations=[finding.location],
    )
    return cdk.PolicyViolation(
        rule_name=finding.rule,
        description=finding.message,
        severity=finding.level,
        violating_resources=[resource],
    )


def register_gates(
    app: cdk.App, *, lint_cache: Path | None = None, early: bool = False
) -> CfnLintPlugin:
    """Run every nag pack and cfn-lint over the whole app at synth time; returns the cfn-lint
    plugin (its ``results`` say what it linted; its ``lint_early`` overlaps linting a stage
    with building the next when ``early``).

    ``lint_cache``: a directory that keeps cfn-lint results by template content (app.py passes
    ``.cache/cfn-lint``); ``None`` lints every template afresh.
    """
    linter = CfnLintPlugin(cache_dir=lint_cache, early=early)
    cdk.Validations.of(app).add_plugins(*(pack(app) for pack in PACKS), linter)
    return linter


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ONE finding on ONE construct (and its children) with a specific reason."""
    acknowledge_each(construct, {finding: reason})


def acknowledge_each(construct: IConstruct, findings: Mapping[str, str]) -> None:
    """``acknowledge`` for several findings on one construct, each with its own reason, in one
    jsii call (a BU acknowledges a few hundred findings; one call each cost ~0.1 s per BU)."""
    for finding, reason in findings.items():
        if not _FINDING.match(finding):
            raise ValueError(f"acknowledge one nag rule id (optionally [finding]), got {finding!r}")
        if len(reason) < MIN_REASON_LENGTH:
            raise ValueError(f"{finding}: give a specific reason, not {reason!r}")
    if findings:
        cdk.Validations.of(construct).acknowledge(
            *(cdk.Acknowledgment(id=finding, reason=reason) for finding, reason in findings.items())
        )


def managed_policy_finding(policy: str) -> str:
    """cdk-nag's IAM4 finding for the AWS-managed ``policy`` (``service-role/X`` included)."""
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]"


def attach_managed_policy(role: iam.Role, policy: str, why: str) -> None:
    """Attach the AWS-managed ``policy`` to ``role`` and acknowledge IAM4 with ``why`` (what
    AWS maintains in it that a copy of ours would let drift)."""
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(policy))
    acknowledge(role, managed_policy_finding(policy), why)


def acknowledge_grant(
    policy: IConstruct, wildcards: Mapping[str, str], *, inline_reason: str
) -> None:
    """A CDK grant's policy: each ``AwsSolutions-IAM5[<finding>]`` of ``wildcards`` with its
    reason, and the compliance packs' IAMNoInlinePolicy with ``inline_reason``."""
    findings = {f"AwsSolutions-IAM5[{finding}]": why for finding, why in wildcards.items()}
    findings |= {f"{pack}-IAMNoInlinePolicy": inline_reason for pack in COMPLIANCE_PACKS}
    acknowledge_each(policy, findings)


def acknowledge_cdk_function(construct: IConstruct, what: str) -> None:
    """The findings every Lambda that the CDK itself writes raises (a custom-resource provider,
    a bucket deployment), acknowledged on that provider's construct with ``what`` it does.

    Each is a CloudFormation-driven, run-on-deploy function: CloudFormation retries and
    reports its failures (no DLQ consumer exists), it runs once per deploy (a concurrency
    limit protects nothing), and its runtime and basic-execution policies are the CDK's.
    """
    basic_execution = managed_policy_finding("service-role/AWSLambdaBasicExecutionRole")
    vpc_access = managed_policy_finding("service-role/AWSLambdaVPCAccessExecutionRole")
    reasons = {
        "AwsSolutions-L1": f"{what}: the CDK pins this function's runtime with its release; "
        "upgrading aws-cdk-lib (pinned in requirements.txt) moves it.",
        basic_execution: f"{what}: the CDK-written role needs only to write its "
        "own log stream, which this AWS policy grants.",
        vpc_access: f"{what}: runs inside the private subnets (no internet "
        "path) and needs its ENI permissions from this AWS policy.",
    }
    for pack in COMPLIANCE_PACKS:
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
    acknowledge_each(construct, reasons)


def accept_role_depends_on(function: cdk.CfnResource) -> None:
    """cfn-lint W3005 on a CDK-written Lambda: CDK makes every function depend on its role
    (and its role's policy) even though ``Role: GetAtt`` already orders them; the explicit
    edge is CDK's, harmless, and not removable without rewriting the CDK construct."""
    function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
