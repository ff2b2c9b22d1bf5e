"""Every BU's training stack: its image repository, managed-job role and the parameters
`training.job` reads, published under exactly the names of `core.parameters`."""

import pytest
from aws_cdk.assertions import Match

from core import parameters as p
from training.job.platform import PROCESSING_JOB_NAMES, TRAINING_JOB_NAMES

# What a managed job reads, but MLflow's ARN (the MLflow stack's): so no name a job needs is
# left unpublished, and none is published that no job reads.
PUBLISHED = sorted({*TRAINING_JOB_NAMES, *PROCESSING_JOB_NAMES} - {p.MLFLOW_TRACKING_ARN})


def test_every_bu_has_a_training_stack(synthesized) -> None:
    for name, stage in synthesized.stages.items():
        assert stage.training.stack_name == f"{name}-training"
        assert (name, "training") in synthesized.templates


def test_parameters_published_under_the_contract_names(synthesized, bu: str) -> None:
    names = synthesized.configs[bu].naming
    template = synthesized.template(bu, "training")
    found = {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in template.find_resources("AWS::SSM::Parameter").values()
    }
    assert sorted(found) == sorted(names.parameter(n) for n in PUBLISHED)
    assert found[names.parameter(p.DATA_BUCKET)] == names.bucket("data")
    assert found[names.parameter(p.CHECKPOINTS_BUCKET)] == names.bucket("checkpoints")
    # Subnets: the network stack's private subnets, joined for the client to split.
    assert found[names.parameter(p.TRAINING_SUBNET_IDS)]["Fn::Join"][0] == ","
    subnets = found[names.parameter(p.TRAINING_SUBNET_IDS)]["Fn::Join"][1]
    assert len(subnets) == len(synthesized.configs[bu].network.availability_zones)


def test_repository_and_role_named_for_the_bu(synthesized, bu: str) -> None:
    cfg = synthesized.configs[bu]
    template = synthesized.template(bu, "training")
    template.has_resource_properties(
        "AWS::ECR::Repository",
        {
            "RepositoryName": cfg.naming.resource("training"),
            "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": Match.any_value()},
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": cfg.naming.key_alias("training")}
    )
    template.has_resource_properties(
        "AWS::IAM::Role", {"RoleName": cfg.naming.role("training-job")}
    )
    # The role's object access: this BU's three job buckets, nothing else.
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    objects = statements["ReadWriteOwnObjects"]["Resource"]
    rendered = str(objects)
    for purpose in ("data", "checkpoints", "models"):
        assert f":s3:::{cfg.naming.bucket(purpose)}/*" in rendered
    assert len(objects) == 3


@pytest.mark.parametrize(("bu", "policy"), [("fraud", "Retain"), ("marketing", "Delete")])
def test_repository_and_key_follow_the_removal_policy(synthesized, bu: str, policy: str) -> None:
    template = synthesized.template(bu, "training")
    for resource_type in ("AWS::ECR::Repository", "AWS::KMS::Key"):
        for resource in template.find_resources(resource_type).values():
            assert resource["DeletionPolicy"] == policy


def test_cost_allocation_tags_on_the_training_resources(synthesized, bu: str) -> None:
    expected = [{"Key": k, "Value": v} for k, v in synthesized.configs[bu].tags.as_dict().items()]
    resources = synthesized.template(bu, "training").to_json()["Resources"].values()
    tagged = [r for r in resources if "Tags" in r.get("Properties", {})]
    assert {r["Type"] for r in tagged} >= {
        "AWS::ECR::Repository",
        "AWS::IAM::Role",
        "AWS::KMS::Key",
        "AWS::EC2::SecurityGroup",
    }
    for resource in tagged:
        tags = resource["Properties"]["Tags"]
        if isinstance(tags, dict):  # SSM parameters take a map
            assert all(tags.get(t["Key"]) == t["Value"] for t in expected), resource["Type"]
        else:
            assert all(t in tags for t in expected), (resource["Type"], tags)
