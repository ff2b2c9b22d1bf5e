"""The ``governance`` section of a BU config: a monthly cost budget on the BU's cost-allocation tag,
its alerts, an optional budget action that stops new capacity, and a CloudWatch dashboard.

Defaults: alerts at 50, 80 and 100 % of the limit, an encrypted SNS topic for them, no budget
action, a dashboard, and 365 days of retention for the EKS control-plane (audit) log group.
"""

from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from core.base import FieldProblemError, StrictModel, ascii_pattern

# One address: a local part and a dotted domain, ASCII only (Budgets sends plain SMTP); no
# display names, no quoted local parts. email-validator is not a dependency, so the shape is
# checked here and delivery is the subscriber's confirmation mail.
_EMAIL = ascii_pattern(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
# AWS Budgets takes at most 10 email subscribers and 1 SNS topic per notification (Budgets API
# reference, NotificationWithSubscribers: "one SNS subscriber and up to 10 email subscribers").
MAX_EMAIL_SUBSCRIBERS = 10
MAX_THRESHOLDS = 5


def _email(value: str) -> str:
    local = value.split("@", 1)[0]
    if (
        len(value) > MAX_EMAIL_LENGTH
        or _EMAIL.fullmatch(value) is None
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise ValueError(f"{value!r} is not an email address like name@example.com")
    return value


Email = Annotated[str, AfterValidator(_email)]
Percent = Annotated[float, Field(gt=0, le=100)]


# EKS control-plane (audit) log retention, also for a BU without a governance section.
DEFAULT_LOG_RETENTION_DAYS: Final = 365


class Governance(StrictModel):
    """Budget, alerts, enforcement and dashboard for one BU (README "Governance")."""

    # The budget's monthly limit in USD, for costs tagged `business-unit: <bu>`.
    monthly_limit_usd: float = Field(gt=0, le=100_000_000)
    # Alert when actual spend passes these percentages of the limit (each 0 < p <= 100).
    alert_thresholds_percent: list[Percent] = Field(
        default_factory=lambda: [50.0, 80.0, 100.0], min_length=1, max_length=MAX_THRESHOLDS
    )
    # Who gets the alerts by email (Budgets mails them itself; no SNS subscription).
    notification_emails: list[Email] = Field(default_factory=list, max_length=MAX_EMAIL_SUBSCRIBERS)
    # An SNS topic (KMS-encrypted, this BU's key) that receives every alert as well.
    sns_topic: bool = True
    # Budget action: at `action_threshold_percent` of the limit, attach a deny policy that stops
    # new endpoints, HyperPod capacity and training jobs to the BU's data-science roles.
    budget_action: bool = False
    action_threshold_percent: Percent | None = None
    # Whether the approval is automatic or waits for someone in the Budgets console.
    action_approval: Literal["automatic", "manual"] = "automatic"
    dashboard: bool = True
    # Retention of the EKS control-plane log group (audit logs), once the HyperPod stack
    # pre-creates it encrypted (README "Governance": audit).
    log_retention_days: Literal[90, 180, 365, 731, 1827, 3653] = DEFAULT_LOG_RETENTION_DAYS

    @field_validator("alert_thresholds_percent")
    @classmethod
    def _unique_thresholds(cls, values: list[float]) -> list[float]:
        if len(set(values)) != len(values):
            raise ValueError("thresholds must be unique")
        return sorted(values)

    @field_validator("notification_emails")
    @classmethod
    def _unique_emails(cls, values: list[str]) -> list[str]:
        lowered = [v.lower() for v in values]
        if len(set(lowered)) != len(lowered):
            raise ValueError("email addresses must be unique")
        return values

    @model_validator(mode="after")
    def _coherent(self) -> "Governance":
        if not self.notification_emails and not self.sns_topic:
            raise FieldProblemError(
                "notification_emails",
                "no one would hear of the budget: list an address or keep sns_topic on",
            )
        if not self.budget_action:
            for name in ("action_threshold_percent", "action_approval"):
                if name in self.model_fields_set:
                    raise FieldProblemError(name, "only applies when budget_action is true")
        return self

    @property
    def action_threshold(self) -> float:
        """Where the action fires: the configured percentage, 100 % by default."""
        return 100.0 if self.action_threshold_percent is None else self.action_threshold_percent
