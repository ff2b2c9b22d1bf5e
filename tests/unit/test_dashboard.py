"""The BU dashboard's body, and its picture: ``tools/render_dashboard.py`` renders the current
body, and docs/dashboard.png was rendered from it (the PNG records the body's SHA-256)."""

from pathlib import Path

from PIL import Image

from config.loader import CONFIG_DIR, load_file
from platform_constructs.dashboard import DashboardSpec, dashboard_body, widget_titles
from stacks.governance_stack import dashboard_spec
from tools.render_dashboard import body_digest, main, parse_args, render

ROOT = Path(__file__).resolve().parents[2]
PICTURE = ROOT / "docs" / "dashboard.png"


def credit_body() -> dict:
    config, errors = load_file(CONFIG_DIR / "credit.yaml")
    assert config is not None, errors
    return dashboard_body(dashboard_spec(config))


def test_the_script_renders_the_current_body(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.png"
    assert main(parse_args(["--config", str(CONFIG_DIR / "credit.yaml"), "--out", str(out)])) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 1000
        assert image.height > 600
        assert image.text["Description"] == body_digest(credit_body())  # type: ignore[attr-defined]


def test_the_committed_picture_is_of_the_current_body() -> None:
    """Stale picture? Run: make dashboard-picture"""
    with Image.open(PICTURE) as image:
        assert image.text["Description"] == body_digest(credit_body())  # type: ignore[attr-defined]


def test_every_widget_is_drawn_in_the_grid() -> None:
    body = credit_body()
    assert widget_titles(body) == [
        "credit: ML platform",
        "Invocations",
        "4XX and 5XX errors",
        "ModelLatency and OverheadLatency (p90)",
        "GPU, GPU memory and memory utilisation",
        "HyperPod `credit-hyperpod`: cluster and node health",
        "Training jobs by status",
        "Estimated charges, whole account (AWS/Billing, us-east-1 only)",
    ]
    for widget in body["widgets"]:
        assert widget["x"] + widget["width"] <= 24


def test_a_bu_without_endpoints_or_cluster_gets_text_not_empty_graphs(tmp_path: Path) -> None:
    spec = DashboardSpec(
        bu="lean", region="eu-west-1", endpoint_names=[], monthly_limit_usd=500,
        prometheus_alias=None, hyperpod_cluster=None,
    )  # fmt: skip
    body = dashboard_body(spec)
    metric = [w for w in body["widgets"] if w["type"] == "metric"]
    # Only the billing graph, which lives in us-east-1 whatever the BU's region.
    assert [w["properties"]["region"] for w in metric] == ["us-east-1"]
    assert "lean has no HyperPod cluster." in body["widgets"][1]["properties"]["markdown"]
    assert render(body, tmp_path / "lean.png", title="lean-platform").stat().st_size > 0


def test_endpoint_metrics_use_both_dimensions() -> None:
    endpoint_widgets = [
        w
        for w in credit_body()["widgets"]
        if w["type"] == "metric" and w["properties"]["metrics"][0][0] != "AWS/Billing"
    ]
    assert len(endpoint_widgets) == 4
    for widget in endpoint_widgets:
        for metric in widget["properties"]["metrics"]:
            assert metric[2:6] == [
                "EndpointName",
                "credit-qwen3-tools",
                "VariantName",
                "AllTraffic",
            ]
