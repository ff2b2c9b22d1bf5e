"""A closed network is closed: the VPC endpoints' policies admit this BU's resources and the
AWS-owned ones the platform is documented to need, and every endpoint left open says why.

An endpoint without a policy admits "full access" to its service (AWS PrivateLink guide,
"Control access to VPC endpoints using endpoint policies"), so code in a BU without internet
could write to any bucket of any account through the S3 gateway endpoint. Each test's docstring
names the fact and its source."""

import fnmatch
from typing import Any

import pytest
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of

from config.loader import CONFIG_DIR, config_files
from platform_constructs.network import (
    INTERFACE_ENDPOINTS,
    OPEN_ENDPOINTS,
    RESTRICTED_ENDPOINTS,
)
from stacks.hyperpod_stack import chart_repository
from stacks.network_stack import aws_registries, bu_bucket_names

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)
OTHER_ACCOUNT = "999999999999"


def _bu_buckets(config: Any) -> set[str]:
    """One bucket per purpose (BUCKET_PURPOSES, OPTIONAL_BUCKET_PURPOSES) and, with a
    ``pipeline`` section, the MWAA source bucket (``airflow-<bu>-...``)."""
    return set(bu_bucket_names(config))


# Every kind of bucket the S3 gateway endpoint admits (its statement Sid), the buckets of that
# kind for a BU, the actions, and why (the test of each kind quotes the source).
BUCKET_TABLE = {
    "BusinessUnitBuckets": (
        _bu_buckets,
        {"s3:*"},
        "this BU's buckets: IAM and the bucket policies decide the rest",
    ),
    "EcrImageLayers": (
        lambda c: {f"prod-{c.region}-starport-layer-bucket"},
        {"s3:GetObject"},
        "ECR image layers",
    ),
    "CdkBootstrapAssets": (
        lambda c: {f"cdk-hnb659fds-assets-{c.account}-{c.region}"},
        {"s3:GetObject"},
        "the lifecycle-script deployment's asset zip",
    ),
    "CloudFormationResponses": (
        lambda c: {f"cloudformation-custom-resource-response-{c.region.replace('-', '')}"},
        {"s3:PutObject"},
        "custom-resource responses",
    ),
}


def _network(synthesized: Any, bu: str) -> TemplateGraph:
    return TemplateGraph(synthesized.template(bu, "network").to_json())


def _endpoint(graph: TemplateGraph, service: str) -> dict[str, Any]:
    """The VPC endpoint whose service name ends in ``.<service>`` (``ecr.dkr``, ``s3``, ...)."""
    return graph.find_one(
        "AWS::EC2::VPCEndpoint",
        lambda p: TemplateGraph.render(p["ServiceName"]).endswith(f".{service}"),
    )


def _statements(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    return policy_statements(endpoint["Properties"]["PolicyDocument"])


def _allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    """Whether an Allow statement for any principal covers ``action`` on ``arn``."""
    return any(
        s["Effect"] == "Allow"
        and s["Principal"] == "*"
        and "Condition" not in s
        and any(fnmatch.fnmatchcase(action, a) for a in actions_of(s))
        and any(fnmatch.fnmatchcase(arn, r) for r in resources_of(s))
        for s in statements
    )


def _s3_sid(synthesized: Any, bu: str, sid: str) -> tuple[Any, list[dict[str, Any]]]:
    config = synthesized.configs[bu]
    statements = _statements(_endpoint(_network(synthesized, bu), "s3"))
    (statement,) = [s for s in statements if s.get("Sid") == sid]
    return config, [statement]


def _admits_bucket(statements: list[dict[str, Any]], name: str, action: str) -> bool:
    return _allows(statements, action, f"arn:aws:s3:::{name}/some/key")


def test_every_interface_endpoint_is_restricted_or_left_open_with_a_reason() -> None:
    """A new endpoint must be decided: restricted (its policy written in platform_constructs/
    network.py) or left open with the reason a policy would break the platform."""
    assert set(RESTRICTED_ENDPOINTS).isdisjoint(OPEN_ENDPOINTS)
    assert set(RESTRICTED_ENDPOINTS) | set(OPEN_ENDPOINTS) == set(INTERFACE_ENDPOINTS)
    assert all(len(why) >= 40 for why in (*RESTRICTED_ENDPOINTS.values(), *OPEN_ENDPOINTS.values()))


@pytest.mark.parametrize("bu", BUS)
def test_every_endpoint_that_should_have_a_policy_has_one(synthesized, bu: str) -> None:
    """The S3 gateway endpoint and each restricted interface endpoint carry a policy; the open
    ones carry none (AWS's default full-access policy), as OPEN_ENDPOINTS says."""
    graph = _network(synthesized, bu)
    assert _statements(_endpoint(graph, "s3"))
    for endpoint_id, service in INTERFACE_ENDPOINTS.items():
        endpoint = _endpoint(graph, service.short_name)
        has_policy = "PolicyDocument" in endpoint["Properties"]
        assert has_policy is (endpoint_id in RESTRICTED_ENDPOINTS), endpoint_id


@pytest.mark.parametrize("bu", BUS)
def test_the_s3_endpoint_admits_exactly_the_buckets_of_its_table(synthesized, bu: str) -> None:
    """Nothing the S3 endpoint admits is unexplained: its statements are the kinds of
    BUCKET_TABLE, each naming exactly that kind's buckets with that kind's actions; a bucket of
    another account or another BU is not admitted."""
    config = synthesized.configs[bu]
    statements = _statements(_endpoint(_network(synthesized, bu), "s3"))
    assert {s["Sid"] for s in statements} == set(BUCKET_TABLE)
    for statement in statements:
        names, actions, _ = BUCKET_TABLE[statement["Sid"]]
        buckets = {r.removeprefix("arn:aws:s3:::").split("/")[0] for r in resources_of(statement)}
        assert buckets == names(config), statement["Sid"]
        assert set(actions_of(statement)) == actions, statement["Sid"]
    for foreign in ("attacker-exfil-bucket", f"{bu}-eu-data-{config.account}-{config.region}"):
        for action in ("s3:PutObject", "s3:GetObject"):
            assert not _admits_bucket(statements, foreign, action), (foreign, action)
    for other in set(BUS) - {bu}:
        theirs = synthesized.configs[other].naming.bucket("data")
        assert not _admits_bucket(statements, theirs, "s3:PutObject"), theirs


@pytest.mark.parametrize("bu", BUS)
def test_the_s3_endpoint_admits_this_bus_buckets(synthesized, bu: str) -> None:
    """Every bucket config.naming gives the BU (BUCKET_PURPOSES, OPTIONAL_BUCKET_PURPOSES):
    data, models, checkpoints, MLflow artifacts (the MLflow client uploads itself: aws/
    sagemaker-mlflow, s3_presigned_artifact_repo.py), lifecycle scripts (HyperPod nodes read
    them), inference capture, TLS certificates, access logs; and the MWAA source bucket of a BU
    with a pipeline (MWAA user guide, "Security in your VPC on Amazon MWAA": the gateway
    endpoint policy must admit "the bucket where your DAGs and supporting files are stored").
    Any action: IAM and the bucket policies already decide who may do what inside the BU's own
    buckets."""
    config, statements = _s3_sid(synthesized, bu, "BusinessUnitBuckets")
    for name in _bu_buckets(config):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert _admits_bucket(statements, name, action), (name, action)
        assert _allows(statements, "s3:ListBucket", f"arn:aws:s3:::{name}")


@pytest.mark.parametrize("bu", BUS)
def test_the_s3_endpoint_admits_ecr_image_layers(synthesized, bu: str) -> None:
    """ "When your containers download images from Amazon ECR, they must access Amazon ECR to get
    the image manifest and then Amazon S3 to download the actual image layers", from
    ``arn:aws:s3:::prod-<region>-starport-layer-bucket/*`` (ECR user guide, "Amazon ECR interface
    VPC endpoints (AWS PrivateLink)", Minimum Amazon S3 bucket permissions for Amazon ECR: one
    s3:GetObject statement). Every image of every registry, the AWS-owned ones included."""
    config, statements = _s3_sid(synthesized, bu, "EcrImageLayers")
    layers = f"prod-{config.region}-starport-layer-bucket"
    assert _admits_bucket(statements, layers, "s3:GetObject")
    assert not _admits_bucket(statements, layers, "s3:PutObject")


@pytest.mark.parametrize("bu", BUS)
def test_the_s3_endpoint_admits_the_cdk_asset_the_lifecycle_upload_reads(synthesized, bu):
    """The lifecycle-script BucketDeployment runs in the private subnets and copies its asset
    zip from the CDK bootstrap bucket named in its own properties (SourceBucketNames); read only,
    objects only."""
    config, statements = _s3_sid(synthesized, bu, "CdkBootstrapAssets")
    if config.hyperpod is not None:
        hyperpod = TemplateGraph(synthesized.template(bu, "hyperpod").to_json())
        deployment = hyperpod.find_one("Custom::CDKBucketDeployment", lambda p: True)
        for bucket, key in zip(
            deployment["Properties"]["SourceBucketNames"],
            deployment["Properties"]["SourceObjectKeys"],
            strict=True,
        ):
            name = TemplateGraph.render(bucket)
            assert _allows(statements, "s3:GetObject", f"arn:aws:s3:::{name}/{key}"), name
    assets = f"cdk-hnb659fds-assets-{config.account}-{config.region}"
    assert not _admits_bucket(statements, assets, "s3:PutObject")


@pytest.mark.parametrize("bu", BUS)
def test_the_s3_endpoint_admits_cloudformation_custom_resource_responses(synthesized, bu):
    """Custom resources "must send responses to a presigned Amazon S3 URL. If they can't ...
    the stack operation fails"; the endpoint policy must allow "the
    cloudformation-custom-resource-response-region bucket", region without dashes
    (CloudFormation user guide, "Access CloudFormation using an interface endpoint (AWS
    PrivateLink)"; the same bucket in aws-samples/data-perimeter-policy-examples
    vpc_endpoint_policies/s3_endpoint_policy.json). Handlers run in the VPC wherever a BU has
    Studio (the trusted-identity-propagation switch) or HyperPod (the chart digest check, the
    kubectl provider, the lifecycle-script upload)."""
    config, statements = _s3_sid(synthesized, bu, "CloudFormationResponses")
    bucket = f"cloudformation-custom-resource-response-{config.region.replace('-', '')}"
    assert _admits_bucket(statements, bucket, "s3:PutObject")
    assert not _admits_bucket(statements, bucket, "s3:GetObject")


def _ecr_statements(synthesized: Any, bu: str) -> dict[str, list[dict[str, Any]]]:
    graph = _network(synthesized, bu)
    return {s: _statements(_endpoint(graph, s)) for s in ("ecr.api", "ecr.dkr")}


@pytest.mark.parametrize("bu", BUS)
def test_ecr_endpoints_admit_this_bus_repositories_and_its_aws_registries(synthesized, bu):
    """One policy on both ECR endpoints (ECR user guide, "Create an endpoint policy for your
    Amazon ECR VPC endpoints": "We recommend creating a single IAM resource policy and attaching
    it to both"). It admits this BU's repositories (``<bu>-training`` and ``<bu>/*``: the chart
    and its mirrors), pull from the AWS registries its nodes and endpoints pull from
    (config.aws_registries, the LMI image's account), and ecr:GetAuthorizationToken; not another
    BU's repositories nor any other account's."""
    config = synthesized.configs[bu]
    own = f"arn:aws:ecr:{config.region}:{config.account}:repository/"
    for service, statements in _ecr_statements(synthesized, bu).items():
        assert _allows(statements, "ecr:GetAuthorizationToken", "*"), service
        for name in (config.naming.resource("training"), chart_repository(config)):
            assert _allows(statements, "ecr:BatchGetImage", own + name), (service, name)
            assert _allows(statements, "ecr:PutImage", own + name), (service, name)
        for account in aws_registries(config):
            arn = f"arn:aws:ecr:{config.region}:{account}:repository/eks/coredns"
            assert _allows(statements, "ecr:GetDownloadUrlForLayer", arn), (service, account)
            assert not _allows(statements, "ecr:PutImage", arn), (service, account)
        for other in ("zz/hyperpod-helm-chart", "zz-training", f"{bu}-eu/x", f"{bu}x/y", "x"):
            assert not _allows(statements, "ecr:BatchGetImage", own + other), (service, other)
        foreign = f"arn:aws:ecr:{config.region}:{OTHER_ACCOUNT}:repository/x"
        assert not _allows(statements, "ecr:BatchGetImage", foreign), service


@pytest.mark.parametrize("bu", BUS)
def test_the_ecr_endpoints_never_block_a_pull_the_hyperpod_nodes_are_granted(synthesized, bu):
    """The endpoint policy and the execution role must agree: each repository the node role may
    pull from (test_hyperpod_contract checks those cover every image the cluster runs) is
    admitted by both ECR endpoints, so the policy cannot fail a node's image pull."""
    config = synthesized.configs[bu]
    if config.hyperpod is None:
        pytest.skip(f"{bu} has no HyperPod cluster")
    hyperpod = TemplateGraph(synthesized.template(bu, "hyperpod").to_json())
    role = hyperpod.find_one(
        "AWS::IAM::Role", lambda p: p.get("RoleName") == config.naming.role("hyperpod-execution")
    )
    granted = [
        r
        for document in hyperpod.policies_of(role)
        for s in policy_statements(document)
        if "ecr:BatchGetImage" in actions_of(s)
        for r in resources_of(s)
    ]
    assert granted
    for service, statements in _ecr_statements(synthesized, bu).items():
        for pattern in granted:
            sample = pattern.replace("*", "some/image")
            assert _allows(statements, "ecr:BatchGetImage", sample), (service, pattern)


ACCOUNT_SCOPED = {
    # endpoint service: (an action, an ARN of this account as a format string, reads on *)
    "sts": ("sts:AssumeRole", "arn:aws:iam::{account}:role/{bu}-training-job-{region}"),
    "kms": ("kms:Decrypt", "arn:aws:kms:{region}:{account}:key/0a1b2c3d"),
    "secretsmanager": (
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:{region}:{account}:secret:x-AbCdEf",
    ),
    "logs": ("logs:PutLogEvents", "arn:aws:logs:{region}:{account}:log-group:/x:log-stream:y"),
    "sagemaker.runtime": (
        "sagemaker:InvokeEndpoint",
        "arn:aws:sagemaker:{region}:{account}:endpoint/{bu}-qwen3-tools",
    ),
    "lambda": ("lambda:InvokeFunction", "arn:aws:lambda:{region}:{account}:function:f"),
}


@pytest.mark.parametrize("bu", BUS)
@pytest.mark.parametrize("service", sorted(ACCOUNT_SCOPED))
def test_account_scoped_endpoints_admit_this_accounts_resources_only(synthesized, bu, service):
    """STS, KMS, Secrets Manager, CloudWatch Logs, SageMaker Runtime and Lambda: any action on a
    resource of this account and region (the resource perimeter of aws-samples/data-perimeter-
    policy-examples, with the account for the organization), the same action on another
    account's resource refused (an exfiltration path: a foreign key, secret, log group, role,
    endpoint or function). Actions that name no resource (Service Authorization Reference, access
    level List or Read) stay possible, such as sts:GetCallerIdentity."""
    config = synthesized.configs[bu]
    action, template = ACCOUNT_SCOPED[service]
    statements = _statements(_endpoint(_network(synthesized, bu), service))
    fields = {"region": config.region, "bu": bu}
    assert _allows(statements, action, template.format(account=config.account, **fields))
    assert not _allows(statements, action, template.format(account=OTHER_ACCOUNT, **fields))
    if service == "sts":
        assert _allows(statements, "sts:GetCallerIdentity", "*")
        assert not _allows(statements, "sts:AssumeRole", "*")
