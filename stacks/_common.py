"""Translations from config values to CDK values, shared by the stacks."""

import aws_cdk as cdk
from aws_cdk import aws_logs as logs

from config.schema import BusinessUnitConfig


def removal_policy(config: BusinessUnitConfig) -> cdk.RemovalPolicy:
    return (
        cdk.RemovalPolicy.RETAIN if config.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY
    )


_RETENTION = {
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The schema only admits the day counts CloudWatch Logs offers, all listed here."""
    return _RETENTION[days]
