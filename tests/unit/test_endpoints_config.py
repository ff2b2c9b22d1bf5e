"""The ``endpoints`` section: valid endpoints pass, and each mistake names file and field.

The serving options are validated by ``inference.serving.ServingConfig`` itself, so these cases
also prove the config carries no second copy of LMI's rules.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.bu_configs import add_hyperpod

from config.__main__ import main as config_cli
from config.__main__ import parse_args as config_args
from config.endpoints import Endpoint
from config.loader import load_all
from config.schema import BusinessUnitConfig
from inference.serving import ServingConfig

BUCKET = "payments-models-333333333333-us-west-2"  # the VALID BU's models bucket


def endpoint(**fields: Any) -> dict[str, Any]:
    return {"name": "qwen3", "model": "qwen3-4b-tools/v1/", **fields}


def with_endpoints(raw: dict[str, Any], *items: dict[str, Any], **section: Any) -> dict[str, Any]:
    raw["endpoints"] = {"items": list(items), **section}
    return raw


def errors_of(write_bu: Callable[..., Path], raw: dict[str, Any]) -> list[str]:
    path = write_bu(raw)
    loaded, errors = load_all([path])
    assert errors, "the config should have been rejected"
    assert loaded == []  # nothing to synthesize
    return [str(e).removeprefix(f"{path}: ") for e in errors]


def test_defaults_serve_qwen3_4b_on_one_gpu(valid_bu: dict[str, Any]) -> None:
    cfg = BusinessUnitConfig.model_validate(with_endpoints(valid_bu, endpoint()))
    assert cfg.endpoints is not None
    item = cfg.endpoints.items[0]
    assert (item.target, item.instance_type) == ("sagemaker", "ml.g5.2xlarge")
    assert item.model_uri(cfg.naming) == f"s3://{BUCKET}/qwen3-4b-tools/v1/"
    assert item.serving_config() == ServingConfig(instance_type="ml.g5.2xlarge")
    assert item.target_concurrency == 24  # 75 % of the 32 sequences vLLM keeps in flight
    assert item.autoscaling.scale_in_cooldown_seconds > item.autoscaling.scale_out_cooldown_seconds


def test_full_uri_in_the_bu_bucket_and_serving_options(valid_bu: dict[str, Any]) -> None:
    raw = with_endpoints(
        valid_bu,
        endpoint(
            model=f"s3://{BUCKET}/qwen3/v2",
            instance_type="g6e.12xlarge",
            serving={"tensor_parallel_degree": 4, "max_model_len": 32768},
        ),
    )
    item = BusinessUnitConfig.model_validate(raw).endpoints.items[0]  # type: ignore[union-attr]
    assert item.model == f"s3://{BUCKET}/qwen3/v2/"  # an S3Prefix ends in '/'
    env = item.serving_config().to_environment()
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert env["HF_MODEL_ID"] == "/opt/ml/model"  # SageMaker copies the prefix there


# (what is wrong, endpoint fields or section, the error line after "file: ")
CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "model prefix outside the BU's bucket",
        endpoint(model="s3://fraud-models-111111111111-us-east-1/qwen3/v1/"),
        "endpoints.items.0.model: 's3://fraud-models-111111111111-us-east-1/qwen3/v1/' is "
        f"outside this BU's models bucket s3://{BUCKET}/",
    ),
    (
        "min over max",
        endpoint(autoscaling={"min_capacity": 3, "max_capacity": 2}),
        "endpoints.items.0.autoscaling.min_capacity: 3 is over max_capacity 2",
    ),
    (
        "unknown instance type",
        endpoint(instance_type="ml.m5.xlarge"),
        "endpoints.items.0.instance_type: 'ml.m5.xlarge' is not a known GPU instance type",
    ),
    (
        "TP over the instance's GPUs",
        endpoint(serving={"tensor_parallel_degree": 4}),
        "endpoints.items.0.serving.tensor_parallel_degree: 4 exceeds the 1 GPU(s) of ml.g5.2xlarge",
    ),
    (
        "hyperpod target without a hyperpod section",
        endpoint(target="hyperpod"),
        "endpoints.items.0.target: hyperpod target, but this BU has no hyperpod section",
    ),
    (
        "unknown field",
        endpoint(replicas=2),
        "endpoints.items.0.replicas: unknown field (not in the schema)",
    ),
    (
        "unknown serving option",
        endpoint(serving={"max_tokens": 512}),
        "endpoints.items.0.serving.max_tokens: unknown serving option",
    ),
    (
        "serving option owned by a typed field",
        endpoint(serving={"extra_options": {"max_model_len": "4096"}}),
        "endpoints.items.0.serving.extra_options.max_model_len: set it with the typed field "
        "max_model_len",
    ),
    (
        "model set under serving",
        endpoint(serving={"model": "Qwen/Qwen3-4B"}),
        "endpoints.items.0.serving.model: set on the endpoint (model), not here",
    ),
    (
        "tool parser without tool calling",
        endpoint(serving={"enable_tool_calling": False}),
        "endpoints.items.0.serving.tool_call_parser: set while enable_tool_calling is false",
    ),
    (
        "MIG slice on SageMaker",
        endpoint(mig_profile="3g.40gb"),
        "endpoints.items.0.mig_profile: MIG slices exist only on HyperPod",
    ),
    (
        "bad model location",
        endpoint(model="/fsx/models/qwen3"),
        "endpoints.items.0.model: '/fsx/models/qwen3' is neither s3://<models bucket>/<prefix>/",
    ),
    (
        "name not a DNS label",
        endpoint(name="Qwen3_Tools"),
        "endpoints.items.0.name: 'Qwen3_Tools' is not lowercase letters, digits and hyphens",
    ),
    (
        "endpoint name over 63 characters",
        endpoint(name="q" * 60),
        f"endpoints.items.0.name: endpoint name 'payments-{'q' * 60}' is over 63 characters",
    ),
    (
        "autoscaling target beyond the batch",
        endpoint(autoscaling={"target_concurrent_requests": 64}),
        "endpoints.items.0.autoscaling.target_concurrent_requests: 64 is over "
        "serving.max_concurrent_sequences 32",
    ),
    (
        "datapoints over periods",
        endpoint(alarms={"evaluation_periods": 2, "datapoints_to_alarm": 3}),
        "endpoints.items.0.alarms.datapoints_to_alarm: 3 is over evaluation_periods 2",
    ),
    (
        "sampling over 100 percent",
        endpoint(data_capture={"sampling_percent": 150}),
        "endpoints.items.0.data_capture.sampling_percent: Input should be less than or equal "
        "to 100",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invalid_endpoint_names_file_and_field(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], case: tuple[str, Any, str]
) -> None:
    _, item, expected = case
    lines = errors_of(write_bu, with_endpoints(valid_bu, item))
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_duplicate_endpoint_name(valid_bu: dict[str, Any], write_bu: Callable[..., Path]) -> None:
    raw = with_endpoints(valid_bu, endpoint(), endpoint(model="qwen3/v2/"))
    assert errors_of(write_bu, raw) == ["endpoints.items.1.name: duplicate endpoint name 'qwen3'"]


def test_empty_endpoint_list(valid_bu: dict[str, Any], write_bu: Callable[..., Path]) -> None:
    lines = errors_of(write_bu, with_endpoints(valid_bu))
    assert lines == ["endpoints.items: List should have at least 1 item after validation, not 0"]


def hyperpod_bu(
    valid_bu: dict[str, Any], p5_mig: str | dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A BU with the test cluster (p5en all-1g.18gb, p5 whole) and one HyperPod endpoint on
    ml.p5.48xlarge; ``p5_mig`` cuts the p5 group too (its whole-GPU quotas go)."""
    add_hyperpod(valid_bu)
    if p5_mig is not None:
        hp = valid_bu["hyperpod"]
        hp["gpu_groups"][1]["mig"] = p5_mig
        hp["quotas"] = [q for q in hp["quotas"] if q["instance_type"] != "ml.p5.48xlarge"]
    item = endpoint(**{"target": "hyperpod", "instance_type": "ml.p5.48xlarge", **fields})
    return with_endpoints(valid_bu, item)


def validate_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`python -m config validate <path>`: its exit code and its error lines."""
    code = config_cli(config_args(["validate", str(path)]))
    return code, capsys.readouterr().err.splitlines()


def test_mig_slice_not_on_the_layout_of_its_type(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    lines = errors_of(write_bu, hyperpod_bu(valid_bu, "all-1g.10gb", mig_profile="3g.40gb"))
    assert lines == [
        "endpoints.items.0.mig_profile: 3g.40gb is not on the HyperPod cluster's MIG layout of "
        "ml.p5.48xlarge (offered there: 1g.10gb)"
    ]


def test_mig_slice_of_another_types_layout_is_refused(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The cluster has 1g.18gb slices, but on its p5en group: a p5 pod asking for one never
    schedules."""
    path = write_bu(hyperpod_bu(valid_bu, mig_profile="1g.18gb"))
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: endpoints.items.0.mig_profile: 1g.18gb is not on the HyperPod cluster's "
            "MIG layout of ml.p5.48xlarge (offered there: none)"
        ],
    )


def test_whole_gpu_on_an_all_mig_type_is_refused(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    raw = hyperpod_bu(valid_bu)
    raw["endpoints"]["items"][0]["instance_type"] = "ml.p5en.48xlarge"  # all-1g.18gb, no profile
    path = write_bu(raw)
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: endpoints.items.0.mig_profile: every ml.p5en.48xlarge group of the "
            "HyperPod cluster is MIG-partitioned, so a whole GPU cannot be requested: name one "
            "of its slices (1g.18gb)"
        ],
    )


@pytest.mark.parametrize(
    ("instance_type", "p5_mig", "mig_profile"),
    [
        ("ml.p5.48xlarge", "all-3g.40gb", "3g.40gb"),
        ("ml.p5.48xlarge", {"profiles": {"3g.40gb": 1, "4g.40gb": 1}}, "4g.40gb"),
        ("ml.p5.48xlarge", None, None),  # a whole GPU of the whole-GPU group
        ("ml.p5en.48xlarge", None, "1g.18gb"),
    ],
)
def test_what_the_types_layout_offers_is_accepted(
    valid_bu: dict[str, Any], instance_type: str, p5_mig: Any, mig_profile: str | None
) -> None:
    raw = hyperpod_bu(valid_bu, p5_mig, instance_type=instance_type, mig_profile=mig_profile)
    cfg = BusinessUnitConfig.model_validate(raw)
    item = cfg.endpoints.items[0]  # type: ignore[union-attr]
    assert (item.target, item.instance_type, item.mig_profile) == (
        "hyperpod",
        instance_type,
        mig_profile,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"mig_profile": "1g.10gb"},
            "endpoints.items.0.mig_profile: 1g.10gb holds 9.0 GiB at gpu_memory_utilization 0.9",
        ),
        (
            {"mig_profile": "3g.40gb", "serving": {"tensor_parallel_degree": 2}},
            "endpoints.items.0.serving.tensor_parallel_degree: a MIG slice is one device: use 1",
        ),
    ],
)
def test_mig_slice_must_hold_the_model(
    valid_bu: dict[str, Any],
    write_bu: Callable[..., Path],
    fields: dict[str, Any],
    expected: str,
) -> None:
    layout = {"profiles": {"1g.10gb": 1, "3g.40gb": 1}}
    lines = errors_of(write_bu, hyperpod_bu(valid_bu, layout, **fields))
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines


def blackwell_bu(valid_bu: dict[str, Any], mig: str | None = None, **fields: Any) -> dict[str, Any]:
    """``hyperpod_bu`` with its whole-GPU group (and that group's quotas) on ml.p6-b200.48xlarge
    (cut into ``mig`` slices when given) and its endpoint on that type."""
    raw = hyperpod_bu(valid_bu, instance_type="ml.p6-b200.48xlarge", **fields)
    hp = raw["hyperpod"]
    hp["gpu_groups"][1]["instance_type"] = "ml.p6-b200.48xlarge"
    if mig is not None:
        hp["gpu_groups"][1]["mig"] = mig
        hp["quotas"] = [q for q in hp["quotas"] if q["instance_type"] != "ml.p5.48xlarge"]
    for quota in hp["quotas"]:
        if quota["instance_type"] == "ml.p5.48xlarge":
            quota["instance_type"] = "ml.p6-b200.48xlarge"
    return raw


@pytest.mark.parametrize(
    ("mig", "fields"),
    [
        (None, {"serving": {"tensor_parallel_degree": 8}}),  # whole B200 GPUs
        ("all-3g.90gb", {"mig_profile": "3g.90gb"}),  # one slice of the group's layout
    ],
)
def test_endpoint_on_a_p6_b200_group_is_accepted(
    valid_bu: dict[str, Any], mig: str | None, fields: dict[str, Any]
) -> None:
    """An endpoint on ml.p6-b200.48xlarge, which the BU's GPU groups allow (HyperPod offers the
    type), validates: config's GPU table had the type but serving's did not, so ServingConfig
    refused it. The one table (core/accelerators.py) has it with the EC2 instance type guide's
    figures ("Specifications for Amazon EC2 accelerated computing instances",
    docs.aws.amazon.com/ec2/latest/instancetypes/ac.html: p6-b200.48xlarge, "8 x NVIDIA B200
    GPU", "1432 GiB (8 x 179 GiB)"; p6-b300.48xlarge, "8 x NVIDIA B300 GPU", "2148 GiB (8 x 268
    GiB)") and the HyperPod SDK's B200 MIG profiles."""
    cfg = BusinessUnitConfig.model_validate(blackwell_bu(valid_bu, mig, **fields))
    item = cfg.endpoints.items[0]  # type: ignore[union-attr]
    assert (item.instance_type, item.mig_profile) == (
        "ml.p6-b200.48xlarge",
        fields.get("mig_profile"),
    )
    shape = item.serving_config().gpu_shape
    assert (shape.gpus, shape.gpu_memory_gib) == (8, 179)
    served = item.served(cfg.naming)
    assert served.serving.instance_type == "ml.p6-b200.48xlarge"
    assert served.mig_profile == fields.get("mig_profile")


def test_p6_b200_endpoint_still_needs_a_group_of_its_type(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    """Knowing the type is not enough: the BU's GPU groups must have it."""
    raw = hyperpod_bu(valid_bu, instance_type="ml.p6-b200.48xlarge")
    assert errors_of(write_bu, raw) == [
        "endpoints.items.0.instance_type: ml.p6-b200.48xlarge is in none of the HyperPod "
        "cluster's GPU groups (ml.p5.48xlarge, ml.p5en.48xlarge): its pods would never schedule"
    ]


def test_serving_config_is_the_inference_one() -> None:
    item = Endpoint(name="e", model="m/", instance_type="g6.12xlarge", serving={"dtype": "fp16"})
    config = item.serving_config()
    assert isinstance(config, ServingConfig)
    assert config.instance_type == "ml.g6.12xlarge"
    assert config.dtype == "fp16"


def test_hyperpod_endpoint_on_an_instance_type_the_cluster_lacks(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    raw = hyperpod_bu(valid_bu)
    raw["endpoints"]["items"][0]["instance_type"] = "ml.g5.12xlarge"
    assert errors_of(write_bu, raw) == [
        "endpoints.items.0.instance_type: ml.g5.12xlarge is in none of the HyperPod cluster's "
        "GPU groups (ml.p5.48xlarge, ml.p5en.48xlarge): its pods would never schedule"
    ]


def test_inference_addon_versions_are_eks_addon_versions(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    addons = {"metrics_server": "0.7.2", "s3_csi_driver": "v1.15.0-eksbuild.1\n"}
    path = write_bu(with_endpoints(valid_bu, endpoint(), hyperpod_addons=addons))
    what = "is not an EKS add-on version like v1.19.5-eksbuild.1"
    assert validate_cli(path, capsys) == (
        1,
        [
            f"{path}: endpoints.hyperpod_addons.s3_csi_driver: 'v1.15.0-eksbuild.1\\n' {what}",
            f"{path}: endpoints.hyperpod_addons.metrics_server: '0.7.2' {what}",
        ],
    )


NOT_A_PREFIX = "is neither s3://<models bucket>/<prefix>/ nor a key prefix inside the models "
NOT_A_PREFIX += "bucket (like qwen3-4b-tools/v1/): "
WILDCARD = "'*' and '?' are wildcards in the endpoint's IAM grant (`*/` is the whole bucket)"
RELATIVE = "'.' and '..' segments are relative paths, not S3 keys"


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("*/", WILDCARD),
        ("*", WILDCARD),
        ("qwen3/*/", WILDCARD),
        ("qwen3/v?/", WILDCARD),
        (f"s3://{BUCKET}/*/", WILDCARD),
        ("../fraud/qwen3/", RELATIVE),
        ("qwen3/../../", RELATIVE),
        ("./qwen3/", RELATIVE),
        ("/qwen3/v1/", "it starts with '/' (an absolute path; S3 keys have no root)"),
        ("qwen3//v1/", "use letters, digits and ! _ . ' ( ) - between single slashes"),
        ("qwen3/v1/\n", "use letters, digits and ! _ . ' ( ) - between single slashes"),
    ],
)
def test_model_prefix_names_one_model_only(
    valid_bu: dict[str, Any],
    write_bu: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    model: str,
    why: str,
) -> None:
    path = write_bu(with_endpoints(valid_bu, endpoint(model=model)))
    assert validate_cli(path, capsys) == (
        1,
        [f"{path}: endpoints.items.0.model: {model!r} {NOT_A_PREFIX}{why}".replace("\n", "\\n")],
    )


def test_every_serving_problem_is_reported_at_once(
    write_bu: Callable[..., Path], valid_bu: dict[str, Any]
) -> None:
    """Two wrong serving options are two lines, not the first of them: a user fixes the file
    in one pass."""
    raw = with_endpoints(valid_bu, endpoint(serving={"max_tokens": 512, "dtype": "int3"}))
    errors = errors_of(write_bu, raw)
    assert sorted(e.split(":")[0] for e in errors) == [
        "endpoints.items.0.serving.dtype",
        "endpoints.items.0.serving.max_tokens",
    ]
