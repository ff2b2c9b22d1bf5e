"""The LMI serving-config builder: the environment it produces and the settings it refuses."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.accelerators import INSTANCE_GPUS
from inference import serving
from inference.serving import (
    DIGEST,
    DIGEST_FIELDS,
    DIGEST_REGION,
    LMI_VERSION,
    ServingConfig,
    image_uri,
    main,
    parse_args,
    pinned_image_table,
)

DOCKERFILE = Path(__file__).resolve().parents[2] / "inference" / "Dockerfile"


def test_defaults_fit_qwen3_4b_on_one_24gb_gpu() -> None:
    config = ServingConfig()
    assert config.gpu_shape.gpus == 1
    assert config.gpu_shape.gpu_memory_gib == 24
    assert config.to_environment() == {
        "HF_MODEL_ID": "/opt/ml/model",
        "OPTION_ASYNC_MODE": "true",
        "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
        "OPTION_TENSOR_PARALLEL_DEGREE": "1",
        "OPTION_MAX_MODEL_LEN": "16384",
        "OPTION_MAX_ROLLING_BATCH_SIZE": "32",
        "OPTION_GPU_MEMORY_UTILIZATION": "0.9",
        "OPTION_ENABLE_PREFIX_CACHING": "true",
        "OPTION_DTYPE": "bf16",
        "OPTION_ENABLE_AUTO_TOOL_CHOICE": "true",
        "OPTION_TOOL_CALL_PARSER": "hermes",
    }
    assert config.request_thinking is True


def test_custom_settings_reach_the_environment() -> None:
    env = ServingConfig(
        model="s3://models-bucket/qwen3-4b/export/",
        instance_type="g6e.12xlarge",  # the ml. prefix is optional
        tensor_parallel_degree=4,
        max_model_len=32_768,
        enable_prefix_caching=False,
        reasoning_parser="qwen3",
        thinking_default=False,
        extra_options={"max_num_batched_tokens": "8192"},
    ).to_environment()
    assert env["HF_MODEL_ID"] == "s3://models-bucket/qwen3-4b/export/"
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert env["OPTION_MAX_MODEL_LEN"] == "32768"
    assert env["OPTION_ENABLE_PREFIX_CACHING"] == "false"
    assert env["OPTION_REASONING_PARSER"] == "qwen3"
    assert env["OPTION_MAX_NUM_BATCHED_TOKENS"] == "8192"
    assert all(isinstance(v, str) for v in env.values())


def test_tool_calling_off_drops_its_options() -> None:
    env = ServingConfig(enable_tool_calling=False, tool_call_parser=None).to_environment()
    assert "OPTION_ENABLE_AUTO_TOOL_CHOICE" not in env
    assert "OPTION_TOOL_CALL_PARSER" not in env


def test_non_thinking_model_sends_no_thinking_default() -> None:
    config = ServingConfig(supports_thinking=False, thinking_default=False)
    assert config.request_thinking is None
    assert ServingConfig(thinking_default=False).request_thinking is False


@pytest.mark.parametrize(
    ("settings", "option"),
    [
        ({"tensor_parallel_degre": 2}, "tensor_parallel_degre"),
        ({"instance_type": "ml.g5.2xlarge", "tensor_parallel_degree": 2}, "tensor_parallel_degree"),
        (
            {"instance_type": "ml.g5.12xlarge", "tensor_parallel_degree": 8},
            "tensor_parallel_degree",
        ),
        (
            {"instance_type": "ml.p4d.24xlarge", "tensor_parallel_degree": 3},
            "tensor_parallel_degree",
        ),
        ({"instance_type": "ml.m5.xlarge"}, "instance_type"),
        ({"max_model_len": 1_000_000}, "max_model_len"),
        ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization"),
        ({"enable_tool_calling": False}, "tool_call_parser"),
        ({"tool_call_parser": None}, "tool_call_parser"),
        ({"tool_call_parser": "mistral"}, "tool_call_parser"),
        ({"supports_thinking": False, "reasoning_parser": "qwen3"}, "reasoning_parser"),
        ({"supports_thinking": False}, "thinking_default"),
        ({"extra_options": {"max_model_len": "4096"}}, "extra_options.max_model_len"),
        ({"extra_options": {"OPTION_ROLLING_BATCH": "vllm"}}, "OPTION_ROLLING_BATCH"),
        ({"extra_options": {"async_mode": "false"}}, "extra_options.async_mode"),
        ({"extra_options": {"OPTION_ENTRYPOINT": "model.py"}}, "OPTION_ENTRYPOINT"),
        ({"extra_options": {"max_num_seq": "4"}}, "extra_options.max_num_seq"),
        ({"model": "not a location"}, "model"),
        ({"model_weights_gib": 60.0, "instance_type": "ml.g6e.xlarge"}, "model_weights_gib"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_rejected_settings_name_the_option(settings: dict[str, Any], option: str) -> None:
    with pytest.raises(ValidationError) as info:
        ServingConfig(**settings)
    assert option in str(info.value)


def test_larger_models_fit_with_tensor_parallelism() -> None:
    config = ServingConfig(
        model_weights_gib=60.0, instance_type="ml.g6e.12xlarge", tensor_parallel_degree=4
    )
    assert config.to_environment()["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"


def test_config_is_frozen() -> None:
    config = ServingConfig()
    with pytest.raises(ValidationError):
        config.max_model_len = 4096  # type: ignore[misc]


@pytest.mark.parametrize(
    ("instance", "gpus"),
    [
        ("ml.g5.48xlarge", 8),
        ("ml.g6.12xlarge", 4),
        ("ml.p5en.48xlarge", 8),
        ("ml.g6e.xlarge", 1),
        ("ml.p6-b200.48xlarge", 8),
        ("ml.p6-b300.48xlarge", 8),
    ],
)
def test_instance_table(instance: str, gpus: int) -> None:
    assert INSTANCE_GPUS[instance].gpus == gpus
    assert ServingConfig(instance_type=instance).gpu_shape.gpus == gpus


def test_blackwell_types_are_served_with_the_guides_memory_per_gpu() -> None:
    """p6-b200 and p6-b300 were in config's GPU table (HyperPod groups) but not in serving's,
    so ServingConfig refused them. The one table (core/accelerators.py) takes their memory from
    the Amazon EC2 instance type guide, "Specifications for Amazon EC2 accelerated computing
    instances" (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html), Performance
    specifications: p6-b200.48xlarge "8 x NVIDIA B200 GPU", "1432 GiB (8 x 179 GiB)";
    p6-b300.48xlarge "8 x NVIDIA B300 GPU", "2148 GiB (8 x 268 GiB)". Its instance store table
    gives both "8 x 3800 GB" NVMe SSD (so no endpoint volume key)."""
    b200 = ServingConfig(instance_type="p6-b200.48xlarge", tensor_parallel_degree=8).gpu_shape
    b300 = ServingConfig(instance_type="ml.p6-b300.48xlarge").gpu_shape
    assert (b200.gpus, b200.gpu_memory_gib, b200.gpu) == (8, 179, "B200")
    assert (b300.gpus, b300.gpu_memory_gib, b300.gpu) == (8, 268, "B300")
    assert b200.instance_storage
    assert b300.instance_storage


def _dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    block = text.split("ENV ", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r"(\w+)=(\S+)", block))


def test_dockerfile_bakes_the_builder_defaults_and_pins_the_image() -> None:
    assert _dockerfile_env() == ServingConfig().to_environment()
    base = re.search(r"^ARG LMI_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None
    assert base.group(1) == image_uri("us-east-1", LMI_VERSION)
    assert ":latest" not in DOCKERFILE.read_text()


def test_the_base_image_pin_is_explicit_and_the_dockerfile_follows_it() -> None:
    """The LMI base is pinned by digest once `lmi_images.json` records one (the issue's "base
    images pinned by digest", as training/Dockerfile pins its base). No AWS source found
    publishes the digest of this tag (deep-learning-containers available_images data, release
    yaml and the SDK's image_uri_config carry tags only), so the state is written down either
    way: `"digest": null` with the Dockerfile saying how to resolve it, or a sha256 digest with
    its source, and then the Dockerfile's default base is that digest."""
    table = pinned_image_table()
    assert set(DIGEST_FIELDS) <= set(table)
    base = re.search(r"^ARG LMI_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None
    assert base.group(1) == image_uri(DIGEST_REGION)
    if table["digest"] is None:
        assert table["digest_source"] is None
        assert base.group(1).endswith(f":{table['tag']}")
        assert "python -m inference.serving image-digest --write" in DOCKERFILE.read_text()
    else:
        assert DIGEST.fullmatch(table["digest"])
        assert isinstance(table["digest_source"], str)
        assert table["digest_source"]
        assert base.group(1).endswith(f"/{table['repository']}@{table['digest']}")


@pytest.fixture
def scratch_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The table and the Dockerfile copied to tmp_path, so a test may rewrite them."""
    for name in ("IMAGE_TABLE", "DOCKERFILE"):
        path = tmp_path / getattr(serving, name).name
        path.write_text(getattr(serving, name).read_text())
        monkeypatch.setattr(serving, name, path)
    pinned_image_table.cache_clear()
    yield tmp_path
    pinned_image_table.cache_clear()


FAKE_DIGEST = "sha256:" + "ab" * 32


def _use_fake_ecr(monkeypatch: pytest.MonkeyPatch, ecr: Any) -> None:
    """`boto3.client("ecr", ...)` answers with ``ecr`` (its ``batch_get_image``)."""
    fake_boto3 = type(sys)("boto3")
    fake_boto3.client = lambda service, region_name: ecr  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", fake_boto3)


def test_a_recorded_digest_pins_every_region_and_the_dockerfile(
    scratch_pin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []

    class Ecr:
        def batch_get_image(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"images": [{"imageId": {"imageDigest": FAKE_DIGEST}}], "failures": []}

    _use_fake_ecr(monkeypatch, Ecr())
    tag = pinned_image_table()["tag"]
    assert main(parse_args(["image-digest", "--write"])) == 0
    assert capsys.readouterr().out.splitlines()[0] == FAKE_DIGEST
    (call,) = calls
    assert call["registryId"] == "763104351884"
    assert call["repositoryName"] == "djl-inference"
    assert call["imageIds"] == [{"imageTag": tag}]
    assert "application/vnd.docker.distribution.manifest.v1+json" not in call["acceptedMediaTypes"]
    table = json.loads((scratch_pin / "lmi_images.json").read_text())
    assert table["digest"] == FAKE_DIGEST
    assert f"{tag} in us-east-1" in table["digest_source"]
    assert image_uri("eu-west-1") == (
        f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/djl-inference@{FAKE_DIGEST}"
    )
    assert main(parse_args(["image-uri", "--region", "af-south-1"])) == 0
    assert capsys.readouterr().out.strip().endswith(f"/djl-inference@{FAKE_DIGEST}")
    dockerfile = (scratch_pin / "Dockerfile").read_text()
    assert f"ARG LMI_IMAGE={image_uri('us-east-1')}\n" in dockerfile


def test_a_refused_ecr_answer_writes_nothing(
    scratch_pin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Ecr:
        def batch_get_image(self, **kwargs: Any) -> dict[str, Any]:
            return {"images": [], "failures": [{"failureCode": "ImageNotFound"}]}

    _use_fake_ecr(monkeypatch, Ecr())
    before = (scratch_pin / "lmi_images.json").read_text()
    assert main(parse_args(["image-digest", "--write"])) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot resolve the LMI image's digest in us-east-1")
    assert "ImageNotFound" in line
    assert (scratch_pin / "lmi_images.json").read_text() == before
    with pytest.raises(ValueError, match="not a sha256 digest"):
        serving.write_image_table({**pinned_image_table(), "digest": "sha256:short"})


def test_a_new_tag_from_the_sdk_drops_the_old_digest(
    scratch_pin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest belongs to its tag: `image-table` keeps it for the same tag only."""
    pinned = pinned_image_table()
    serving.write_image_table({**pinned, "digest": FAKE_DIGEST, "digest_source": "test"})
    sdk = {k: v for k, v in pinned.items() if k not in DIGEST_FIELDS}
    monkeypatch.setattr(serving, "sdk_image_table", lambda: sdk)
    assert main(parse_args(["image-table"])) == 0
    assert pinned_image_table()["digest"] == FAKE_DIGEST
    monkeypatch.setattr(serving, "sdk_image_table", lambda: {**sdk, "tag": "0.39.0-lmi30.0.0"})
    assert main(parse_args(["image-table"])) == 0
    assert (pinned_image_table()["digest"], pinned_image_table()["digest_source"]) == (None, None)
    assert (
        "ARG LMI_IMAGE=763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.39.0-lmi30"
        in ((scratch_pin / "Dockerfile").read_text())
    )


def test_image_uri_comes_from_the_sdk_table_per_region() -> None:
    table = pinned_image_table()
    pin = f"@{table['digest']}" if table["digest"] else f":{table['tag']}"
    assert (
        image_uri("eu-west-1") == f"763104351884.dkr.ecr.eu-west-1.amazonaws.com/djl-inference{pin}"
    )
    assert LMI_VERSION in table["tag"]


def test_cli_prints_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["env", "--instance-type", "ml.g6e.12xlarge", "--tensor-parallel-degree", "2"]
    assert main(parse_args(argv)) == 0
    assert json.loads(capsys.readouterr().out)["OPTION_TENSOR_PARALLEL_DEGREE"] == "2"
    assert main(parse_args(["env", "--tensor-parallel-degree", "2"])) == 2
    assert "tensor_parallel_degree" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (
            ["env", "--tensor-parallel-degree", "2"],
            ["error: tensor_parallel_degree: 2 exceeds the 1 GPU(s) of ml.g5.2xlarge"],
        ),
        (
            ["env", "--instance-type", "ml.g5.2xlarge", "--tensor-parallel-degree", "0"],
            ["error: tensor_parallel_degree: Input should be greater than or equal to 1"],
        ),
        (
            ["env", "--model", "not a model", "--tensor-parallel-degree", "0"],
            [
                "error: model: 'not a model' is not an s3:// prefix, absolute path or hub id",
                "error: tensor_parallel_degree: Input should be greater than or equal to 1",
            ],
        ),
    ],
    ids=["model-level rule", "field bound", "two fields"],
)
def test_cli_refusals_are_field_reason_lines(
    argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(parse_args(argv)) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == lines
    assert "pydantic" not in captured.err
    assert captured.out == ""


def test_field_errors_word_unknown_fields_like_the_config_loader() -> None:
    from pydantic import ValidationError

    from core.cli import field_errors

    with pytest.raises(ValidationError) as caught:
        ServingConfig(max_model_len=1, typo=True)  # type: ignore[call-arg]
    assert field_errors(caught.value) == [
        "max_model_len: Input should be greater than or equal to 256",
        "typo: unknown field (not in the schema)",
    ]


def test_module_imports_no_heavy_dependencies() -> None:
    import subprocess
    import sys

    code = (
        "import sys, inference.serving; "
        "print(sorted(m for m in ('torch', 'boto3', 'sagemaker', 'aws_cdk', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=DOCKERFILE.parents[1],
    ).stdout
    assert out.strip() == "[]"


def test_pinned_image_table_equals_the_sdk_for_every_region() -> None:
    """`lmi_images.json` (read by the CDK app without the SDK) is the SDK's own table entry."""
    from sagemaker.core import image_uris

    from config.regions import AVAILABILITY_ZONES
    from inference.serving import sdk_image_table

    table = pinned_image_table()
    # The digest fields are this repo's (resolved from ECR); the rest is the SDK's entry.
    assert {k: v for k, v in table.items() if k not in DIGEST_FIELDS} == sdk_image_table()
    assert set(AVAILABILITY_ZONES) <= set(table["registries"])
    for region in table["registries"]:
        sdk = image_uris.retrieve(framework="djl-lmi", region=region, version=LMI_VERSION)
        if table["digest"] is not None:  # the same repository, pinned by the recorded digest
            sdk = f"{sdk.rsplit(':', 1)[0]}@{table['digest']}"
        assert image_uri(region) == sdk


def test_no_credentials_is_one_line_and_writes_nothing(
    scratch_pin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import NoCredentialsError

    class Ecr:
        def batch_get_image(self, **kwargs: Any) -> dict[str, Any]:
            raise NoCredentialsError()

    _use_fake_ecr(monkeypatch, Ecr())
    before = (scratch_pin / "lmi_images.json").read_text()
    assert main(parse_args(["image-digest", "--write"])) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: no AWS credentials to read the LMI image's digest from ECR")
    assert (scratch_pin / "lmi_images.json").read_text() == before


def test_an_unknown_region_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(parse_args(["image-digest", "--region", "mars-north-1"])) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --region: 'mars-north-1' has no LMI registry; known: ")
