"""Every example BU's Studio and MLflow stacks: what the config asks for is in the templates,
grants reach only the BU's own buckets, and clients find MLflow under the BU's parameters."""

from typing import Any

import pytest
from aws_cdk.assertions import Match

from core import parameters
from core.naming import BUCKET_PURPOSES


def _statements(template: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for resource in template.find_resources(kind).values():
            out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_stage_has_mlflow_before_studio(synthesized) -> None:
    for name, stage in synthesized.stages.items():
        assert stage.mlflow is not None, name
        assert stage.studio is not None, name
        assert stage.mlflow.stack_name == f"{name}-mlflow"
        assert stage.studio.stack_name == f"{name}-studio"
        assert stage.mlflow in stage.studio.dependencies  # Studio's role imports the MLflow ARN


def test_domain_users_and_spaces_from_config(synthesized, bu: str) -> None:
    studio = synthesized.configs[bu].studio
    template = synthesized.template(bu, "studio")
    template.has_resource_properties(
        "AWS::SageMaker::Domain",
        {"DomainName": f"{bu}-studio", "AuthMode": "SSO", "AppNetworkAccessType": "VpcOnly"},
    )
    profiles = template.find_resources("AWS::SageMaker::UserProfile")
    assert sorted(p["Properties"]["SingleSignOnUserValue"] for p in profiles.values()) == sorted(
        u.user_name for u in studio.users
    )
    for profile in profiles.values():  # after the TIP switch, never racing UpdateDomain
        assert any("TrustedIdentityPropagation" in d for d in profile["DependsOn"])
    assignments = template.find_resources("AWS::SSO::ApplicationAssignment")
    assert sorted(a["Properties"]["PrincipalId"] for a in assignments.values()) == sorted(
        [u.user_id for u in studio.users] + [g.group_id for g in studio.groups]
    )
    spaces = {
        s["Properties"]["SpaceName"]: s["Properties"]
        for s in template.find_resources("AWS::SageMaker::Space").values()
    }
    assert len(spaces) == 2 * len(studio.users) + len(studio.shared_spaces)
    for user in studio.users:
        for suffix in ("jupyterlab", "code-editor"):
            space = spaces[f"{user.profile}-{suffix}"]
            assert space["OwnershipSettings"] == {"OwnerUserProfileName": user.profile}
            assert space["SpaceSharingSettings"] == {"SharingType": "Private"}
            assert space["SpaceSettings"]["RemoteAccess"] == "ENABLED"
    for shared in studio.shared_spaces:
        assert spaces[shared.name]["SpaceSharingSettings"] == {"SharingType": "Shared"}


def test_tip_switch_follows_config(synthesized, bu: str) -> None:
    (resource,) = synthesized.template(bu, "studio").find_resources("Custom::AWS").values()
    text = "".join(p for p in resource["Properties"]["Create"]["Fn::Join"][1] if isinstance(p, str))
    status = (
        "ENABLED" if synthesized.configs[bu].studio.trusted_identity_propagation else "DISABLED"
    )
    assert f'"TrustedIdentityPropagationSettings":{{"Status":"{status}"}}' in text


def test_s3_grants_reach_only_this_bus_buckets(synthesized, bu: str) -> None:
    """No statement with an S3 action names `*` or a bucket of another BU."""
    naming = synthesized.configs[bu].naming
    own = {naming.bucket(p) for p in BUCKET_PURPOSES}
    others = {
        cfg.naming.bucket(p)
        for b, cfg in synthesized.configs.items()
        if b != bu
        for p in BUCKET_PURPOSES
    }
    checked = 0
    for unit in ("studio", "mlflow"):
        for statement in _statements(synthesized.template(bu, unit)):
            if not any(a.startswith("s3:") for a in _list(statement["Action"])):
                continue
            for resource in _list(statement["Resource"]):
                assert isinstance(resource, str), (unit, resource)  # a literal ARN
                assert resource.startswith("arn:aws:s3:::"), (unit, resource)
                bucket = resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
                assert bucket in own, (unit, resource)
                assert bucket not in others
                checked += 1
    assert checked >= 8  # studio: data, models, checkpoints, artifacts; mlflow: artifacts


def test_studio_role_gets_this_bus_mlflow(synthesized, bu: str) -> None:
    mlflow = synthesized.configs[bu].mlflow
    action = "sagemaker:CallMlflowAppApi" if mlflow.kind == "app" else "sagemaker-mlflow:LogMetric"
    statements = [
        s for s in _statements(synthesized.template(bu, "studio")) if action in _list(s["Action"])
    ]
    assert len(statements) == 1
    (resource,) = _list(statements[0]["Resource"])
    assert resource["Fn::ImportValue"].startswith(f"{bu}-mlflow:")


def test_mlflow_from_config_with_published_parameters(synthesized, bu: str) -> None:
    cfg = synthesized.configs[bu]
    template = synthesized.template(bu, "mlflow")
    if cfg.mlflow.kind == "app":
        template.has_resource_properties(
            "AWS::SageMaker::MlflowApp",
            {"Name": f"{bu}-mlflow", "RoleArn": Match.any_value()},
        )
        template.resource_count_is("AWS::SageMaker::MlflowTrackingServer", 0)
    else:
        template.has_resource_properties(
            "AWS::SageMaker::MlflowTrackingServer",
            {
                "TrackingServerName": f"{bu}-mlflow",
                "TrackingServerSize": cfg.mlflow.size,
                "MlflowVersion": cfg.mlflow.mlflow_version,
                "AutomaticModelRegistration": cfg.mlflow.automatic_model_registration,
            },
        )
    template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": cfg.naming.parameter(parameters.MLFLOW_TRACKING_ARN), "Value": Match.any_value()},
    )
    template.has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": cfg.naming.parameter(parameters.MLFLOW_ARTIFACT_BUCKET),
            "Value": cfg.naming.bucket("mlflow-artifacts"),
        },
    )
    outputs = template.to_json()["Outputs"]
    assert {"TrackingArn", "ArtifactBucket"} <= set(outputs)


def test_both_mlflow_kinds_among_the_examples(synthesized) -> None:
    kinds = {synthesized.configs[b].mlflow.kind for b in ("fraud", "credit", "marketing")}
    assert kinds == {"app", "tracking_server"}


@pytest.mark.parametrize(("bu", "policy"), [("fraud", "Retain"), ("marketing", "Delete")])
def test_studio_and_mlflow_follow_the_removal_policy(synthesized, bu: str, policy: str) -> None:
    studio = synthesized.template(bu, "studio")
    for kind in ("AWS::SageMaker::Domain", "AWS::SageMaker::UserProfile", "AWS::SageMaker::Space"):
        resources = studio.find_resources(kind)
        assert {r["DeletionPolicy"] for r in resources.values()} == {policy}, kind
    studio.has_resource("AWS::KMS::Key", {"DeletionPolicy": policy})
    mlflow = synthesized.template(bu, "mlflow")
    resources = {
        **mlflow.find_resources("AWS::SageMaker::MlflowApp"),
        **mlflow.find_resources("AWS::SageMaker::MlflowTrackingServer"),
    }
    assert {r["DeletionPolicy"] for r in resources.values()} == {policy}


def test_every_resource_carries_the_bu_tag(synthesized, bu: str) -> None:
    for unit in ("studio", "mlflow"):
        resources = synthesized.template(bu, unit).to_json()["Resources"]
        tagged = [
            r for r in resources.values() if isinstance(r.get("Properties", {}).get("Tags"), list)
        ]
        assert tagged
        for resource in tagged:
            assert {"Key": "business-unit", "Value": bu} in resource["Properties"]["Tags"]
