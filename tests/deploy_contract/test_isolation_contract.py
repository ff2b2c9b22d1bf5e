"""Two BUs in one account must not reach each other: what the MLflow service role may register,
who may assume the roles AWS services assume for a BU, what the kubectl handler may pull, and who
may use the endpoint alarms' key. Each test's docstring names the fact and its source."""

import fnmatch
import itertools
import json
from typing import Any

import pytest
from harness.synthesized_app import CLONED_BU
from harness.template_graph import TemplateGraph, actions_of, policy_statements, resources_of

from config.loader import CONFIG_DIR, config_files
from config.schema import BU_NAME
from platform_constructs.hyperpod_eks import CLUSTER_TAG, NAMESPACE_TAG, SERVICE_ACCOUNT_TAG
from stacks.hyperpod_stack import chart_repository
from stacks.mlflow_stack import registered_model_prefix

BUS = (*sorted(p.stem for p in config_files(CONFIG_DIR)), CLONED_BU)
SERVICE_PRINCIPALS = ("sagemaker.amazonaws.com", "pods.eks.amazonaws.com")
# Roles SageMaker may assume whose trust names no account, each for a stated reason:
# role purpose (config.naming.role) -> the file that writes its trust.
# - hyperpod-execution: HyperPod nodes assume it. No AWS source found shows HyperPod sending
#   aws:SourceAccount or aws:SourceArn for it: the SageMaker AI developer guide's "Cross-service
#   confused deputy prevention" page has sections for Edge Manager, Images, Inference, Batch
#   Transform, Marketplace, Neo, Pipelines, Processing, Studio and Training, none for HyperPod;
#   AWS's reference execution roles trust sagemaker.amazonaws.com with no condition
#   (aws/sagemaker-hyperpod-cluster-setup eks/cloudformation/sagemaker-iam-role-template.yaml;
#   awslabs/awsome-distributed-ai 1.architectures/7.sagemaker-hyperpod-eks/terraform-modules/
#   hyperpod-eks-tf/modules/sagemaker_iam_role/main.tf and 1.architectures/5.sagemaker-hyperpod/
#   0.AmazonSageMakerClustersExecutionRoleTrustedEntities.json); no GitHub issue found reports
#   either key on it. A StringEquals on a key the service does not send denies the AssumeRole, so
#   adding one unverified could leave every node without credentials. Take it off once AWS
#   documents the keys for HyperPod, or a test cluster's nodes are seen to start (and pods to
#   get Pod Identity credentials) with the condition in place.
TRUST_WITHOUT_SOURCE_ACCOUNT = {
    "hyperpod-execution": "platform_constructs/hyperpod_cluster.py",
}


def _graph(synthesized: Any, bu: str, unit: str) -> TemplateGraph:
    return TemplateGraph(synthesized.template(bu, unit).to_json())


def _allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    return any(
        s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in actions_of(s))
        and any(fnmatch.fnmatchcase(arn, r) for r in resources_of(s))
        for s in statements
    )


def _role_statements(graph: TemplateGraph, role_id: str) -> list[dict[str, Any]]:
    return [s for document in graph.policies_of(role_id) for s in policy_statements(document)]


def _trust(role: dict[str, Any]) -> list[dict[str, Any]]:
    document = role["Properties"]["AssumeRolePolicyDocument"]
    if "Fn::Join" in document:  # an IRSA trust written as one joined string
        document = TemplateGraph.json_values(document)
    return policy_statements(document)


def _services(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal", {})
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    return services if isinstance(services, list) else [services]


def _group(synthesized: Any, bu: str, model: str) -> str:
    """The Model Package Group SageMaker's MLflow sync creates for a registered model:
    ``<registered model name>-<6 hex characters>``."""
    config = synthesized.configs[bu]
    return f"arn:aws:sagemaker:{config.region}:{config.account}:model-package-group/{model}-3f9a1c"


@pytest.mark.parametrize("bu", BUS)
def test_the_mlflow_service_role_registers_models_of_this_bu_only(synthesized, bu) -> None:
    """With automatic registration, SageMaker syncs each MLflow registered model into a Model
    Package Group named ``<registered model name>-<suffix>`` (SageMaker AI developer guide,
    "Automatically register SageMaker AI models with SageMaker Model Registry"). Group names
    allow letters, digits and hyphens only (``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``, SageMaker API
    reference, CreateModelPackageGroup; botocore's sagemaker model), so a ``<bu>/`` path cannot
    exist; versioned model packages "do not support tags" (SageMaker Model Registry FAQ), so a
    tag condition cannot scope UpdateModelPackage. The platform's prefix is ``<bu>--``: BU names
    hold single hyphens only, so it is no prefix of another BU's (``fraud-`` would be of
    ``fraud-eu-...``). A versioned package's ARN is ``model-package/<group>/<version>``."""
    config = synthesized.configs[bu]
    if config.mlflow is None or not config.mlflow.automatic_model_registration:
        pytest.skip(f"{bu} registers no models")
    graph = _graph(synthesized, bu, "mlflow")
    role_id, _ = graph.find_one_with_id(
        "AWS::IAM::Role", lambda p: p.get("RoleName") == config.naming.role("mlflow-tracking")
    )
    statements = _role_statements(graph, role_id)
    prefix = registered_model_prefix(config)
    own = _group(synthesized, bu, f"{prefix}qwen3-tools")
    package = own.replace("model-package-group/", "model-package/") + "/3"
    for action in ("sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup"):
        assert _allows(statements, action, own), action
    for action in ("sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"):
        assert _allows(statements, action, package), action
    others = [f"{bu}-eu--qwen3-tools", f"{bu}qwen3-tools", "qwen3-tools", "zz--m", "x"]
    for name in [*others, *(f"{b}--qwen3-tools" for b in BUS if b != bu)]:
        for action in ("sagemaker:CreateModelPackageGroup", "sagemaker:UpdateModelPackage"):
            arn = _group(synthesized, bu, name)
            if action == "sagemaker:UpdateModelPackage":
                arn = arn.replace("model-package-group/", "model-package/") + "/1"
            assert not _allows(statements, action, arn), (action, name)


def test_no_bus_registered_model_prefix_starts_another_bus_names() -> None:
    """``<a>--`` is never a prefix of a name starting ``<b>--`` for two valid BU names: a BU
    name is ``[a-z][a-z0-9]*(-[a-z0-9]+)*`` (config.schema.BU_NAME), so it never holds ``--``
    nor ends in ``-``. Checked on hyphen-prefix pairs, the case ``<bu>-`` gets wrong."""
    names = ["fraud", "fraud-eu", "fraud-eu-1", "fr", "fraudx", "a1", "a1-b", "credit", "risk"]
    assert all(BU_NAME.fullmatch(n) for n in names)
    for a, b in itertools.permutations(names, 2):
        assert not f"{b}--model".startswith(f"{a}--"), (a, b)
    assert "fraud-eu-model".startswith("fraud-")  # why a single hyphen is not enough


@pytest.mark.parametrize("bu", BUS)
def test_roles_sagemaker_and_pod_identity_assume_trust_this_account_only(synthesized, bu):
    """Every trust statement for ``sagemaker.amazonaws.com`` or ``pods.eks.amazonaws.com``
    carries ``aws:SourceAccount`` = the BU's account: SageMaker AI developer guide,
    "Cross-service confused deputy prevention" (use aws:SourceAccount to limit a service
    principal to one account); EKS passes the confused-deputy keys when it assumes a role for
    Pod Identity (EKS Best Practices Guide, Security, "EKS Pod Identities": aws:SourceOrgId).
    The exceptions, each with its reason, are listed in TRUST_WITHOUT_SOURCE_ACCOUNT."""
    config = synthesized.configs[bu]
    exempt = {config.naming.role(p) for p in TRUST_WITHOUT_SOURCE_ACCOUNT}
    checked, still_open = 0, set()
    for (owner, unit), template in synthesized.templates.items():
        if owner != bu:
            continue
        for logical_id, role in template.find_resources("AWS::IAM::Role").items():
            name = role["Properties"].get("RoleName")
            for statement in _trust(role):
                if not set(_services(statement)) & set(SERVICE_PRINCIPALS):
                    continue
                source = statement.get("Condition", {}).get("StringEquals", {})
                if name in exempt:
                    if "aws:SourceAccount" not in source:
                        still_open.add(name)
                    continue
                checked += 1
                assert source.get("aws:SourceAccount") == config.account, (unit, logical_id)
    assert checked
    # Once a listed role's trust names the account, take it off TRUST_WITHOUT_SOURCE_ACCOUNT.
    present = {
        r["Properties"].get("RoleName")
        for (owner, _), t in synthesized.templates.items()
        if owner == bu
        for r in t.find_resources("AWS::IAM::Role").values()
    }
    assert still_open == exempt & present


@pytest.mark.parametrize("bu", BUS)
def test_the_studio_role_trusts_sagemaker_for_this_account_and_region_only(synthesized, bu):
    """The Studio execution role's trust, every statement (AssumeRole, SetContext,
    SetSourceIdentity): ``ArnLike aws:SourceArn`` = ``arn:<partition>:sagemaker:<region>:
    <account>:*`` as the SageMaker AI developer guide gives it for Studio ("Cross-service
    confused deputy prevention", section "SageMaker Studio": "Do not replace the aws:SourceArn
    in this template with the full ARN of a specific Studio application, user profile, or
    domain ... The asterisk in the ARN template does not stand for wildcard and should not be
    changed"), and ``aws:SourceAccount`` = the same account."""
    config = synthesized.configs[bu]
    name = config.naming.role("studio-execution")
    roles = [
        role
        for (owner, _), template in synthesized.templates.items()
        if owner == bu
        for role in template.find_resources("AWS::IAM::Role").values()
        if role["Properties"].get("RoleName") == name
    ]
    if not roles:
        pytest.skip(f"{bu} has no Studio domain")
    (role,) = roles
    statements = _trust(role)
    assert {a for s in statements for a in actions_of(s)} == {
        "sts:AssumeRole",
        "sts:SetContext",
        "sts:SetSourceIdentity",
    }
    for statement in statements:
        assert _services(statement) == ["sagemaker.amazonaws.com"]
        condition = statement["Condition"]
        assert condition["StringEquals"] == {"aws:SourceAccount": config.account}
        (source_arn,) = condition["ArnLike"].values()
        assert list(condition["ArnLike"]) == ["aws:SourceArn"]
        assert TemplateGraph.render(source_arn) == (
            f"arn:aws:sagemaker:{config.region}:{config.account}:*"
        )


@pytest.mark.parametrize("bu", BUS)
def test_pod_identity_roles_trust_their_own_cluster_namespace_and_account(synthesized, bu):
    """A Pod Identity role is assumable only for the cluster, namespace and service account of
    its association: EKS sends the request tags ``eks-cluster-arn``, ``kubernetes-namespace``
    and ``kubernetes-service-account`` on the AssumeRole call, for restricting "which service
    accounts, namespaces, and clusters can use this role" (EKS user guide, "Create IAM role with
    trust policy required by EKS Pod Identity"; the tag values in the EKS Best Practices Guide:
    eks-cluster-arn is the cluster's ARN). Another BU's cluster in the account therefore cannot
    use it, whatever associations someone creates there."""
    config = synthesized.configs[bu]
    if config.hyperpod is None:
        pytest.skip(f"{bu} has no HyperPod cluster")
    graph = _graph(synthesized, bu, "hyperpod")
    (cluster_id,) = graph.of_type("AWS::EKS::Cluster")
    cluster_arn = {"Fn::GetAtt": [cluster_id, "Arn"]}
    associations = graph.of_type("AWS::EKS::PodIdentityAssociation")
    assert associations
    for association in associations.values():
        props = association["Properties"]
        role = graph.resource(graph.ref_target(props["RoleArn"]))
        conditions = [s["Condition"]["StringEquals"] for s in _trust(role)]
        assert {
            "aws:SourceAccount": config.account,
            CLUSTER_TAG: cluster_arn,
            NAMESPACE_TAG: props["Namespace"],
            SERVICE_ACCOUNT_TAG: props["ServiceAccount"],
        } in conditions, props["ServiceAccount"]
        # Every statement of the trust is bound this way: nothing admits any cluster.
        assert all(c.get(CLUSTER_TAG) == cluster_arn for c in conditions)
        assert all(
            s["Action"] == ["sts:AssumeRole", "sts:TagSession"] and s["Effect"] == "Allow"
            for s in _trust(role)
        )


@pytest.mark.parametrize("bu", BUS)
def test_the_kubectl_handler_pulls_this_bus_chart_and_nothing_else(synthesized, bu) -> None:
    """aws-cdk-lib 2.275's eks_v2 KubectlProvider attaches AmazonEC2ContainerRegistryReadOnly
    (pull from every repository of the account) and, in the aws partition, public-ECR read-only
    to its handler role (``aws-eks-v2/lib/kubectl-provider.js``). The handler pulls only the
    dependencies chart, from ``<bu>/hyperpod-helm-chart`` (``helm pull oci://`` after ``aws ecr
    get-login-password``: ``kubectl-handler/helm/__init__.py``), and runs in the private
    subnets, so the role keeps AWSLambdaVPCAccessExecutionRole and pull on that one repository
    plus ecr:GetAuthorizationToken (no resource-level permissions, Service Authorization
    Reference)."""
    config = synthesized.configs[bu]
    if config.hyperpod is None:
        pytest.skip(f"{bu} has no HyperPod cluster")
    template = synthesized.template(bu, "hyperpod").to_json()
    graph = TemplateGraph(template)
    role_id, role = graph.find_one_with_id(
        "AWS::IAM::Role", lambda p: p.get("RoleName") == config.naming.role("hyperpod-kubectl")
    )
    managed = [TemplateGraph.render(a) for a in role["Properties"]["ManagedPolicyArns"]]
    assert managed == ["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]
    assert "Conditions" not in template  # CDK's HasEcrPublic went with the public-ECR policy
    statements = _role_statements(graph, role_id)
    repo = f"arn:aws:ecr:{config.region}:{config.account}:repository/"
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
        assert _allows(statements, action, repo + chart_repository(config)), action
    assert _allows(statements, "ecr:GetAuthorizationToken", "*")
    for other in ("zz/hyperpod-helm-chart", f"{bu}-eu/hyperpod-helm-chart", "x"):
        assert not _allows(statements, "ecr:BatchGetImage", repo + other), other
    assert not any(
        r == "*"
        for s in statements
        if "ecr:BatchGetImage" in actions_of(s)
        for r in resources_of(s)
    )


@pytest.mark.parametrize("bu", BUS)
def test_the_alarm_key_admits_cloudwatch_for_this_accounts_alarms_only(synthesized, bu) -> None:
    """CloudWatch needs kms:Decrypt and kms:GenerateDataKey on the key of an encrypted alarm
    topic (SNS developer guide, "Key management", compatibility between event sources from AWS
    services and encrypted topics); the grant carries aws:SourceAccount and aws:SourceArn (the
    alarm) against the confused deputy, as AWS's modern-data-architecture-accelerator writes
    it (``cloudwatch-constructs/lib/alarm-topic-utils.ts``)."""
    config = synthesized.configs[bu]
    if config.endpoints is None or not config.endpoints.on("sagemaker"):
        pytest.skip(f"{bu} has no SageMaker endpoint alarms")
    graph = _graph(synthesized, bu, "endpoints")
    key = graph.find_one(
        "AWS::KMS::Key", lambda p: "cloudwatch.amazonaws.com" in json.dumps(p.get("KeyPolicy"))
    )
    statements = [
        s
        for s in policy_statements(key["Properties"]["KeyPolicy"])
        if "cloudwatch.amazonaws.com" in _services(s)
    ]
    assert statements
    for statement in statements:
        condition = statement["Condition"]
        assert condition["StringEquals"] == {"aws:SourceAccount": config.account}
        source = TemplateGraph.render(condition["ArnLike"]["aws:SourceArn"])
        assert source == f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:*"
