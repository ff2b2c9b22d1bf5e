"""The pipeline role's Kubernetes RBAC against the Kubernetes calls the pipeline's code makes.

Source: EKS user guide, "Review access policy permissions"
(docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html): access policies hold
fixed rules that cannot be changed, and AmazonEKSEditPolicy's rules name only Kubernetes' own
API groups (``apps``, ``autoscaling``, ``batch``, ``discovery.k8s.io``, ``extensions``,
``networking.k8s.io``, ``policy`` and the core group), none of the HyperPod custom resources the
pipeline works on; "If the permissions in the access policies don't meet your needs, create
Kubernetes RBAC objects. Then specify Kubernetes group names for your access entries". So the
pipeline stack gives the MWAA role an access entry with one Kubernetes group and, per namespace,
a Role bound to that group (``platform_constructs.pipeline_rbac``).

The contract, both ways: every request the pipeline's code sends (the HyperPod training
backend's submit, retried submit and sensor pokes; the HyperPod deploy target's champion read,
a deploy that becomes ready and one that is rolled back) is allowed by the synthesized Role of
its namespace, and every verb of every rule is used by some request (nothing granted that the
code does not call). The requests are those the real ``kubernetes`` client sent to the fake API
server (``harness.fake_kube``). Each becomes a Kubernetes authorization attribute set as the API
server derives it (Kubernetes docs, "Authorization", Determine the Request Verb: POST ->
``create``; GET of one object -> ``get``, of a collection -> ``list`` (``watch`` with
``?watch``, which the pipeline never sends and the Roles do not grant); PUT -> ``update``;
PATCH -> ``patch``; DELETE -> ``delete``/``deletecollection``); a request with a name matches a
rule with ``resourceNames`` only by a listed name ("Using RBAC Authorization", Referring to
resources). No example BU trains or deploys on HyperPod, so the config here is fraud changed
after validation, as in tests/stacks/test_pipeline_stack.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import moto
import pytest
from aws_cdk.assertions import Template
from harness.cdk_context import cdk_json_context
from harness.fake_kube import Clock, FakeCluster, fake_kube_server
from harness.pipeline_backend import (
    ClusterLookup,
    fraud_pipeline,
    hyperpod_training,
    offline_backend,
    offline_client,
)
from harness.template_graph import TemplateGraph

from config.loader import CONFIG_DIR
from config.schema import BusinessUnitConfig
from core import parameters as p
from pipelines.aws import AwsBackend
from pipelines.lifecycle import Run, StepFailedError
from stacks.stage import BusinessUnitStage

REGION = "us-east-1"
TRAIN_TEAM, ENDPOINT = "research", "qwen3-tools-hp"
DEPLOY_NAMESPACE = "hyperpod-ns-scoring"  # another team's: each namespace gets its own rules
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
DIGEST = "sha256:" + "ef" * 32
PUBLISHED = {
    p.EKS_CLUSTER_NAME: "fraud-eks",
    p.HYPERPOD_CLUSTER_NAME: "fraud-hyperpod",
    p.TRAINING_IMAGE_URI: "111111111111.dkr.ecr.us-east-1.amazonaws.com/fraud/training",
    p.MLFLOW_TRACKING_ARN: "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/f",
    p.team_parameter(p.TEAM_NAMESPACE, TRAIN_TEAM): f"hyperpod-ns-{TRAIN_TEAM}",
    p.team_parameter(p.TEAM_QUEUE, TRAIN_TEAM): f"hyperpod-ns-{TRAIN_TEAM}-localqueue",
    p.team_parameter(p.TEAM_SERVICE_ACCOUNT, TRAIN_TEAM): "training",
    p.team_parameter(p.TEAM_FSX_CLAIM, TRAIN_TEAM): "fsx-claim",
    p.DATA_BUCKET: "fraud-data-111111111111-us-east-1",
    p.MODELS_BUCKET: "fraud-models-111111111111-us-east-1",
    p.CHECKPOINTS_BUCKET: "fraud-checkpoints-111111111111-us-east-1",
}


@dataclass(frozen=True, order=True)
class Call:
    """What the API server authorizes a request as: verb, API group, resource (with its
    subresource), namespace (None: cluster-scoped) and object name (None: a collection)."""

    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


def as_call(method: str, path: str) -> Call:
    """``/api/v1/...`` (the core group) or ``/apis/<group>/<version>/...``, as Kubernetes'
    request-info resolver reads it."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = None
    if len(rest) > 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    name = rest[1] if len(rest) > 1 else None
    verb = {
        "POST": "create",
        "GET": "get" if name else "list",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return Call(verb, group, resource, namespace, name)


def allows(rule: dict[str, Any], call: Call) -> bool:
    names = rule.get("resourceNames")
    return (
        call.group in rule["apiGroups"]
        and call.resource in rule["resources"]
        and call.verb in rule["verbs"]
        and (not names or call.name in names)
    )


def both_paths() -> BusinessUnitConfig:
    """fraud training on HyperPod in the research team's namespace and deploying to its HyperPod
    endpoint in the scoring team's (a 10-minute readiness timeout keeps the rollback short)."""
    return fraud_pipeline(
        train=hyperpod_training(TRAIN_TEAM),
        deploy={"endpoint": ENDPOINT, "namespace": DEPLOY_NAMESPACE, "ready_timeout_minutes": 10},
    )


@pytest.fixture(scope="module")
def config() -> BusinessUnitConfig:
    return both_paths()


@pytest.fixture(scope="module")
def roles(config: BusinessUnitConfig) -> dict[str, list[dict[str, Any]]]:
    """namespace -> the rules of the Role its manifest applies, once the chain from the
    pipeline's role is checked: the access entry of the MWAA execution role names one
    Kubernetes group and no access policy, and each namespace's RoleBinding grants its Role
    to exactly that group."""
    app = cdk.App(context=cdk_json_context(), builtin_cloud_formation_validation=False)
    stage = BusinessUnitStage(app, config=config)
    assert stage.pipeline is not None
    graph = TemplateGraph(Template.from_stack(stage.pipeline).to_json())
    (entry,) = graph.of_type("AWS::EKS::AccessEntry").values()
    environment = graph.find_one("AWS::MWAA::Environment", lambda q: True)
    assert entry["Properties"]["PrincipalArn"] == environment["Properties"]["ExecutionRoleArn"]
    assert "AccessPolicies" not in entry["Properties"]
    (group,) = entry["Properties"]["KubernetesGroups"]
    found: dict[str, list[dict[str, Any]]] = {}
    for manifest in graph.of_type(MANIFEST).values():
        objects = {o["kind"]: o for o in json.loads(manifest["Properties"]["Manifest"])}
        assert set(objects) == {"Role", "RoleBinding"}
        role, binding = objects["Role"], objects["RoleBinding"]
        namespace = role["metadata"]["namespace"]
        assert binding["metadata"]["namespace"] == namespace
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
        ]
        assert namespace not in found
        found[namespace] = role["rules"]
    return found


def _training(backend: AwsBackend, state: FakeCluster, run: Run) -> None:
    """Submit, a retried submit that finds the job, and sensor pokes until it completes, then
    one that finds it failed."""
    prepared = {"dataset": "s3://d/pipeline/data/", "image_digest": DIGEST}
    handle = backend.submit_training(run, prepared, [])
    assert handle["resumed"] is False
    assert backend.submit_training(run, prepared, [])["resumed"] is True
    job = state.jobs[(handle["namespace"], run.name)]
    job["status"] = {"conditions": [{"type": "Running", "status": "True"}]}
    assert backend.training_finished(handle) is False
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert backend.training_finished(handle) is True
    job["status"] = {"conditions": [{"type": "Failed", "status": "True", "message": "OOM"}]}
    with pytest.raises(StepFailedError, match="failed: OOM"):
        backend.training_finished(handle)


def _deploying(
    backend: AwsBackend, state: FakeCluster, clock: Clock, config: BusinessUnitConfig
) -> None:
    """The champion read, a deploy the operator reports ready after one poll, and a deploy
    that is never ready and is rolled back."""
    key = (DEPLOY_NAMESPACE, config.naming.resource(ENDPOINT))

    def report(ready: str) -> None:
        obj = state.endpoint_configs[key]
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "state": ready}

    first, second = (Run(bu=config, airflow_run_id=f"scheduled__2026-12-0{d}") for d in (7, 8))
    models = PUBLISHED[p.MODELS_BUCKET]
    assert backend.champion(first) == f"s3://{models}/qwen3-4b-tools/v1/"
    clock.on_sleep = lambda: report("DeploymentComplete")
    backend.deploy(first, {"model": f"s3://{models}/pipeline/{first.name}/model/"})
    clock.on_sleep = lambda: report("DeploymentInProgress")
    with pytest.raises(StepFailedError, match="re-applied the previous spec"):
        backend.deploy(second, {"model": f"s3://{models}/pipeline/{second.name}/model/"})


@pytest.fixture(scope="module")
def calls(config: BusinessUnitConfig) -> list[Call]:
    """Every request of both paths, as the fake API server received them."""
    from config.hyperpod_endpoints import hyperpod_endpoint
    from inference.hyperpod import build_endpoint_config

    live = build_endpoint_config(
        hyperpod_endpoint(CONFIG_DIR / "fraud.yaml", ENDPOINT, DEPLOY_NAMESPACE)
    )
    live["metadata"] |= {"generation": 1, "resourceVersion": "1"}
    live["status"] = {"observedGeneration": 1, "state": "DeploymentComplete"}
    state = FakeCluster(
        namespaces={f"hyperpod-ns-{TRAIN_TEAM}", DEPLOY_NAMESPACE},
        endpoint_configs={(DEPLOY_NAMESPACE, live["metadata"]["name"]): live},
    )
    clock = Clock()
    with fake_kube_server(state) as url, moto.mock_aws():
        ssm, s3 = offline_client("ssm", REGION), offline_client("s3", REGION)
        for name, value in PUBLISHED.items():
            ssm.put_parameter(Name=config.naming.parameter(name), Value=value, Type="String")
        s3.create_bucket(Bucket=PUBLISHED[p.DATA_BUCKET])
        eks = ClusterLookup(url, PUBLISHED[p.EKS_CLUSTER_NAME])
        backend = offline_backend(config, PUBLISHED, clock=clock, ssm=ssm, s3=s3, eks=eks)
        _training(backend, state, Run(bu=config, airflow_run_id="scheduled__2026-12-07"))
        _deploying(backend, state, clock, config)
    return [as_call(method, path) for method, path, _ in state.requests]


def test_the_flows_sent_what_each_path_needs(calls: list[Call], config: BusinessUnitConfig) -> None:
    """The flows reached both paths' calls (so the checks below are not vacuous)."""
    verbs = {(c.namespace, c.resource, c.verb) for c in calls}
    jobs, configs = "hyperpodpytorchjobs", "inferenceendpointconfigs"
    assert verbs == {
        (f"hyperpod-ns-{TRAIN_TEAM}", jobs, "create"),
        (f"hyperpod-ns-{TRAIN_TEAM}", jobs, "get"),
        (DEPLOY_NAMESPACE, configs, "get"),
        (DEPLOY_NAMESPACE, configs, "update"),
    }
    assert sum(c.verb == "update" for c in calls) == 3  # the deploy, the second, its rollback


def test_every_call_of_the_pipeline_is_allowed_by_its_role(
    calls: list[Call], roles: dict[str, list[dict[str, Any]]]
) -> None:
    """No request would be refused with 403: each is namespaced, in a namespace with a Role,
    and matches one of its rules (API group, resource, verb, and name where the rule names
    objects)."""
    refused = sorted(
        {
            c
            for c in calls
            if c.namespace is None or not any(allows(r, c) for r in roles.get(c.namespace, []))
        }
    )
    assert refused == []


def test_the_roles_grant_nothing_the_pipeline_does_not_call(
    calls: list[Call], roles: dict[str, list[dict[str, Any]]]
) -> None:
    """Every namespace with a Role is called, and every (verb, group, resource, name) a rule
    grants is used by some request: no verb, resource or namespace beyond the code's."""
    assert set(roles) == {c.namespace for c in calls}
    unused = []
    for namespace, rules in roles.items():
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            used = any(
                                c.namespace == namespace
                                and (c.verb, c.group, c.resource) == (verb, group, resource)
                                and (name is None or c.name == name)
                                for c in calls
                            )
                            if not used:
                                unused.append((namespace, verb, group, resource, name))
    assert unused == []


def test_the_request_verbs_are_kubernetes_authorization_verbs() -> None:
    """The mapping above, on the paths the client sends (Kubernetes docs, "Authorization",
    Determine the Request Verb)."""
    jobs = "/apis/sagemaker.amazonaws.com/v1/namespaces/ns/hyperpodpytorchjobs"
    assert as_call("POST", jobs) == Call(
        "create", "sagemaker.amazonaws.com", "hyperpodpytorchjobs", "ns", None
    )
    assert as_call("GET", jobs).verb == "list"
    assert as_call("GET", f"{jobs}/j") == Call(
        "get", "sagemaker.amazonaws.com", "hyperpodpytorchjobs", "ns", "j"
    )
    assert as_call("PUT", f"{jobs}/j/status").resource == "hyperpodpytorchjobs/status"
    assert as_call("GET", "/api/v1/namespaces/ns/pods/p/log") == Call(
        "get", "", "pods/log", "ns", "p"
    )
    assert as_call("GET", "/api/v1/namespaces/ns") == Call("get", "", "namespaces", None, "ns")
    assert as_call("GET", "/api/v1/nodes") == Call("list", "", "nodes", None, None)
