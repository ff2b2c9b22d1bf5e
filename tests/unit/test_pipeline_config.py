"""The ``pipeline`` section: a valid one passes, and each mistake is one line naming the file, the
field path and the reason (the loader's ``file: field.path: reason``)."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.bu_configs import add_hyperpod
from harness.config_errors import DELETE, set_dotted

from config.loader import load_all
from config.schema import BusinessUnitConfig
from core.naming import MAX_BUCKET_NAME, STACK_UNITS, Naming

ENDPOINT: dict[str, Any] = {"name": "qwen3", "model": "qwen3-4b-tools/v1/"}
PIPELINE: dict[str, Any] = {
    "train": {"backend": "training_job"},
    "deploy": {"endpoint": "qwen3"},
}


def with_pipeline(raw: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``raw`` with MLflow, one SageMaker endpoint and a pipeline deploying to it."""
    raw["mlflow"] = {}
    raw["endpoints"] = {"items": [copy.deepcopy(ENDPOINT)]}
    raw["pipeline"] = {**copy.deepcopy(PIPELINE), **fields}
    return raw


def errors_of(write_bu: Callable[..., Path], raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each problem as (file, field path, reason); nothing is loaded."""
    path = write_bu(raw)
    loaded, errors = load_all([path])
    assert errors, "the config should have been rejected"
    assert loaded == []
    return [(e.file, e.path, e.reason) for e in errors]


def assert_one_mistake(
    write_bu: Callable[..., Path], raw: dict[str, Any], what: str, field: str, reason: str
) -> None:
    """``raw`` is rejected with exactly one line: the BU's file, ``field`` and ``reason`` in it
    (``what`` names the case in a failure)."""
    ((file, path, why),) = errors_of(write_bu, raw)
    assert file.endswith("bu.yaml")
    assert path == field, what
    assert reason in why, what


def test_a_minimal_section_is_valid_with_defaults(valid_bu: dict[str, Any]) -> None:
    pipeline = BusinessUnitConfig.model_validate(with_pipeline(valid_bu)).pipeline
    assert pipeline is not None
    assert (pipeline.airflow_version, pipeline.environment_class) == ("3.0.6", "mw1.small")
    assert (pipeline.min_workers, pipeline.max_workers) == (1, 2)
    assert (pipeline.plugins_version, pipeline.requirements_version) == (None, None)


def test_object_versions_are_kept(valid_bu: dict[str, Any]) -> None:
    version = "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
    raw = with_pipeline(valid_bu, plugins_version=version, requirements_version="Tx7.yz_Q")
    pipeline = BusinessUnitConfig.model_validate(raw).pipeline
    assert pipeline is not None
    assert pipeline.requirements_version == "Tx7.yz_Q"


HYPERPOD_ENDPOINT: dict[str, Any] = {
    **ENDPOINT,
    "target": "hyperpod",
    "instance_type": "ml.p5en.48xlarge",
    "mig_profile": "1g.18gb",
}


def on_hyperpod(raw: dict[str, Any], **deploy: Any) -> dict[str, Any]:
    """``with_pipeline`` deploying to an endpoint served on the BU's HyperPod cluster."""
    raw = with_pipeline(add_hyperpod(raw))
    raw["endpoints"]["items"] = [copy.deepcopy(HYPERPOD_ENDPOINT)]
    raw["pipeline"]["deploy"] = {"endpoint": "qwen3", **deploy}
    return raw


Change = Callable[[dict[str, Any]], dict[str, Any]]


def pipeline_with(**fields: Any) -> Change:
    """A valid BU given ``with_pipeline``'s section with ``fields`` in it."""
    return lambda raw: with_pipeline(raw, **fields)


def pipeline_without(dotted: str) -> Change:
    """A valid BU given ``with_pipeline``'s section, less the field at ``dotted``."""

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        raw = with_pipeline(raw)
        set_dotted(raw, dotted, DELETE)
        return raw

    return change


def deploying_on_hyperpod(**deploy: Any) -> Change:
    """A valid BU given ``on_hyperpod``'s section with ``deploy`` in its deploy section."""
    return lambda raw: on_hyperpod(raw, **deploy)


# (what is wrong, how to break a valid BU, the field path, a piece of the reason)
CASES: list[tuple[str, Change, str, str]] = [
    ("missing train", pipeline_without("pipeline.train"), "pipeline.train", "Field required"),
    (
        "hyperpod backend without a team",
        pipeline_with(train={"backend": "hyperpod"}),
        "pipeline.train.team",
        "the hyperpod backend needs the team whose queue runs",
    ),
    (
        "hyperpod backend in a BU without a cluster",
        pipeline_with(
            train={"backend": "hyperpod", "team": "research", "base_model": "research/b/"}
        ),
        "pipeline.train.backend",
        "hyperpod needs a hyperpod section in this BU",
    ),
    (
        "a team with the training-job backend",
        pipeline_with(train={"backend": "training_job", "team": "nope"}),
        "pipeline.train.team",
        "only the hyperpod backend runs in a team's queue",
    ),
    (
        "unknown endpoint",
        pipeline_with(deploy={"endpoint": "missing"}),
        "pipeline.deploy.endpoint",
        "unknown endpoint 'missing'; endpoints.items has qwen3",
    ),
    (
        "a namespace for an endpoint on SageMaker",
        pipeline_with(deploy={"endpoint": "qwen3", "namespace": "default"}),
        "pipeline.deploy.namespace",
        "qwen3 runs on sagemaker; only an endpoint on hyperpod reads it",
    ),
    (
        "pipeline without an mlflow section",
        pipeline_without("mlflow"),
        "pipeline",
        "the pipeline registers models in MLflow: add an mlflow section",
    ),
    (
        "cron with four fields",
        pipeline_with(schedule="0 3 * *"),
        "pipeline.schedule",
        "'0 3 * *' is not five cron fields",
    ),
    (
        "cron with letters",
        pipeline_with(schedule="0 3 * * MON"),
        "pipeline.schedule",
        "is not a five-field cron expression",
    ),
    (
        "min_workers over max_workers",
        pipeline_with(min_workers=5, max_workers=2),
        "pipeline.min_workers",
        "5 is over max_workers 2",
    ),
    (
        # requirements.txt installs wheels from plugins.zip (--no-index --find-links
        # /usr/local/airflow/plugins: ../shared/DESIGN.md, Amazon MWAA).
        "requirements version without a plugins version",
        pipeline_with(requirements_version="abc"),
        "pipeline.requirements_version",
        "set plugins_version too",
    ),
    (
        # "null" is the version ID S3 gives objects written before versioning was on (S3 user
        # guide, "How S3 Versioning works"); the source bucket is versioned from its creation.
        "the null object version",
        pipeline_with(plugins_version="null"),
        "pipeline.plugins_version",
        "is not an S3 object version ID",
    ),
    (
        "an unknown field",
        pipeline_with(startup_script="x.sh"),
        "pipeline.startup_script",
        "unknown field",
    ),
    (
        "no namespace",
        deploying_on_hyperpod(),
        "pipeline.deploy.namespace",
        "qwen3 runs on hyperpod: name the namespace its InferenceEndpointConfig is in (the "
        "--namespace of `python -m inference.hyperpod apply`): default, hyperpod-ns-nlp, "
        "hyperpod-ns-vision",
    ),
    (
        "a namespace the platform does not have",
        deploying_on_hyperpod(namespace="hyperpod-inference-system"),
        "pipeline.deploy.namespace",
        "'hyperpod-inference-system' is neither default nor a HyperPod team's namespace "
        "(hyperpod-ns-nlp, hyperpod-ns-vision)",
    ),
    (
        "not a Kubernetes name",
        deploying_on_hyperpod(namespace="Team_A"),
        "pipeline.deploy.namespace",
        "a Kubernetes namespace",
    ),
    (
        "a SageMaker guardrail on a HyperPod endpoint",
        deploying_on_hyperpod(namespace="default", canary_percent=20),
        "pipeline.deploy.canary_percent",
        "qwen3 runs on hyperpod; only an endpoint on sagemaker reads it",
    ),
    (
        "a timeout under five minutes",
        deploying_on_hyperpod(namespace="default", ready_timeout_minutes=2),
        "pipeline.deploy.ready_timeout_minutes",
        "greater than or equal to 5",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_mistake_names_file_field_and_reason(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path], case: tuple[str, Change, str, str]
) -> None:
    what, breaks, field, reason = case
    assert_one_mistake(write_bu, breaks(valid_bu), what, field, reason)


def test_a_hyperpod_base_model_outside_the_teams_prefix_is_refused(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    """A team's pods read only <team>/ of the models bucket (the team role's grant in
    platform_constructs/hyperpod_workloads.py)."""
    train = {"backend": "hyperpod", "team": "research", "base_model": "base/Qwen3-4B/"}
    ((_, path, why),) = errors_of(write_bu, with_pipeline(add_hyperpod(valid_bu), train=train))
    assert path == "pipeline.train.base_model"
    assert "read only research/ of the models bucket" in why


def test_an_unknown_team_is_named_with_the_teams_there_are(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    train = {"backend": "hyperpod", "team": "nope", "base_model": "nope/base/"}
    raw = with_pipeline(add_hyperpod(valid_bu), train=train)
    ((file, path, why),) = errors_of(write_bu, raw)
    assert file.endswith("bu.yaml")
    assert path == "pipeline.train.team"
    assert why.startswith("unknown team 'nope'; hyperpod.teams has ")


@pytest.mark.parametrize("namespace", ["default", "hyperpod-ns-nlp"])
def test_an_endpoint_on_hyperpod_is_a_target_in_default_or_a_teams_namespace(
    valid_bu: dict[str, Any], namespace: str
) -> None:
    """`python -m inference.hyperpod apply` puts the object in `default` unless told otherwise;
    a HyperPod team's namespace is `hyperpod-ns-<team>` (task governance's convention)."""
    raw = on_hyperpod(valid_bu, namespace=namespace, ready_timeout_minutes=30)
    pipeline = BusinessUnitConfig.model_validate(raw).pipeline
    assert pipeline is not None
    assert (pipeline.deploy.namespace, pipeline.deploy.ready_timeout_minutes) == (namespace, 30)


def test_a_hyperpod_field_on_a_sagemaker_endpoint_is_named(
    valid_bu: dict[str, Any], write_bu: Callable[..., Path]
) -> None:
    raw = with_pipeline(valid_bu)
    raw["pipeline"]["deploy"]["ready_timeout_minutes"] = 30
    ((_, path, why),) = errors_of(write_bu, raw)
    assert path == "pipeline.deploy.ready_timeout_minutes"
    assert why == "qwen3 runs on sagemaker; only an endpoint on hyperpod reads it"


def test_the_pipeline_stack_and_its_names_are_length_checked() -> None:
    """The stack unit, the execution role, the key alias, the environment and the source bucket
    are derived names the validator checks before synthesis. S3 bucket names are at most 63
    characters (S3 user guide, "General purpose bucket naming rules")."""
    assert "pipeline" in STACK_UNITS
    names = Naming(bu="b" * 20, account="111111111111", region="ap-southeast-2")
    bucket = names.airflow_bucket()
    assert bucket.startswith("airflow-")
    assert len(bucket) <= MAX_BUCKET_NAME
    long = Naming(bu="b" * 40, account="111111111111", region="ap-southeast-2")
    problems = long.limit_problems()
    assert any(long.airflow_bucket() in problem for problem in problems)
    assert any(long.role("pipeline-execution") in problem for problem in problems)
