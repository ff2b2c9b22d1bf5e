"""Render a BU's CloudWatch dashboard body to a PNG (docs/dashboard.png): the widgets where the
dashboard puts them, titled as on the console, each metric line a synthetic series (the
picture shows the layout and what is plotted, not real traffic).

    make dashboard-picture   # = .venv/bin/python tools/render_dashboard.py
                             #   --config config/credit.yaml --out docs/dashboard.png

The PNG's ``Description`` text chunk holds the SHA-256 of the body it was drawn from, so a test
can tell a stale picture from a current one.
"""

import hashlib
import json
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python tools/render_dashboard.py` runs with tools/ on the path

try:
    import matplotlib
except ModuleNotFoundError:  # `make synth` installs only what synthesis needs
    raise SystemExit(
        "render_dashboard: needs matplotlib, a dev package: run `make dashboard-picture` "
        "(it installs the dev packages first)"
    ) from None

matplotlib.use("Agg")  # no display; before pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from config.loader import load_file  # noqa: E402
from core import cli  # noqa: E402
from platform_constructs.dashboard import dashboard_body  # noqa: E402
from stacks.governance_stack import dashboard_spec  # noqa: E402

GRID_W = 24  # CloudWatch dashboard grid units
UNIT_IN = 0.62  # inches per grid unit
ROW_IN = 0.42
POINTS = 48  # four hours of 5-minute periods


def body_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _series(seed: int) -> list[float]:
    """A deterministic, plausible-looking line (no randomness: the picture is reproducible)."""
    phase, scale = seed * 0.7, 1 + (seed % 5) * 0.35
    return [
        scale * (2 + math.sin(i / 6 + phase) + 0.4 * math.sin(i / 1.7 + 2 * phase))
        for i in range(POINTS)
    ]


def _label(metric: list[Any]) -> str:
    name = metric[1]
    dims = dict(zip(metric[2:-1:2], metric[3::2], strict=False)) if len(metric) > 2 else {}
    return f"{name} {dims.get('EndpointName', dims.get('Currency', ''))}".strip()


def _metric(ax: Axes, properties: dict[str, Any]) -> None:
    metrics = properties["metrics"]
    for i, metric in enumerate(metrics):
        ax.plot(_series(i + len(properties["title"])), linewidth=1.2, label=_label(metric))
    for line in properties.get("annotations", {}).get("horizontal", []):
        top = max(max(_series(i + len(properties["title"]))) for i in range(len(metrics)))
        ax.axhline(top * 1.15, color="tab:red", linestyle="--", linewidth=1)
        ax.text(1, top * 1.17, line["label"], color="tab:red", fontsize=7)
    ax.set_title(properties["title"], fontsize=9, loc="left", fontweight="bold")
    label = properties.get("yAxis", {}).get("left", {}).get("label", "")
    ax.set_ylabel(f"{label}\n({properties['stat']}, {properties['region']})", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_xticks([])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)


def _text(ax: Axes, properties: dict[str, Any], width_units: int) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f4f6f8")
    chars = int(width_units * 8.5)
    lines = []
    for raw in properties["markdown"].splitlines():
        lines += textwrap.wrap(raw.lstrip("# "), chars) or [""]
    ax.text(0.01, 0.95, "\n".join(lines), va="top", ha="left", fontsize=7, wrap=True,
            transform=ax.transAxes)  # fmt: skip


def render(body: dict[str, Any], out: Path, *, title: str) -> Path:
    widgets = body["widgets"]
    rows = max(w["y"] + w["height"] for w in widgets)
    fig = plt.figure(figsize=(GRID_W * UNIT_IN, rows * ROW_IN + 0.6), dpi=100)
    fig.suptitle(f"{title} (layout preview, synthetic data)", fontsize=11, x=0.01, ha="left")
    top = rows * ROW_IN / (rows * ROW_IN + 0.6)
    for widget in widgets:
        left = widget["x"] / GRID_W + 0.005
        width = widget["width"] / GRID_W - 0.045
        height = widget["height"] / rows * top - 0.04
        bottom = top - (widget["y"] + widget["height"]) / rows * top + 0.02
        ax = fig.add_axes((left + 0.035, bottom, width, height))
        if widget["type"] == "metric":
            _metric(ax, widget["properties"])
        else:
            _text(ax, widget["properties"], widget["width"])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Description": body_digest(body), "Software": "render_dashboard"})
    plt.close(fig)
    return out


@dataclass(frozen=True)
class RenderArgs:
    config: Path = field(
        default=ROOT / "config" / "credit.yaml", metadata={"help": "a BU with a dashboard"}
    )
    out: Path = field(default=ROOT / "docs" / "dashboard.png", metadata={"help": "PNG to write"})


parse_args = cli.args_parser(RenderArgs, __doc__, module="tools.render_dashboard")


def main(args: RenderArgs) -> int:
    config, errors = load_file(args.config)
    if config is None:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    if config.governance is None or not config.governance.dashboard:
        print(f"{args.config}: no governance.dashboard, nothing to render", file=sys.stderr)
        return 1
    body = dashboard_body(dashboard_spec(config))
    print(render(body, args.out, title=config.naming.resource("platform")))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
