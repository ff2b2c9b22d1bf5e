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
_FINDING = re.compile(
    r"^(AwsSolutions|HIPAA\.Security|NIST\.800\.53\.R5)-[A-Za-z0-9]+(\[[^\]]+\])?$"
)
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
