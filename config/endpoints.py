"""The ``endpoints`` section of a BU config: LMI endpoints on SageMaker real-time or on HyperPod.

Each endpoint names an exported model (an S3 prefix in the BU's models bucket, as
``training.export`` writes it) and the serving options of ``inference.serving``, which validates
them: a wrong option or a tensor-parallel degree beyond the instance's GPUs is refused by that
one code path, with the option's name. Rules that need other sections (the models bucket's
name, the HyperPod cluster's MIG layout) are checked by :meth:`Endpoints.check`, which
``BusinessUnitConfig._cross_section`` calls. :meth:`Endpoint.served` is the one translation of
an endpoint into what either target deploys (``inference.serving.ServedEndpoint``).
"""

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from config.hyperpod import AddonVersion, HyperPod, ObjectName
from core.accelerators import MIG_PROFILE, mig_memory_gib, ml_instance_type
from core.base import (
    FieldProblemError,
    FieldProblemsError,
    StrictModel,
    ascii_pattern,
    error_reason,
)
from inference.serving import MODEL_DIR, ServedEndpoint, ServingConfig, image_uri

if TYPE_CHECKING:
    from core.naming import Naming

# Endpoint names become SageMaker endpoint names and Kubernetes object names (DNS-1123 labels).
MAX_ENDPOINT_NAME = 63  # SageMaker endpoint names and Kubernetes names alike
_S3_PREFIX = ascii_pattern(r"s3://(?P<bucket>[a-z0-9.\-]{3,63})/(?P<key>\S+)")
# One segment of a model's key prefix: S3's safe characters. `*` and `?` are IAM wildcards:
# the endpoint's grant `<prefix>*` would reach other models (`*/` the whole bucket).
_KEY_SEGMENT = ascii_pattern(r"[A-Za-z0-9!_.'()\-]+")
# Options the endpoint owns itself; setting them under `serving` would be a second source.
_ENDPOINT_OWNED = {"model": "model", "instance_type": "instance_type"}
_OPTION_PREFIX = ascii_pattern(r"(?s)(?P<field>[a-z_]+(?:\.[A-Za-z_]+)?): (?P<reason>.+)")


class Autoscaling(StrictModel):
    """Target tracking on concurrent requests per model copy (what an LLM server saturates on).

    Scale-out reacts within minutes; scale-in waits ``scale_in_cooldown_seconds`` so a lull
    between bursts does not remove an instance that takes ~10 minutes to come back.
    """

    min_capacity: int = Field(default=1, ge=1, le=100)
    max_capacity: int = Field(default=2, ge=1, le=100)
    # None: 75 % of serving.max_concurrent_sequences (the batch vLLM keeps in flight).
    target_concurrent_requests: int | None = Field(default=None, ge=1)
    scale_in_cooldown_seconds: int = Field(default=900, ge=60, le=3600)
    scale_out_cooldown_seconds: int = Field(default=180, ge=0, le=3600)
    ordered_fields = (("min_capacity", "max_capacity"),)


class Alarms(StrictModel):
    """CloudWatch alarm thresholds; latencies in milliseconds, error rates in percent."""

    model_latency_p90_ms: int = Field(default=30_000, ge=100, le=600_000)
    overhead_latency_p90_ms: int = Field(default=200, ge=1, le=60_000)
    error_4xx_rate_percent: float = Field(default=5.0, gt=0, le=100)
    error_5xx_rate_percent: float = Field(default=1.0, gt=0, le=100)
    period_seconds: Literal[60, 300] = 60
    evaluation_periods: int = Field(default=5, ge=1, le=60)
    datapoints_to_alarm: int = Field(default=3, ge=1, le=60)
    ordered_fields = (("datapoints_to_alarm", "evaluation_periods"),)


class DataCapture(StrictModel):
    """Requests and responses sampled into the BU's ``inference-capture`` bucket (KMS)."""

    enabled: bool = True
    sampling_percent: int = Field(default=20, ge=1, le=100)


class Endpoint(StrictModel):
    """One served model: where it is, how LMI serves it, where it runs, how it scales."""

    name: ObjectName = Field(description="endpoint name is <bu>-<name>")
    # Where training.export wrote the model: a key prefix inside the BU's models bucket, or the
    # full s3://<models bucket>/<prefix>/ (a prefix keeps `config new` clones valid unedited).
    model: str
    target: Literal["sagemaker", "hyperpod"] = "sagemaker"
    instance_type: str = "ml.g5.2xlarge"
    # HyperPod only: serve from one MIG slice (e.g. 3g.40gb) instead of whole GPUs.
    mig_profile: str | None = None
    serving: dict[str, Any] = Field(
        default_factory=dict, description="inference.serving.ServingConfig options"
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    alarms: Alarms = Field(default_factory=Alarms)
    data_capture: DataCapture = Field(default_factory=DataCapture)

    @field_validator("model")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value.startswith("s3://"):
            match = _S3_PREFIX.fullmatch(value)
            if match is None:
                raise ValueError(f"{value!r} is not an s3://bucket/prefix/ URI")
            key = match["key"]
        else:
            key = value
        problem = _key_prefix_problem(key)
        if problem is not None:
            raise ValueError(
                f"{value!r} is neither s3://<models bucket>/<prefix>/ nor a key prefix "
                f"inside the models bucket (like qwen3-4b-tools/v1/): {problem}"
            )
        # An uncompressed model is an S3 prefix; SageMaker's S3Prefix data type wants the slash.
        return value if value.endswith("/") else f"{value}/"

    def model_key(self, naming: "Naming") -> str:
        """The model's key prefix inside the BU's models bucket (ending in '/')."""
        return self.model.removeprefix(f"s3://{naming.bucket('models')}/")

    def model_uri(self, naming: "Naming") -> str:
        return f"s3://{naming.bucket('models')}/{self.model_key(naming)}"

    @field_validator("instance_type")
    @classmethod
    def _ml_prefix(cls, value: str) -> str:
        return ml_instance_type(value)

    @field_validator("mig_profile")
    @classmethod
    def _mig(cls, value: str | None) -> str | None:
        if value is not None and not MIG_PROFILE.fullmatch(value):
            raise ValueError(f"{value!r} is not a MIG profile like '3g.40gb'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Endpoint":
        for key in self.serving:
            if key in _ENDPOINT_OWNED:
                raise FieldProblemError(
                    f"serving.{key}", f"set on the endpoint ({_ENDPOINT_OWNED[key]}), not here"
                )
        config = self.serving_config()  # raises with the option's name
        if self.mig_profile is not None:
            if self.target != "hyperpod":
                raise FieldProblemError("mig_profile", "MIG slices exist only on HyperPod")
            self._check_mig(config, self.mig_profile)
        target = self.autoscaling.target_concurrent_requests
        if target is not None and target > config.max_concurrent_sequences:
            raise FieldProblemError(
                "autoscaling.target_concurrent_requests",
                f"{target} is over serving.max_concurrent_sequences "
                f"{config.max_concurrent_sequences}: the target could never be reached",
            )
        return self

    @staticmethod
    def _check_mig(config: ServingConfig, profile: str) -> None:
        if config.tensor_parallel_degree != 1:
            raise FieldProblemError(
                "serving.tensor_parallel_degree", "a MIG slice is one device: use 1"
            )
        budget = mig_memory_gib(profile) * config.gpu_memory_utilization
        if config.model_weights_gib >= 0.8 * budget:
            raise FieldProblemError(
                "mig_profile",
                f"{profile} holds {budget:.1f} GiB at gpu_memory_utilization "
                f"{config.gpu_memory_utilization:g}; {config.model_weights_gib:g} GiB of weights "
                "leave no room for the KV cache",
            )

    def serving_config(self) -> ServingConfig:
        """The typed LMI config. SageMaker copies the uncompressed model to MODEL_DIR before
        the container starts, so LMI loads from disk (and network isolation holds); on HyperPod
        the operator mounts the prefix at the same path."""
        try:
            return ServingConfig(model=MODEL_DIR, instance_type=self.instance_type, **self.serving)
        except ValidationError as err:
            raise _serving_problems(err) from None

    def served(self, naming: "Naming") -> ServedEndpoint:
        """This endpoint as either target serves it: the one translation of a BU's endpoint
        config, which the endpoints stack (SageMaker) and ``python -m inference.hyperpod``
        (HyperPod) both deploy from. ``replicas`` is the autoscaling minimum."""
        return ServedEndpoint(
            endpoint_name=naming.resource(self.name),
            serving=self.serving_config(),
            image=image_uri(naming.region),
            region=naming.region,
            bucket=naming.bucket("models"),
            model_prefix=self.model_key(naming),
            replicas=self.autoscaling.min_capacity,
            mig_profile=self.mig_profile,
        )

    @property
    def target_concurrency(self) -> int:
        """Concurrent requests per instance that target tracking holds."""
        given = self.autoscaling.target_concurrent_requests
        return given or max(1, round(0.75 * self.serving_config().max_concurrent_sequences))


def _key_prefix_problem(key: str) -> str | None:
    """Why ``key`` cannot name one model's prefix: the endpoint's role may read ``<key>*``, so a
    wildcard, a relative or an absolute path would widen that grant beyond one model."""
    if key.startswith("/"):
        return "it starts with '/' (an absolute path; S3 keys have no root)"
    if "*" in key or "?" in key:
        return "'*' and '?' are wildcards in the endpoint's IAM grant (`*/` is the whole bucket)"
    segments = key.removesuffix("/").split("/")
    if any(s in {".", ".."} for s in segments):
        return "'.' and '..' segments are relative paths, not S3 keys"
    if not all(_KEY_SEGMENT.fullmatch(s) for s in segments):
        return "use letters, digits and ! _ . ' ( ) - between single slashes"
    return None


def _serving_problems(err: ValidationError) -> FieldProblemsError:
    """Every problem ServingConfig found, each as `serving.<option>: reason`, so a user fixes
    them in one pass."""
    return FieldProblemsError([_serving_problem(item) for item in err.errors()])


def _serving_problem(item: ErrorDetails) -> FieldProblemError:
    """One of ServingConfig's problems under the endpoint field it came from."""
    loc = ".".join(str(p) for p in item["loc"])
    reason = error_reason(item, "unknown serving option (not in inference.serving.ServingConfig)")
    named = _OPTION_PREFIX.fullmatch(reason)
    if named:  # serving's own messages start with the option's name
        loc, reason = named["field"], named["reason"]
    if loc == "instance_type":
        return FieldProblemError("instance_type", reason)
    return FieldProblemError(f"serving.{loc}" if loc else "serving", reason)


class HyperPodInferenceAddons(StrictModel):
    """EKS add-on versions the HyperPod inference operator needs (pinned, upgraded on purpose)."""

    inference_operator: AddonVersion = "v1.0.0-eksbuild.1"
    s3_csi_driver: AddonVersion = "v1.15.0-eksbuild.1"
    # The operator refuses to install below metrics-server v0.7.2-eksbuild.4 (SageMaker guide,
    # "Setting up your HyperPod clusters for model deployment": dependency add-on minimums).
    metrics_server: AddonVersion = "v0.7.2-eksbuild.4"


class Endpoints(StrictModel):
    """The BU's endpoints; names are unique and become ``<bu>-<name>``."""

    items: list[Endpoint] = Field(min_length=1)
    hyperpod_addons: HyperPodInferenceAddons = Field(default_factory=HyperPodInferenceAddons)

    @model_validator(mode="after")
    def _unique(self) -> "Endpoints":
        seen: set[str] = set()
        for i, item in enumerate(self.items):
            if item.name in seen:
                raise FieldProblemError(f"items.{i}.name", f"duplicate endpoint name {item.name!r}")
            seen.add(item.name)
        return self

    def on(self, target: str) -> list[Endpoint]:
        return [e for e in self.items if e.target == target]

    def check(self, *, naming: "Naming", hyperpod: HyperPod | None) -> None:
        """Rules that need the rest of the BU config; raises FieldProblemError (full path)."""
        bucket = naming.bucket("models")
        for i, item in enumerate(self.items):
            path = f"endpoints.items.{i}"
            match = _S3_PREFIX.fullmatch(item.model)
            if match is not None and match["bucket"] != bucket:
                raise FieldProblemError(
                    f"{path}.model",
                    f"{item.model!r} is outside this BU's models bucket s3://{bucket}/",
                )
            full = naming.resource(item.name)
            if len(full) > MAX_ENDPOINT_NAME:
                raise FieldProblemError(
                    f"{path}.name", f"endpoint name {full!r} is over {MAX_ENDPOINT_NAME} characters"
                )
            if item.target == "hyperpod" and hyperpod is None:
                raise FieldProblemError(
                    f"{path}.target", "hyperpod target, but this BU has no hyperpod section"
                )
            if item.target == "hyperpod" and hyperpod is not None:
                types = sorted({g.instance_type for g in hyperpod.gpu_groups})
                if item.instance_type not in types:
                    raise FieldProblemError(
                        f"{path}.instance_type",
                        f"{item.instance_type} is in none of the HyperPod cluster's GPU groups "
                        f"({', '.join(types)}): its pods would never schedule",
                    )
                _fits_the_layout(path, item, hyperpod)


def _fits_the_layout(path: str, item: Endpoint, hyperpod: HyperPod) -> None:
    """The endpoint's pods request what its instance type's groups offer: the MIG slice it
    names (a slice of another type's layout never schedules here), or a whole GPU, which a
    type whose every group is MIG-partitioned does not offer."""
    whole, slices = hyperpod.capacity()
    offered = sorted(p for (t, p) in slices if t == item.instance_type)
    listed = ", ".join(offered) or "none"
    if item.mig_profile is not None and item.mig_profile not in offered:
        raise FieldProblemError(
            f"{path}.mig_profile",
            f"{item.mig_profile} is not on the HyperPod cluster's MIG layout of "
            f"{item.instance_type} (offered there: {listed})",
        )
    if item.mig_profile is None and not whole.get(item.instance_type):
        raise FieldProblemError(
            f"{path}.mig_profile",
            f"every {item.instance_type} group of the HyperPod cluster is MIG-partitioned, so "
            f"a whole GPU cannot be requested: name one of its slices ({listed})",
        )
