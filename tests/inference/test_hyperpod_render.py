"""The HyperPod target: `InferenceEndpointConfig` objects rendered from the same ServingConfig,
validated against the operator's published CRD schema (vendored in inference/hyperpod/crds/), and
the `python -m inference.hyperpod render|apply` CLI (apply through a stand-in CustomObjectsApi)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from config.hyperpod_endpoints import hyperpod_endpoint
from config.loader import CONFIG_DIR, load_file
from inference.hyperpod import (
    GROUP,
    MIG_READY,
    PLURAL,
    SCHEMA,
    VERSION,
    HyperPodEndpoint,
    RenderError,
    build_endpoint_config,
    validate,
)
from inference.hyperpod.__main__ import main, parse_args
from inference.serving import ServedEndpoint, ServingConfig, image_uri

FRAUD = CONFIG_DIR / "fraud.yaml"


def spec(**fields: Any) -> HyperPodEndpoint:
    values: dict[str, Any] = {
        "endpoint_name": "fraud-qwen3-tools-hp",
        "serving": ServingConfig(instance_type="ml.g5.12xlarge", tensor_parallel_degree=2),
        "image": image_uri("us-east-1"),
        "bucket": "fraud-models-111111111111-us-east-1",
        "region": "us-east-1",
        "model_prefix": "qwen3-4b-tools/v1/",
        "replicas": 2,
        **fields,
    }
    return HyperPodEndpoint(served=ServedEndpoint(**values), namespace="hyperpod-ns-fraud")


def mig_spec() -> HyperPodEndpoint:
    return spec(serving=ServingConfig(instance_type="ml.p5.48xlarge"), mig_profile="3g.40gb")


def test_vendored_schema_is_the_operators_v1_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["properties"]["spec"]["required"] == ["modelName", "modelSourceConfig", "worker"]
    assert "endpointName" in schema["properties"]["spec"]["properties"]
    readme = Path(__file__).parents[2] / "inference" / "hyperpod" / "crds" / "README.md"
    assert (
        readme.read_text().count("011ca927123e02b35a399935bbb3ab1905fe33c7") == 2
    )  # the source URL and the commit it was taken from


def test_whole_gpu_endpoint_matches_the_crd_and_the_serving_config() -> None:
    rendered = build_endpoint_config(spec())
    assert validate(rendered) == []
    assert rendered["apiVersion"] == "inference.sagemaker.aws.amazon.com/v1"
    assert rendered["kind"] == "InferenceEndpointConfig"
    body = rendered["spec"]
    # endpointName registers a SageMaker endpoint: the smoke command works on both targets.
    assert body["endpointName"] == body["modelName"] == "fraud-qwen3-tools-hp"
    assert body["instanceType"] == "ml.g5.12xlarge"
    assert body["replicas"] == 2
    assert body["modelSourceConfig"] == {
        "modelSourceType": "s3",
        "s3Storage": {"bucketName": "fraud-models-111111111111-us-east-1", "region": "us-east-1"},
        "modelLocation": "qwen3-4b-tools/v1",
        "prefetchEnabled": True,
    }
    worker = body["worker"]
    assert worker["image"] == image_uri("us-east-1")
    env = {e["name"]: e["value"] for e in worker["environmentVariables"]}
    assert env == spec().served.serving.to_environment()  # the SageMaker model's, too
    assert worker["resources"] == {
        "limits": {"nvidia.com/gpu": "2"},
        "requests": {"nvidia.com/gpu": "2"},
    }
    assert worker["modelVolumeMount"]["mountPath"] == env["HF_MODEL_ID"] == "/opt/ml/model"
    assert worker["modelInvocationPort"]["containerPort"] == 8080
    assert "nodeAffinity" not in body


def test_mig_slice_endpoint_matches_the_crd() -> None:
    rendered = build_endpoint_config(mig_spec())
    assert validate(rendered) == []
    body = rendered["spec"]
    assert body["worker"]["resources"] == {
        "limits": {"nvidia.com/mig-3g.40gb": "1"},
        "requests": {"nvidia.com/mig-3g.40gb": "1"},
    }
    assert "nvidia.com/gpu" not in str(body["worker"]["resources"])  # never mixed with MIG
    # instanceType and nodeAffinity are mutually exclusive in the CRD: the type moves in here.
    assert "instanceType" not in body
    (term,) = body["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {e["key"]: e["values"] for e in term["matchExpressions"]} == {
        "node.kubernetes.io/instance-type": ["ml.p5.48xlarge"],
        MIG_READY: ["success"],
    }


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (lambda m: m["spec"]["worker"].pop("image"), "spec.worker: 'image' is a required"),
        (
            lambda m: m["spec"].update(endpointName="Fraud_Qwen3"),
            "spec.endpointName: 'Fraud_Qwen3'",
        ),
        (
            lambda m: m["spec"]["modelSourceConfig"].update(modelSourceType="gcs"),
            "spec.modelSourceConfig.modelSourceType: 'gcs' is not one of",
        ),
        (lambda m: m["spec"].update(replicas="two"), "spec.replicas: 'two' is not of type"),
    ],
)
def test_schema_refuses_what_the_operator_would(break_it: Any, where: str) -> None:
    broken = copy.deepcopy(build_endpoint_config(spec()))
    break_it(broken)
    problems = validate(broken)
    assert any(p.startswith(where) for p in problems), problems


def test_mig_with_tensor_parallelism_is_refused() -> None:
    serving = ServingConfig(instance_type="ml.p5.48xlarge", tensor_parallel_degree=2)
    with pytest.raises(RenderError, match="tensor_parallel_degree: a MIG slice is one device"):
        build_endpoint_config(spec(serving=serving, mig_profile="3g.40gb"))


def test_fraud_example_renders_its_hyperpod_endpoint() -> None:
    """The CLI deploys the endpoint's one translation (`Endpoint.served`, which the endpoints
    stack builds its SageMaker endpoints from), adding only where it goes on the cluster."""
    endpoint = hyperpod_endpoint(FRAUD, "qwen3-tools-hp", "default")
    cfg, _ = load_file(FRAUD)
    assert cfg is not None
    assert cfg.endpoints is not None
    item = {e.name: e for e in cfg.endpoints.items}["qwen3-tools-hp"]
    assert endpoint.served.endpoint_name == "fraud-qwen3-tools-hp"
    assert endpoint.served.serving == item.serving_config()
    assert endpoint.served.bucket == cfg.naming.bucket("models")
    assert endpoint.served.replicas == item.autoscaling.min_capacity
    assert (endpoint.namespace, endpoint.eks_cluster) == ("default", cfg.naming.resource("eks"))
    assert validate(build_endpoint_config(endpoint)) == []


def test_mig_endpoint_from_a_bu_config(tmp_path: Path) -> None:
    """A MIG endpoint on the slice the BU's cluster layout offers for its instance type (the
    config refuses any other since it checks slices per type)."""
    raw = yaml.safe_load(FRAUD.read_text())
    (group,) = [g for g in raw["hyperpod"]["gpu_groups"] if g.get("mig")]
    profile = group["mig"].removeprefix("all-")
    raw.pop("pipeline")  # it deploys to an endpoint this test replaces
    raw["endpoints"]["items"] = [
        {
            "name": "qwen3-mig",
            "model": "qwen3-4b-tools/v1/",
            "target": "hyperpod",
            "instance_type": group["instance_type"],
            "mig_profile": profile,
        }
    ]
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump(raw))
    rendered = build_endpoint_config(hyperpod_endpoint(path, "qwen3-mig", "default"))
    assert validate(rendered) == []
    assert rendered["spec"]["worker"]["resources"]["limits"] == {f"nvidia.com/mig-{profile}": "1"}
    assert "instanceType" not in rendered["spec"], "the node affinity carries the type"


def test_render_cli_writes_valid_yaml(tmp_path: Path) -> None:
    out = tmp_path / "iec.yaml"
    argv = ["render", "--config", str(FRAUD), "--endpoint", "qwen3-tools-hp", "--output", str(out)]
    assert main(parse_args(argv)) == 0
    rendered = yaml.safe_load(out.read_text())
    assert validate(rendered) == []
    assert rendered["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("qwen3-tools", "target is sagemaker; `cdk deploy` creates it"),
        ("nope", "no endpoint 'nope'"),
    ],
)
def test_cli_refuses_what_it_cannot_render(
    endpoint: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(parse_args(["render", "--config", str(FRAUD), "--endpoint", endpoint])) == 2
    assert message in capsys.readouterr().err


def test_help_lists_examples_on_their_own_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    description, _, rest = out.partition("positional arguments:")
    assert "--config" not in description, "examples no longer run into the prose"
    example = "python -m inference.hyperpod apply --config config/fraud.yaml --endpoint "
    assert f"\n  {example}qwen3-tools-hp\n" in rest
    with pytest.raises(SystemExit):
        parse_args(["apply", "--help"])
    assert f"examples:\n  {example}qwen3-tools-hp\n" in capsys.readouterr().out


def test_apply_without_a_kubeconfig_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubernetes.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "none"))
    argv = ["apply", "--config", str(FRAUD), "--endpoint", "qwen3-tools-hp"]
    assert main(parse_args(argv)) == 1
    err = capsys.readouterr().err
    cfg, _ = load_file(FRAUD)
    assert cfg is not None
    fix = f"aws eks update-kubeconfig --region {cfg.region} --name {cfg.naming.resource('eks')}"
    assert err.startswith(f"error: no kubeconfig: run {fix} (")
    assert err.count("\n") == 1
    assert "Traceback" not in err


class FakeCustomObjects:
    """Stands in for kubernetes' CustomObjectsApi: records calls, answers like the API server."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    def _check(self, group: str, version: str, plural: str) -> None:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)

    def create_namespaced_custom_object(
        self, *, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("create")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = copy.deepcopy(body)
        self.objects[key]["metadata"]["resourceVersion"] = "1"
        return self.objects[key]

    def get_namespaced_custom_object(
        self, *, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("get")
        return self.objects[(namespace, name)]

    def replace_namespaced_custom_object(
        self,
        *,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("replace")
        current = self.objects[(namespace, name)]
        assert body["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
        self.objects[(namespace, name)] = copy.deepcopy(body)
        return body


def test_apply_creates_then_replaces(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeCustomObjects()
    argv = ["apply", "--config", str(FRAUD), "--endpoint", "qwen3-tools-hp", "--namespace", "ml"]
    assert main(parse_args(argv), api=api) == 0
    assert "created InferenceEndpointConfig ml/fraud-qwen3-tools-hp" in capsys.readouterr().out
    assert main(parse_args(argv), api=api) == 0
    out = capsys.readouterr().out
    assert "replaced InferenceEndpointConfig ml/fraud-qwen3-tools-hp" in out
    assert "python -m inference.smoke --endpoint fraud-qwen3-tools-hp" in out
    assert api.calls == ["create", "create", "get", "replace"]
    assert validate(api.objects[("ml", "fraud-qwen3-tools-hp")]) == []


def test_apply_surfaces_other_api_errors() -> None:
    class Forbidden(FakeCustomObjects):
        def create_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    argv = ["apply", "--config", str(FRAUD), "--endpoint", "qwen3-tools-hp"]
    with pytest.raises(ApiException, match="Forbidden"):
        main(parse_args(argv), api=Forbidden())
