"""Check that a deployed business unit works: every stack, the HyperPod cluster and its nodes, GPU
and MIG capacity, add-ons, team quotas and storage, Spaces templates, Studio sign-in, MLflow and
the endpoints.

    python -m tools.doctor --bu NAME [--region R] [--kubeconfig PATH] [--context C]
                             [--skip-endpoint-smoke]

A platform team runs it after ``cdk deploy`` (``make doctor BU=<bu>``) with its own AWS
credentials and kubeconfig. It prints one table (check, target, status, detail) and exits 1
naming the failing rows, 0 when every check passed, 2 when the BU's config cannot be loaded.
Nothing is changed anywhere: every call is a read, except the endpoints' smoke request.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import boto3

from config.loader import CONFIG_DIR, ConfigInvalidError, load_valid
from config.schema import BusinessUnitConfig
from core import cli
from tools.doctor_checks import (
    Aws,
    Row,
    TrackingCall,
    addon_rows,
    cluster_rows,
    default_tracking_call,
    endpoint_rows,
    hyperpod_rows,
    identity_rows,
    mlflow_rows,
    skip,
    stack_names,
    stack_rows,
    studio_rows,
)

COLUMNS = ("check", "target", "status", "detail")


def run_checks(
    config: BusinessUnitConfig,
    *,
    aws: Aws,
    kubeconfig: str | None = None,
    context: str | None = None,
    smoke_test: bool = True,
    tracking_call: TrackingCall | None = None,
) -> list[Row]:
    """Every check of the BU, in deploy order. Without the BU account's identity the AWS checks
    are skipped: against no account or another one they could only fail confusingly."""
    rows = identity_rows(config, aws)
    aws_ok = rows[-1].status == "ok"
    if aws_ok:
        rows += stack_rows(config, aws) + hyperpod_rows(config, aws) + addon_rows(config, aws)
    else:
        why = f"{len(stack_names(config))} stacks and what they made: no identity in the account"
        rows.append(skip("aws checks", config.name, why))
    rows += cluster_rows(config, kubeconfig=kubeconfig, context=context)
    if aws_ok:
        rows += studio_rows(config, aws) + mlflow_rows(config, aws, tracking_call)
        rows += endpoint_rows(config, aws, smoke_test=smoke_test)
    return rows


def render(rows: Sequence[Row]) -> str:
    """One aligned table; the detail column is last so long reasons never break alignment."""
    cells = [COLUMNS, *((r.check, r.target, r.status, r.detail) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(c[i].ljust(w) for i, w in enumerate(widths)), c[-1]]) for c in cells]
    return "\n".join(line.rstrip() for line in lines)


def verdict(rows: Sequence[Row]) -> tuple[int, str]:
    """The exit code and the closing line, which names every failing row."""
    failed = [f"{r.check} {r.target}" for r in rows if r.status == "FAIL"]
    if failed:
        return 1, f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}"
    passed = sum(r.status == "ok" for r in rows)
    skipped = sum(r.status == "skip" for r in rows)
    return 0, f"doctor: all {passed} checks passed" + (f" ({skipped} skipped)" if skipped else "")


@dataclass(frozen=True)
class DoctorArgs:
    """``python -m tools.doctor``'s options."""

    bu: str = field(metadata={"help": "business unit (config/<bu>.yaml)"})
    region: str | None = field(
        default=None, metadata={"help": "AWS region (default: the BU config's region)"}
    )
    kubeconfig: str | None = field(
        default=None,
        metadata={"help": "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"},
    )
    context: str | None = field(
        default=None, metadata={"help": "kubeconfig context (default: the current one)"}
    )
    skip_endpoint_smoke: bool = cli.switch(
        "check that endpoints are InService but send them no request"
    )


parse_args = cli.args_parser(DoctorArgs, __doc__, module="tools.doctor")


def main(
    args: DoctorArgs,
    *,
    aws: Aws | None = None,
    tracking_call: TrackingCall | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """``aws`` and ``tracking_call`` replace the real clients (tests); by default the clients
    come from one ``boto3.Session`` in ``--region`` or the BU's region."""
    try:
        (config,) = load_valid([CONFIG_DIR / f"{args.bu}.yaml"])
    except ConfigInvalidError as err:
        print(f"doctor: cannot load BU {args.bu!r}:\n{err}", file=out)
        return 2
    if aws is None:
        aws = Aws(boto3.Session(region_name=args.region or config.region))
        tracking_call = tracking_call or default_tracking_call()
    rows = run_checks(
        config,
        aws=aws,
        kubeconfig=args.kubeconfig,
        context=args.context,
        smoke_test=not args.skip_endpoint_smoke,
        tracking_call=tracking_call,
    )
    code, line = verdict(rows)
    print(render(rows), file=out)
    print(line, file=out)
    return code


if __name__ == "__main__":
    sys.exit(main(parse_args()))
