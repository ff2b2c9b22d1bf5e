"""The LMI (DJL Serving + vLLM) serving configuration for Qwen3 tool calling, as one typed object.

`ServingConfig(...).to_environment()` is the container environment; the CDK endpoint stack and
`inference/Dockerfile` both take it from here, so this module stays dependency-light (stdlib,
pydantic and the GPU table of `core.accelerators`; the `sagemaker` SDK is imported only inside
`image_uri`). Every rejected setting names the option: unknown fields, a tool parser without tool
calling, tensor parallelism beyond the instance's GPUs, and so on.

    python -m inference.serving env [--instance-type ml.g6e.xlarge] [--model s3://...]
    python -m inference.serving image-uri --region eu-west-1 [--version 0.38.0]
    python -m inference.serving image-table   # after bumping LMI_VERSION and the SDK
    python -m inference.serving image-digest --write   # pin the tag's digest (AWS credentials)
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.accelerators import INSTANCE_GPUS, GpuShape, ml_instance_type
from core.cli import Subcommand, field_errors, parse_command, switch

LMI_VERSION = "0.38.0"  # the SDK table's djl-lmi version: 0.38.0-lmi29.0.0-cu130 (vLLM engine)
# LMI's async vLLM handler: vLLM's own OpenAI chat service (tool and reasoning parsers included),
# the default since LMI v17 (djl-serving release notes; user guide "vllm_user_guide.md", "Async
# Mode Configurations"). Setting OPTION_ROLLING_BATCH=vllm would opt out of it: LMI's config
# recommender turns async mode on only while rolling_batch is "auto" (LmiConfigRecommender.java),
# so the builder never sets rolling_batch and names the async mode and entry point outright
# (serving/docs/stateful_sessions.md spells both).
ASYNC_VLLM_ENVIRONMENT = {
    "OPTION_ASYNC_MODE": "true",
    "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
}
MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks the Model's ModelDataUrl
MAX_MODEL_LEN_BOUND = 131_072  # Qwen3 with YaRN rope scaling; 32,768 natively


# vLLM engine arguments that may pass through `extra_options` as OPTION_<NAME>. A short list on
# purpose: anything else is a typo or belongs in a typed field.
PASSTHROUGH_OPTIONS = frozenset(
    {
        "max_num_batched_tokens",
        "enable_chunked_prefill",
        "kv_cache_dtype",
        "enforce_eager",
        "seed",
        "swap_space",
        "max_logprobs",
        "served_model_name",
        "rope_scaling",
    }
)
# The handler is fixed (ASYNC_VLLM_ENVIRONMENT): no rolling batch, async mode, its entry point.
_FIXED_OPTIONS = frozenset({"rolling_batch", "async_mode", "entrypoint"})
# Typed fields own these; setting them through extra_options would be a second source of truth.
_TYPED_OPTIONS = {
    "tensor_parallel_degree": "tensor_parallel_degree",
    "max_model_len": "max_model_len",
    "max_rolling_batch_size": "max_concurrent_sequences",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "enable_prefix_caching": "enable_prefix_caching",
    "dtype": "dtype",
    "enable_auto_tool_choice": "enable_tool_calling",
    "tool_call_parser": "tool_call_parser",
    "reasoning_parser": "reasoning_parser",
}
_MODEL_RE = re.compile(r"^(s3://[a-z0-9.\-]{3,63}/\S+|/\S+|[\w.\-]+/[\w.\-]+)$")


class ServingConfig(BaseModel):
    """What the endpoint serves and how; the defaults fit Qwen3-4B (bf16) on one 24 GB GPU.

    Sizing (Qwen3-4B: 8.1 GB of bf16 weights; 36 layers x 8 KV heads x 128 dims x 2 (K, V) x
    2 bytes = 144 KiB of KV cache per token): on an A10G at 0.90 utilisation about 11 GB is left
    for the cache, roughly 75k tokens, so a 16k context with 32 sequences in flight runs without
    constant preemption; tool-calling prompts with reasoning rarely pass a few thousand tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        default=MODEL_DIR, description="S3 prefix, absolute path, or hub id (HF_MODEL_ID)"
    )
    instance_type: str = Field(default="ml.g5.2xlarge", description="checks TP and memory")
    tensor_parallel_degree: int = Field(default=1, ge=1, description="GPUs one replica spans")
    max_model_len: int = Field(default=16_384, ge=256, le=MAX_MODEL_LEN_BOUND)
    max_concurrent_sequences: int = Field(default=32, ge=1, le=1024)
    gpu_memory_utilization: float = Field(default=0.90, gt=0.0, le=1.0)
    enable_prefix_caching: bool = Field(
        default=True, description="every request repeats the same tools system prompt"
    )
    dtype: Literal["bf16", "fp16", "auto"] = "bf16"
    enable_tool_calling: bool = True
    tool_call_parser: Literal["hermes"] | None = Field(
        default="hermes", description="Qwen3 emits Hermes-style <tool_call> blocks"
    )
    reasoning_parser: Literal["qwen3", "deepseek_r1"] | None = Field(
        default=None,
        description="off by default: some vLLM versions break tool parsing with it (vllm#19513);"
        " the client parses raw <think> either way",
    )
    supports_thinking: bool = Field(
        default=True, description="hybrid Qwen3 models do; Qwen3-*-Instruct-2507 do not"
    )
    thinking_default: bool = Field(
        default=True, description="enable_thinking sent with requests that do not choose"
    )
    model_weights_gib: float = Field(
        default=8.1, gt=0, description="bf16 weights (Qwen3-4B); checked against GPU memory"
    )
    extra_options: dict[str, str] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_location(cls, value: str) -> str:
        if not _MODEL_RE.match(value):
            raise ValueError(f"model: {value!r} is not an s3:// prefix, absolute path or hub id")
        return value

    @field_validator("instance_type")
    @classmethod
    def _known_instance(cls, value: str) -> str:
        name = ml_instance_type(value)
        if name not in INSTANCE_GPUS:
            raise ValueError(
                f"instance_type: {value!r} is not a known GPU instance type "
                f"({', '.join(sorted(INSTANCE_GPUS))})"
            )
        return name

    @field_validator("extra_options")
    @classmethod
    def _passthrough(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            option = key.lower().removeprefix("option_")
            if option in _FIXED_OPTIONS:
                raise ValueError(
                    f"extra_options.{key}: fixed by the builder (LMI's async vLLM handler)"
                )
            if option in _TYPED_OPTIONS:
                raise ValueError(
                    f"extra_options.{key}: set it with the typed field {_TYPED_OPTIONS[option]}"
                )
            if option not in PASSTHROUGH_OPTIONS:
                raise ValueError(
                    f"extra_options.{key}: unknown option (allowed: "
                    f"{', '.join(sorted(PASSTHROUGH_OPTIONS))})"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        shape = self.gpu_shape
        if self.tensor_parallel_degree > shape.gpus:
            raise ValueError(
                f"tensor_parallel_degree: {self.tensor_parallel_degree} exceeds the "
                f"{shape.gpus} GPU(s) of {self.instance_type}"
            )
        if self.tensor_parallel_degree & (self.tensor_parallel_degree - 1):
            raise ValueError(
                "tensor_parallel_degree: must be a power of two (Qwen3's 8 KV heads split evenly)"
            )
        per_gpu = self.model_weights_gib / self.tensor_parallel_degree
        budget = shape.gpu_memory_gib * self.gpu_memory_utilization
        if per_gpu >= 0.8 * budget:  # leave at least a fifth of the budget for the KV cache
            raise ValueError(
                f"model_weights_gib: {per_gpu:.1f} GiB per GPU leaves no room for the KV cache in "
                f"{budget:.1f} GiB ({self.instance_type}, gpu_memory_utilization "
                f"{self.gpu_memory_utilization:g}); raise tensor_parallel_degree or the GPU size"
            )
        if self.tool_call_parser is not None and not self.enable_tool_calling:
            raise ValueError("tool_call_parser: set while enable_tool_calling is false")
        if self.enable_tool_calling and self.tool_call_parser is None:
            raise ValueError("tool_call_parser: enable_tool_calling needs a parser (hermes)")
        if self.reasoning_parser is not None and not self.supports_thinking:
            raise ValueError("reasoning_parser: set for a model without thinking support")
        if self.thinking_default and not self.supports_thinking:
            raise ValueError("thinking_default: true for a model without thinking support")
        return self

    @property
    def gpu_shape(self) -> GpuShape:
        return INSTANCE_GPUS[self.instance_type]

    def to_environment(self) -> dict[str, str]:
        """The LMI container environment (every value a string, as SageMaker requires)."""
        env = {
            "HF_MODEL_ID": self.model,
            **ASYNC_VLLM_ENVIRONMENT,
            "OPTION_TENSOR_PARALLEL_DEGREE": str(self.tensor_parallel_degree),
            "OPTION_MAX_MODEL_LEN": str(self.max_model_len),
            # LMI passes it to vLLM as max_num_seqs in async mode too (VllmRbProperties).
            "OPTION_MAX_ROLLING_BATCH_SIZE": str(self.max_concurrent_sequences),
            "OPTION_GPU_MEMORY_UTILIZATION": f"{self.gpu_memory_utilization:g}",
            "OPTION_ENABLE_PREFIX_CACHING": _flag(self.enable_prefix_caching),
            "OPTION_DTYPE": self.dtype,
        }
        # The async handler hands these to vLLM's OpenAIServingChat (vllm_async_service.py).
        if self.enable_tool_calling and self.tool_call_parser:
            env["OPTION_ENABLE_AUTO_TOOL_CHOICE"] = "true"
            env["OPTION_TOOL_CALL_PARSER"] = self.tool_call_parser
        if self.reasoning_parser:
            env["OPTION_REASONING_PARSER"] = self.reasoning_parser
        for key, value in sorted(self.extra_options.items()):
            env[f"OPTION_{key.upper().removeprefix('OPTION_')}"] = value
        return env

    @property
    def request_thinking(self) -> bool | None:
        """The ``enable_thinking`` a request carries when its caller does not choose: the
        thinking default, or None (send none) for a model without thinking support."""
        return self.thinking_default if self.supports_thinking else None


@dataclass(frozen=True)
class ServedEndpoint:
    """One endpoint as either target serves it: a BU's endpoint config translated once
    (``config.endpoints.Endpoint.served``), read by the CDK endpoints stack (the SageMaker
    endpoint) and by ``inference.hyperpod`` (the HyperPod ``InferenceEndpointConfig``)."""

    endpoint_name: str  # <bu>-<name>: the SageMaker endpoint, its model and the Kubernetes object
    serving: ServingConfig
    image: str  # image_uri(region)
    region: str
    bucket: str  # the BU's models bucket
    model_prefix: str  # the model's key prefix inside `bucket` (ending in '/')
    replicas: int = 1  # instances (SageMaker) or pods (HyperPod) at deploy: autoscaling's minimum
    mig_profile: str | None = None  # HyperPod only: serve from one MIG slice, not whole GPUs


def _flag(value: bool) -> str:
    return "true" if value else "false"


def image_uri(region: str, version: str = LMI_VERSION) -> str:
    """The LMI image for `version` in `region`, from the sagemaker SDK's bundled image table.

    The pinned version is read from `lmi_images.json`, the SDK table's entry for it copied into
    the repo (`python -m inference.serving image-table` rewrites it; a test keeps it equal to the
    SDK's answer), so the CDK app resolves images without the SDK installed and without its
    3 s import. Other versions ask the SDK. Once the table records the tag's digest
    (`image-digest --write`), the pinned image is `<registry>/<repository>@sha256:...`: a moved
    tag cannot change what is served or built on. No AWS source found publishes the digest of
    this tag, so until it is resolved (`"digest": null`) the tag is the pin.
    """
    table = pinned_image_table()
    if version == table["version"] and region in table["registries"]:
        account = table["registries"][region]
        repository = f"{account}.dkr.ecr.{region}.amazonaws.com/{table['repository']}"
        digest = table["digest"]
        return f"{repository}@{digest}" if digest else f"{repository}:{table['tag']}"
    from sagemaker.core import image_uris  # heavy (about 3 s); only this path needs it

    return str(image_uris.retrieve(framework="djl-lmi", region=region, version=version))


IMAGE_TABLE = Path(__file__).resolve().with_name("lmi_images.json")
DOCKERFILE = Path(__file__).resolve().with_name("Dockerfile")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_REGION = "us-east-1"  # the Dockerfile's default base is this region's image
DIGEST_FIELDS = ("digest", "digest_source")  # null/null: pinned by tag (explicitly)
# What BatchGetImage may return: the tag's stored manifest as pushed, never one converted to
# schema 1 (another digest). ECR API reference, BatchGetImage acceptedMediaTypes.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


@functools.cache
def pinned_image_table() -> dict[str, Any]:
    """`{version, repository, tag, registries: {region: account}, digest, digest_source}` for
    LMI_VERSION; `digest` is the tag's `sha256:...` or null (not yet resolved)."""
    table: dict[str, Any] = json.loads(IMAGE_TABLE.read_text(encoding="utf-8"))
    return table


def sdk_image_table(version: str = LMI_VERSION) -> dict[str, Any]:
    """The SDK's djl-lmi entry for `version`, in `lmi_images.json`'s shape: regions whose
    registry is on amazonaws.com (China, ISO and sovereign partitions keep asking the SDK)."""
    from sagemaker.core import image_uris

    entry = image_uris.config_for_framework("djl-lmi")["versions"][version]
    table = {"version": version, "repository": entry["repository"], "tag": entry["tag_prefix"]}
    registries = {}
    for region, account in sorted(entry["registries"].items()):
        expected = f"{account}.dkr.ecr.{region}.amazonaws.com/{table['repository']}:{table['tag']}"
        if image_uris.retrieve(framework="djl-lmi", region=region, version=version) == expected:
            registries[region] = account
    return {**table, "registries": registries}


def resolve_digest(region: str = DIGEST_REGION) -> str:
    """The manifest digest the pinned tag names now in `region`'s AWS registry.

    ECR BatchGetImage, the call a pull makes, so credentials that can pull the image can resolve
    it (the same as `aws ecr batch-get-image --registry-id <account> --repository-name
    djl-inference --image-ids imageTag=<tag> --accepted-media-types <MANIFEST_TYPES> --query
    'images[0].imageId.imageDigest'`, or `docker buildx imagetools inspect <image-uri>` after
    `docker login`). One digest serves every region, on the assumption that the DLC release
    publishes one build to every regional registry; `--region R` checks a region, and a registry
    without that digest fails the pull (CreateModel) rather than serving another image.
    """
    import boto3  # only this command needs AWS

    table = pinned_image_table()
    response = boto3.client("ecr", region_name=region).batch_get_image(
        registryId=table["registries"][region],
        repositoryName=table["repository"],
        imageIds=[{"imageTag": table["tag"]}],
        acceptedMediaTypes=list(MANIFEST_TYPES),
    )
    images = response.get("images", [])
    if len(images) != 1:
        raise RuntimeError(f"BatchGetImage {table['tag']} in {region}: {response.get('failures')}")
    digest = str(images[0]["imageId"]["imageDigest"])
    if not DIGEST.fullmatch(digest):
        raise RuntimeError(f"not a sha256 digest: {digest!r}")
    return digest


def write_image_table(table: dict[str, Any]) -> None:
    """Write the table, then the Dockerfile's default base (`ARG LMI_IMAGE=`, the DIGEST_REGION
    image) from it, so the two stay in step."""
    if table["digest"] is not None and not DIGEST.fullmatch(table["digest"]):
        raise ValueError(f"not a sha256 digest: {table['digest']!r}")
    IMAGE_TABLE.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    pinned_image_table.cache_clear()
    base = f"ARG LMI_IMAGE={image_uri(DIGEST_REGION)}"
    text, count = re.subn(r"^ARG LMI_IMAGE=\S+$", base, DOCKERFILE.read_text(), flags=re.M)
    if count != 1:
        raise RuntimeError(f"{DOCKERFILE}: expected one `ARG LMI_IMAGE=` line, found {count}")
    DOCKERFILE.write_text(text, encoding="utf-8")


def _image_digest(region: str, *, write: bool) -> int:
    """`image-digest [--write]`: the digest, or one line saying why not (no credentials, an
    ECR refusal, a tag the registry lacks); the table is written only on success."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    table = pinned_image_table()
    registries = table["registries"]
    if region not in registries:
        print(f"error: --region: {region!r} has no LMI registry; known: {', '.join(registries)}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        digest = resolve_digest(region)
    except NoCredentialsError:
        print(
            "error: no AWS credentials to read the LMI image's digest from ECR: sign in "
            "first (aws sso login, aws configure, or AWS_PROFILE=<profile>)",
            file=sys.stderr,
        )
        return 1
    except (BotoCoreError, ClientError, RuntimeError) as exc:
        print(
            f"error: cannot resolve the LMI image's digest in {region}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(digest)
    if write:
        source = (
            f"ECR BatchGetImage {registries[region]}/{table['repository']}:"
            f"{table['tag']} in {region}, {datetime.date.today().isoformat()}"
        )
        write_image_table({**table, "digest": digest, "digest_source": source})
        print(f"wrote {IMAGE_TABLE} and {DOCKERFILE}")
    return 0


@dataclass(frozen=True)
class EnvArgs:
    instance_type: str = "ml.g5.2xlarge"
    model: str = MODEL_DIR
    tensor_parallel_degree: int = 1


@dataclass(frozen=True)
class ImageUriArgs:
    region: str
    version: str = LMI_VERSION


@dataclass(frozen=True)
class ImageTableArgs:
    pass


@dataclass(frozen=True)
class ImageDigestArgs:
    region: str = DIGEST_REGION
    write: bool = switch(f"record it in {IMAGE_TABLE.name}")


Command = EnvArgs | ImageUriArgs | ImageTableArgs | ImageDigestArgs
COMMANDS = {
    "env": Subcommand(EnvArgs, "print the container environment as JSON"),
    "image-uri": Subcommand(ImageUriArgs, "print the pinned LMI image for a region"),
    "image-table": Subcommand(ImageTableArgs, f"rewrite {IMAGE_TABLE.name} from the installed SDK"),
    "image-digest": Subcommand(
        ImageDigestArgs, "resolve the pinned tag's digest (AWS credentials)"
    ),
}


def parse_args(argv: Sequence[str] | None = None) -> Command:
    args: Command = parse_command("inference.serving", __doc__, COMMANDS, argv, with_examples=True)
    return args


def _image_table() -> int:
    """`image-table`: the SDK's table for the pinned version, keeping the digest of the same tag."""
    old, new = pinned_image_table(), sdk_image_table()
    same_tag = (old["repository"], old["tag"]) == (new["repository"], new["tag"])
    # A digest belongs to its tag: a new tag starts unpinned until `image-digest --write`.
    write_image_table({**new, **{k: old[k] if same_tag else None for k in DIGEST_FIELDS}})
    print(f"wrote {IMAGE_TABLE} and {DOCKERFILE}")
    return 0


def _env(args: EnvArgs) -> int:
    """`env`: the container environment, or one `error: field: reason` line per refused option."""
    try:
        config = ServingConfig(
            instance_type=args.instance_type,
            model=args.model,
            tensor_parallel_degree=args.tensor_parallel_degree,
        )
    except ValidationError as exc:
        for line in field_errors(exc):
            print(f"error: {line}", file=sys.stderr)
        return 2
    print(json.dumps(config.to_environment(), indent=2, sort_keys=True))
    return 0


def main(args: Command) -> int:
    match args:
        case ImageTableArgs():
            return _image_table()
        case ImageDigestArgs():
            return _image_digest(args.region, write=args.write)
        case ImageUriArgs():
            print(image_uri(args.region, args.version))
            return 0
        case EnvArgs():
            return _env(args)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
