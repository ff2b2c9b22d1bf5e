"""One CloudWatch dashboard per BU: its endpoints' traffic, errors, latency and utilisation, where
its HyperPod and training metrics live, and the account's estimated charges.

The body is plain data built by :func:`dashboard_body` from a :class:`DashboardSpec`, so the
construct, ``tools/render_dashboard.py`` (docs/dashboard.png) and the tests read one body.

Metric sources (Amazon SageMaker developer guide, "Metrics for monitoring Amazon SageMaker AI
with Amazon CloudWatch"; AWS Billing user guide, "Creating a billing alarm"):
- ``AWS/SageMaker``: ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors``,
  ``ModelLatency`` and ``OverheadLatency`` (microseconds), dimensions ``EndpointName``,
  ``VariantName``.
- ``/aws/sagemaker/Endpoints``: ``CPUUtilization``, ``MemoryUtilization``,
  ``GPUUtilization``, ``GPUMemoryUtilization`` (percent, summed over the instance's cores/GPUs).
- ``AWS/Billing`` ``EstimatedCharges`` (dimension ``Currency``) exists only in us-east-1, for the
  whole account (every BU sharing it), once "Receive Billing Alerts" is on.
- HyperPod node and cluster health from the observability add-on go to Amazon Managed Service
  for Prometheus, not CloudWatch; training job status counts have no CloudWatch metric (managed
  training jobs publish per-job utilisation in ``/aws/sagemaker/TrainingJobs`` only, HyperPod
  jobs are Kubernetes objects counted by Kueue's Prometheus metrics). Both are text widgets
  that say so and link there.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

VARIANT = "AllTraffic"
BILLING_REGION = "us-east-1"  # AWS/Billing metrics are published there only
PERIOD_S = 300
WIDTH = 24  # a CloudWatch dashboard's grid is 24 units wide

Widget = dict[str, Any]


@dataclass(frozen=True)
class DashboardSpec:
    bu: str
    region: str
    endpoint_names: Sequence[str]  # SageMaker real-time endpoints of this BU only
    monthly_limit_usd: float
    prometheus_alias: str | None  # the HyperPod metrics workspace, if the BU has a cluster
    hyperpod_cluster: str | None


def _console(region: str, fragment: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{fragment}"


def _endpoint_metrics(
    namespace: str, metric: str, names: Sequence[str], **options: str
) -> list[list[Any]]:
    return [
        [namespace, metric, "EndpointName", name, "VariantName", VARIANT, options or {}]
        for name in names
    ]


def _metric_widget(
    title: str,
    region: str,
    metrics: list[list[Any]],
    *,
    stat: str,
    y: int,
    x: int,
    width: int = 12,
    label: str | None = None,
    annotations: dict[str, Any] | None = None,
) -> Widget:
    properties: dict[str, Any] = {
        "title": title,
        "region": region,
        "view": "timeSeries",
        "stacked": False,
        "stat": stat,
        "period": PERIOD_S,
        # CloudWatch rejects an empty options object at the end of a metric array.
        "metrics": [m if m[-1] else m[:-1] for m in metrics],
    }
    if label is not None:
        properties["yAxis"] = {"left": {"label": label, "showUnits": False}}
    if annotations is not None:
        properties["annotations"] = annotations
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6, "properties": properties}


def _text(markdown: str, *, y: int, x: int, width: int = 12, height: int = 4) -> Widget:
    return {
        "type": "text",
        "x": x,
        "y": y,
        "width": width,
        "height": height,
        "properties": {"markdown": markdown},
    }


# The endpoint graphs, two per row: title, namespace, metrics (one line per endpoint each),
# statistic and unit label.
ENDPOINT_GRAPHS = (
    ("Invocations", "AWS/SageMaker", ("Invocations",), "Sum", "requests / 5 min"),
    (
        "4XX and 5XX errors",
        "AWS/SageMaker",
        ("Invocation4XXErrors", "Invocation5XXErrors"),
        "Sum",
        "errors / 5 min",
    ),
    (
        "ModelLatency and OverheadLatency (p90)",
        "AWS/SageMaker",
        ("ModelLatency", "OverheadLatency"),
        "p90",
        "microseconds",
    ),
    (
        "GPU, GPU memory and memory utilisation",
        "/aws/sagemaker/Endpoints",
        ("GPUUtilization", "GPUMemoryUtilization", "MemoryUtilization"),
        "Average",
        "percent (x GPUs)",
    ),
)


def dashboard_body(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard's body (CloudWatch dashboard body structure), widgets in reading order."""
    names = list(spec.endpoint_names)
    region = spec.region
    widgets: list[Widget] = [
        _text(
            f"# {spec.bu}: ML platform\nEndpoints: {', '.join(names) or 'none on SageMaker'}. "
            f"Budget: {spec.monthly_limit_usd:,.0f} USD a month on the `business-unit: {spec.bu}` "
            "cost-allocation tag ([Budgets console](https://console.aws.amazon.com/billing/home"
            "#/budgets)).",
            y=0,
            x=0,
            width=WIDTH,
            height=2,
        )
    ]
    y = 2
    if names:
        widgets += [
            _metric_widget(
                title,
                region,
                [m for metric in metrics for m in _endpoint_metrics(namespace, metric, names)],
                stat=stat,
                y=y + 6 * (n // 2),
                x=12 * (n % 2),
                label=label,
            )
            for n, (title, namespace, metrics, stat, label) in enumerate(ENDPOINT_GRAPHS)
        ]
        y += 6 * math.ceil(len(ENDPOINT_GRAPHS) / 2)  # two graphs per 6-unit row
    if spec.hyperpod_cluster is not None and spec.prometheus_alias is not None:
        health = (
            f"## HyperPod `{spec.hyperpod_cluster}`: cluster and node health\n"
            "The HyperPod observability add-on writes node health, GPU (DCGM) and Kueue metrics "
            f"to the Amazon Managed Service for Prometheus workspace `{spec.prometheus_alias}`, "
            "not to CloudWatch: open them in Managed Grafana or query the workspace. "
            f"[Prometheus workspaces]({_console(region, 'prometheus/home')}?region={region}"
            "#/workspaces) | "
            f"[HyperPod clusters]({_console(region, 'sagemaker/home')}?region={region}"
            "#/cluster-management)"
        )
    else:
        health = f"## HyperPod\n{spec.bu} has no HyperPod cluster."
    widgets.append(_text(health, y=y, x=0))
    widgets.append(
        _text(
            "## Training jobs by status\nNo CloudWatch metric counts training jobs by status: "
            "HyperPod jobs are Kubernetes objects (Kueue's admitted/pending workloads are in the "
            "Prometheus workspace), managed jobs publish only per-job utilisation in "
            "`/aws/sagemaker/TrainingJobs`. "
            f"[Training jobs]({_console(region, 'sagemaker/home')}?region={region}#/jobs)",
            y=y,
            x=12,
        )
    )
    y += 4
    widgets.append(
        _metric_widget(
            "Estimated charges, whole account (AWS/Billing, us-east-1 only)",
            BILLING_REGION,
            [["AWS/Billing", "EstimatedCharges", "Currency", "USD", {}]],
            stat="Maximum",
            y=y,
            x=0,
            width=WIDTH,
            label="USD, month to date",
            annotations={
                "horizontal": [
                    {"label": f"{spec.bu} monthly budget", "value": spec.monthly_limit_usd}
                ]
            },
        )
    )
    return {"widgets": widgets}


def widget_titles(body: dict[str, Any]) -> list[str]:
    """Each widget's title, or a text widget's first line (the render and its tests)."""
    titles = []
    for widget in body["widgets"]:
        properties = widget["properties"]
        if widget["type"] == "metric":
            titles.append(properties["title"])
        else:
            titles.append(properties["markdown"].splitlines()[0].lstrip("# "))
    return titles


class PlatformDashboard(Construct):
    """The BU's dashboard (L1: the body is the data :func:`dashboard_body` returns)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, dashboard_name: str, spec: DashboardSpec
    ) -> None:
        super().__init__(scope, construct_id)
        self.body = dashboard_body(spec)
        self.dashboard = cloudwatch.CfnDashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name,
            dashboard_body=json.dumps(self.body, separators=(",", ":")),
        )
