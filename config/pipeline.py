"""The ``pipeline`` section of a BU config: the model lifecycle as one Airflow DAG on Amazon MWAA.

prepare -> train -> evaluate -> gate (floors, then champion/challenger) -> register -> deploy,
with SageMaker's blue/green guardrails to an endpoint on SageMaker, or by re-applying the
HyperPod inference operator's `InferenceEndpointConfig` (rolled back when it is not ready in
time) to an endpoint on HyperPod. The DAG (`pipelines/`) and the MWAA stack read this one
section; rules that need other sections (the endpoint it deploys to and its namespace, the
HyperPod team it trains in, MLflow for the registry) are checked by :meth:`Pipeline.check`.

Airflow version: MWAA offers 3.0.6 (Python 3.12, apache-airflow-providers-amazon 9.12.0), 2.11.0
and 2.10.3 (MWAA user guide, "Apache Airflow versions on Amazon MWAA", read 2026-12; the
project's `../shared/DESIGN.md` records the same list). The DAG is written for 3.0.x.
"""

from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import Field, model_validator

from core.base import FieldProblemError, StrictModel, matching

if TYPE_CHECKING:
    from config.endpoints import Endpoints
    from config.hyperpod import HyperPod
    from config.mlflow import Mlflow

AIRFLOW_VERSION: Final = "3.0.6"
# Where the pipeline writes in the BU's data and models buckets (prepared splits, evaluation
# reports, candidate models): the MWAA execution role may write there and nowhere else in them,
# and the endpoint role may read candidate models there.
OUTPUT_PREFIX: Final = "pipeline/"
# `training.evaluate` metrics a floor or the comparison may name (all are rates in [0, 1]).
GateMetric = Literal[
    "accuracy",
    "full_call_accuracy",
    "function_name_accuracy",
    "arguments_values",
    "parse_validity",
    "no_call_accuracy",
]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
# A key prefix inside one of the BU's buckets: no leading slash, S3-safe segments, a trailing
# slash, and no IAM wildcard (the execution role's grants are `<prefix>*`).
KeyPrefix = Annotated[
    str,
    matching(r"(?:[A-Za-z0-9!_.'()\-]+/)+", "a key prefix like datasets/tools/ (ending in /)"),
]
# An S3 object version ID as `aws s3api put-object` prints it (opaque; at most 1024 characters,
# MWAA API reference, CreateEnvironment). "null" is the version of an object written before
# versioning was on, which the source bucket never has.
ObjectVersion = Annotated[
    str,
    matching(r"(?!null$)[A-Za-z0-9._+/=-]{1,1024}", "an S3 object version ID"),
]


class Train(StrictModel):
    """Where the candidate trains: a HyperPodPyTorchJob in a team's queue, or a Training Job."""

    backend: Literal["hyperpod", "training_job"]
    # hyperpod: the team (hyperpod.teams) whose namespace and Kueue queue run the job.
    team: str | None = None
    # A training config shipped in the training image (training/configs/<name>.yaml).
    config: Annotated[str, matching(r"[a-z0-9][a-z0-9._-]*\.yaml", "a file name like x.yaml")] = (
        "qwen3-4b-lora.yaml"
    )
    # The base model's prefix in the BU's models bucket (Hugging Face layout).
    base_model: KeyPrefix = "base/Qwen3-4B/"
    # The training image's tag in the BU's training repository.
    image_tag: Annotated[str, matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag")] = (
        "latest"
    )
    # training_job: the instance; hyperpod: the GPU group's instance type picks the nodes.
    instance_type: Annotated[str, matching(r"ml\.[a-z0-9]+\.[a-z0-9]+", "an ml.* type")] = (
        "ml.g5.2xlarge"
    )
    max_run_hours: float = Field(default=24.0, gt=0, le=28 * 24)

    @model_validator(mode="after")
    def _team(self) -> "Train":
        if self.backend == "hyperpod" and self.team is None:
            raise FieldProblemError("team", "the hyperpod backend needs the team whose queue runs")
        if self.backend == "hyperpod" and not self.base_model.startswith(f"{self.team}/"):
            # A team's pods may read and write only <team>/ of the models and checkpoints
            # buckets (platform_constructs/hyperpod_workloads.py, the team role's grants).
            raise FieldProblemError(
                "base_model",
                f"{self.base_model!r}: a HyperPod team's pods read only {self.team}/ of the "
                f"models bucket; put the base model under {self.team}/",
            )
        if self.backend == "training_job" and self.team is not None:
            raise FieldProblemError("team", "only the hyperpod backend runs in a team's queue")
        return self


def _default_floors() -> dict[GateMetric, float]:
    return {"parse_validity": 0.95, "full_call_accuracy": 0.5}


class Gate(StrictModel):
    """What a candidate must show on the held-out split before it may replace the champion."""

    # Each metric must reach its floor (inclusive).
    floors: dict[GateMetric, Rate] = Field(default_factory=_default_floors)
    # Champion/challenger: the candidate must beat the model in production on this metric, on
    # the same held-out cases, by more than `min_improvement` (a tie keeps the champion).
    compare_on: GateMetric = "accuracy"
    min_improvement: Rate = 0.0
    # Evaluate on at most this many held-out turns (both models see the same ones).
    max_cases: int = Field(default=500, ge=10, le=100_000)


# Where an endpoint's InferenceEndpointConfig may live: Kubernetes' `default` namespace (the one
# `python -m inference.hyperpod apply` uses unless told otherwise) or a HyperPod team's; the
# pipeline's role may get and update that one object there, and create and get
# HyperPodPyTorchJobs in its training team's namespace, nothing else (a Role per namespace:
# platform_constructs/pipeline_rbac.py).
DEFAULT_NAMESPACE: Final = "default"
# Deploy fields that only one target reads: each is refused, by name, on the other target.
SAGEMAKER_ONLY: Final = (
    "canary_percent",
    "canary_wait_minutes",
    "termination_wait_minutes",
    "maximum_execution_timeout_minutes",
)
HYPERPOD_ONLY: Final = ("namespace", "ready_timeout_minutes")


class Deploy(StrictModel):
    """The endpoint the pipeline updates, and how.

    Target ``sagemaker``: canary traffic shifting with auto-rollback on the endpoint's
    CloudWatch alarms (SageMaker developer guide, "Deployment guardrails":
    `DeploymentConfig.BlueGreenUpdatePolicy` with `TrafficRoutingConfiguration.Type=CANARY` and
    `AutoRollbackConfiguration.Alarms`). Target ``hyperpod``: the endpoint's
    `InferenceEndpointConfig` in ``namespace`` re-applied with the candidate's model location,
    and its previous spec re-applied when the operator does not report the new one ready
    within ``ready_timeout_minutes`` (the operator has no traffic-shifting guardrails).
    """

    # An endpoint of this BU (endpoints.items), on either target.
    endpoint: str
    # sagemaker target only:
    canary_percent: int = Field(default=10, ge=1, le=50)
    # How long the canary serves before the rest of the traffic moves (alarms watched).
    canary_wait_minutes: int = Field(default=10, ge=0, le=60)
    # How long the old fleet stays after the shift, watched by the same alarms (a rollback
    # in this window is still instant).
    termination_wait_minutes: int = Field(default=10, ge=0, le=60)
    maximum_execution_timeout_minutes: int = Field(default=120, ge=10, le=480)
    # hyperpod target only: the namespace of the endpoint's InferenceEndpointConfig (required
    # there: it scopes the pipeline role's access to the cluster), and how long the new spec
    # may take to be ready (pods scheduled, weights mounted, vLLM loaded) before the previous
    # spec is re-applied.
    namespace: (
        Annotated[str, matching(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a Kubernetes namespace")]
        | None
    ) = None
    ready_timeout_minutes: int = Field(default=60, ge=5, le=480)


class Pipeline(StrictModel):
    """One Airflow DAG per BU on an MWAA environment in the BU's private subnets."""

    airflow_version: Literal["3.0.6"] = AIRFLOW_VERSION
    environment_class: Literal[
        "mw1.micro", "mw1.small", "mw1.medium", "mw1.large", "mw1.xlarge", "mw1.2xlarge"
    ] = "mw1.small"
    min_workers: int = Field(default=1, ge=1, le=25)
    max_workers: int = Field(default=2, ge=1, le=25)
    ordered_fields = (("min_workers", "max_workers"),)
    # A cron expression (UTC) for scheduled retraining; None: started by hand or by the API.
    schedule: Annotated[str, matching(r"[0-9*/,\- ]+", "a five-field cron expression")] | None = (
        None
    )
    # The raw tool conversations the prepare step reads: one JSONL object (any format
    # `training.prepare` reads) under this prefix of the BU's data bucket. Writers replace the
    # object; the pipeline records which version it read (the prepared data's fingerprint).
    data_prefix: KeyPrefix = "raw/tool-calls/"
    dataset_file: Annotated[
        str, matching(r"[A-Za-z0-9!_.'()\-]+\.jsonl", "a file name like conversations.jsonl")
    ] = "conversations.jsonl"
    train: Train
    gate: Gate = Field(default_factory=Gate)
    deploy: Deploy
    # Airflow's five log types (DAG processing, scheduler, task, web server, worker), in
    # CloudWatch Logs groups `airflow-<environment>-*` under the pipeline key.
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    # The S3 object versions of plugins.zip and requirements.txt in the source bucket. MWAA
    # needs a version whenever a path is given ("If specified, then the plugins.zip version is
    # required", MWAA API reference, CreateEnvironment), and the objects exist only after the
    # first deploy made the bucket: deploy once without them (the environment runs the DAGs
    # folder only), upload, put the printed versions here, deploy again. requirements.txt
    # installs wheels from plugins.zip (`--no-index --find-links /usr/local/airflow/plugins`),
    # so it needs plugins_version too.
    plugins_version: ObjectVersion | None = None
    requirements_version: ObjectVersion | None = None

    @model_validator(mode="after")
    def _schedule_and_versions(self) -> "Pipeline":
        if self.schedule is not None and len(self.schedule.split()) != 5:
            raise FieldProblemError("schedule", f"{self.schedule!r} is not five cron fields")
        if self.requirements_version is not None and self.plugins_version is None:
            raise FieldProblemError(
                "requirements_version",
                "requirements.txt installs the wheels in plugins.zip: set plugins_version too",
            )
        return self

    def check(
        self,
        *,
        hyperpod: "HyperPod | None",
        endpoints: "Endpoints | None",
        mlflow: "Mlflow | None",
    ) -> None:
        """The cross-section rules; each raises with the path below ``pipeline``."""
        if mlflow is None:
            raise FieldProblemError(
                "pipeline", "the pipeline registers models in MLflow: add an mlflow section"
            )
        if self.train.backend == "hyperpod":
            if hyperpod is None:
                raise FieldProblemError(
                    "pipeline.train.backend", "hyperpod needs a hyperpod section in this BU"
                )
            teams = [t.name for t in hyperpod.teams]
            if self.train.team not in teams:
                raise FieldProblemError(
                    "pipeline.train.team",
                    f"unknown team {self.train.team!r}; hyperpod.teams has "
                    f"{', '.join(teams) or 'none'}",
                )
        items = {e.name: e for e in (endpoints.items if endpoints else [])}
        target = items.get(self.deploy.endpoint)
        if target is None:
            raise FieldProblemError(
                "pipeline.deploy.endpoint",
                f"unknown endpoint {self.deploy.endpoint!r}; endpoints.items has "
                f"{', '.join(items) or 'none'}",
            )
        given = self.deploy.model_fields_set
        other = HYPERPOD_ONLY if target.target == "sagemaker" else SAGEMAKER_ONLY
        for name in other:
            if name in given:
                raise FieldProblemError(
                    f"pipeline.deploy.{name}",
                    f"{self.deploy.endpoint} runs on {target.target}; only an endpoint on "
                    f"{'hyperpod' if target.target == 'sagemaker' else 'sagemaker'} reads it",
                )
        if target.target == "hyperpod":
            self._check_hyperpod_deploy(hyperpod)

    def _check_hyperpod_deploy(self, hyperpod: "HyperPod | None") -> None:
        """The namespace must be one the cluster has: `default` or a team's."""
        endpoint = self.deploy.endpoint
        if hyperpod is None:  # the endpoints section refuses this first; said here for the path
            raise FieldProblemError(
                "pipeline.deploy.endpoint",
                f"{endpoint} runs on hyperpod, but this BU has no hyperpod section",
            )
        known = [DEFAULT_NAMESPACE, *(t.namespace for t in hyperpod.teams)]
        if self.deploy.namespace is None:
            raise FieldProblemError(
                "pipeline.deploy.namespace",
                f"{endpoint} runs on hyperpod: name the namespace its InferenceEndpointConfig "
                f"is in (the --namespace of `python -m inference.hyperpod apply`): "
                f"{', '.join(known)}",
            )
        if self.deploy.namespace not in known:
            raise FieldProblemError(
                "pipeline.deploy.namespace",
                f"{self.deploy.namespace!r} is neither {DEFAULT_NAMESPACE} nor a HyperPod team's "
                f"namespace ({', '.join(known[1:]) or 'no teams'}), the only namespaces the "
                "pipeline's role may be given access to",
            )
