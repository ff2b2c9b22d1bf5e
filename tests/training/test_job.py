"""HyperPod jobs: manifests the training operator accepts (checked against its vendored schema),
values read from the BU's SSM parameters (botocore Stubber), and the job's life (submit, status,
logs, cancel) driven through the real `kubernetes` client against a small fake API server that
each test starts on 127.0.0.1 (tests/harness/fake_kube.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from harness.fake_kube import FakeCluster, fake_kube_server, write_kubeconfig
from kubernetes import client as k8s

from core import parameters as p
from training.job import JobSpec, JobSpecError, build_manifest, crd, main, parse_args
from training.job.manifest import HEALTHY_NODE, INSTANCE_TYPE_LABEL
from training.job.platform import hyperpod_names

BU, TEAM, REGION = "fraud", "scoring", "us-east-1"  # a team of config/fraud.yaml
(HEALTH,) = HEALTHY_NODE
EKS = "fraud-eks"
EKS_ARN = f"arn:aws:eks:{REGION}:111111111111:cluster/{EKS}"
REPO = f"111111111111.dkr.ecr.{REGION}.amazonaws.com/fraud-training"
MLFLOW = f"arn:aws:sagemaker:{REGION}:111111111111:mlflow-tracking-server/fraud-mlflow"
# What the HyperPod stack publishes for team scoring: values here, names from the contract.
PUBLISHED = {
    p.EKS_CLUSTER_NAME: EKS,
    p.HYPERPOD_CLUSTER_NAME: "fraud-hyperpod",
    p.TRAINING_IMAGE_URI: REPO,
    p.MLFLOW_TRACKING_ARN: MLFLOW,
    p.team_parameter(p.TEAM_NAMESPACE, TEAM): "hyperpod-ns-scoring",
    p.team_parameter(p.TEAM_QUEUE, TEAM): "hyperpod-ns-scoring-localqueue",
    p.team_parameter(p.TEAM_SERVICE_ACCOUNT, TEAM): "scoring-trainer",
    p.team_parameter(p.TEAM_FSX_CLAIM, TEAM): "scoring-fsx",
}
SPEC = JobSpec(
    name="qwen3-lora-001",
    image=f"{REPO}:abc123",
    config="/fsx/configs/qwen3-4b-lora.yaml",
    nodes=2,
    namespace="hyperpod-ns-fraud",
    queue="hyperpod-ns-fraud-localqueue",
    priority_class="training-priority",
    efa_per_node=32,
    fsx_claim="fsx-claim",
    env={"MLFLOW_TRACKING_URI": MLFLOW},
)


def _pod_template(manifest: dict[str, Any]) -> k8s.V1PodTemplateSpec:
    """Round-trip the template through the kubernetes client's own deserializer."""
    api = k8s.ApiClient()
    return api._ApiClient__deserialize(
        manifest["spec"]["replicaSpecs"][0]["template"], "V1PodTemplateSpec"
    )


def _stub_ssm(values: dict[str, str], names: list[str], missing: tuple[str, ...] = ()) -> Any:
    """An SSM client whose one GetParameters call must ask for exactly ``names``."""
    ssm = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ssm)
    full = [f"/{BU}/{n}" for n in names]
    response: dict[str, Any] = {
        "Parameters": [
            {"Name": f"/{BU}/{n}", "Type": "String", "Value": values[n]}
            for n in names
            if n not in missing
        ]
    }
    if missing:  # the API leaves the list out when every name exists
        response["InvalidParameters"] = [f"/{BU}/{n}" for n in missing]
    stubber.add_response("get_parameters", response, {"Names": full})
    stubber.activate()
    ssm.stubber = stubber  # kept for assert_no_pending_responses
    return ssm


# --- the manifest and its schema -------------------------------------------------------------
CASES = {
    "single-node": JobSpec(name="one", image="img:1", config="c.yaml"),
    "multi-node": SPEC,
    "mig": JobSpec(
        name="small", image="img:1", config="c.yaml", gpus_per_node=2, mig_profile="1g.10gb"
    ),
    "team-queue": JobSpec(
        name="q",
        image="img:1",
        config="c.yaml",
        namespace="hyperpod-ns-scoring",
        queue="hyperpod-ns-scoring-localqueue",
        service_account="scoring-trainer",
        fsx_claim="scoring-fsx",
        overrides=("max_steps=10",),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_rendered_jobs_match_the_operator_schema(case: str) -> None:
    assert crd.problems(build_manifest(CASES[case])) == []


def test_schema_rejects_a_typo_and_a_wrong_type_naming_the_path() -> None:
    manifest = build_manifest(SPEC)
    manifest["spec"]["replicaSpec"] = manifest["spec"].pop("replicaSpecs")
    manifest["spec"]["runPolicy"]["jobMaxRetryCount"] = "three"
    found = crd.problems(manifest)
    assert "spec: Additional properties are not allowed ('replicaSpec' was unexpected)" in found
    assert any(f.startswith("spec.runPolicy.jobMaxRetryCount: 'three'") for f in found)
    with pytest.raises(crd.ManifestSchemaError, match="replicaSpec"):
        crd.validate(manifest)


def test_manifest_is_a_hyperpod_pytorch_job_in_the_given_queue() -> None:
    m = build_manifest(SPEC)
    assert m["apiVersion"] == "sagemaker.amazonaws.com/v1"
    assert m["kind"] == "HyperPodPyTorchJob"
    assert m["metadata"]["namespace"] == "hyperpod-ns-fraud"
    assert m["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-fraud-localqueue"
    assert m["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "training-priority"
    assert m["spec"]["nprocPerNode"] == "8"
    assert m["spec"]["replicaSpecs"][0]["replicas"] == 2
    assert m["spec"]["runPolicy"]["jobMaxRetryCount"] == 3


def test_container_runs_the_entry_point_under_hyperpodrun_with_gpus_efa_and_fsx() -> None:
    template = _pod_template(build_manifest(SPEC))
    pod = template.spec
    (container,) = pod.containers
    assert container.command == [
        "hyperpodrun",
        "--nnodes=2",
        "--nproc-per-node=8",
        "-m",
        "training.entrypoint",
        "train",
    ]
    assert container.args == ["--config", "/fsx/configs/qwen3-4b-lora.yaml"]
    assert container.resources.limits == {"nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"}
    assert container.resources.requests == container.resources.limits
    assert pod.node_selector["sagemaker.amazonaws.com/node-health-status"] == "Schedulable"
    assert pod.node_selector["node.kubernetes.io/instance-type"] == "ml.p5.48xlarge"
    assert {v.name: v.persistent_volume_claim for v in pod.volumes}["fsx"].claim_name == "fsx-claim"
    assert {e.name: e.value for e in container.env}["MLFLOW_TRACKING_URI"] == MLFLOW
    assert template.metadata.labels["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-fraud-localqueue"


def test_mig_profile_requests_slices_on_nodes_whose_layout_is_applied() -> None:
    pod = _pod_template(build_manifest(CASES["mig"])).spec
    (container,) = pod.containers
    assert container.resources.limits == {"nvidia.com/mig-1g.10gb": "2"}
    assert pod.node_selector["nvidia.com/mig.config.state"] == "success"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"image": ""}, "image"),
        ({"namespace": "Team NS"}, "namespace"),
        ({"nodes": 0}, "nodes"),
        ({"gpus_per_node": 0}, "gpus_per_node"),
        ({"mig_profile": "big"}, "mig_profile"),
    ],
)
def test_bad_specs_name_the_setting(kwargs: dict[str, Any], field: str) -> None:
    base = {"name": "ok", "image": "img:1", "config": "c.yaml"}
    with pytest.raises(JobSpecError, match=f"^{field}"):
        JobSpec(**{**base, **kwargs})


# --- --bu/--team: the BU's parameters ------------------------------------------------------
def test_bu_and_team_fill_every_cluster_specific_value(tmp_path: Path) -> None:
    ssm = _stub_ssm(PUBLISHED, hyperpod_names(TEAM))
    out = tmp_path / "job.yaml"
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j1", "--config", "c.yaml"]
    assert main(parse_args([*argv, "--tag", "abc123", "--output", str(out)]), ssm=ssm) == 0
    ssm.stubber.assert_no_pending_responses()
    manifest = yaml.safe_load(out.read_text())
    assert crd.problems(manifest) == []
    assert manifest["metadata"]["namespace"] == "hyperpod-ns-scoring"
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == (
        "hyperpod-ns-scoring-localqueue"
    )
    pod = _pod_template(manifest).spec
    assert pod.service_account_name == "scoring-trainer"
    assert {v.name: v.persistent_volume_claim for v in pod.volumes}[
        "fsx"
    ].claim_name == "scoring-fsx"
    (container,) = pod.containers
    assert container.image == f"{REPO}:abc123"
    assert {e.name: e.value for e in container.env}["MLFLOW_TRACKING_URI"] == MLFLOW


def test_explicit_flags_win_over_the_published_values(tmp_path: Path) -> None:
    ssm = _stub_ssm(PUBLISHED, hyperpod_names(TEAM))
    out = tmp_path / "job.yaml"
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j1", "--config", "c.yaml"]
    argv += ["--tag", "t", "--namespace", "scratch", "--image", "mine:1", "--output", str(out)]
    assert main(parse_args(argv), ssm=ssm) == 0
    manifest = yaml.safe_load(out.read_text())
    assert manifest["metadata"]["namespace"] == "scratch"
    assert _pod_template(manifest).spec.containers[0].image == "mine:1"
    assert _pod_template(manifest).spec.service_account_name == "scoring-trainer"  # not overridden


def _ssm_missing_queue_and_mlflow() -> Any:
    missing = (p.team_parameter(p.TEAM_QUEUE, TEAM), p.MLFLOW_TRACKING_ARN)
    return _stub_ssm(PUBLISHED, hyperpod_names(TEAM), missing=missing)


def _ssm_access_denied() -> Any:
    ssm = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ssm)
    stubber.add_client_error(
        "get_parameters", service_error_code="AccessDeniedException", service_message="no"
    )
    stubber.activate()
    return ssm


@pytest.mark.parametrize(
    ("make_ssm", "explained"),
    [
        pytest.param(
            _ssm_missing_queue_and_mlflow,
            [
                "/fraud/hyperpod/teams/scoring/queue (published by stack fraud-hyperpod)",
                "/fraud/mlflow/tracking-arn (published by stack fraud-mlflow)",
            ],
            id="missing parameters name the parameter and its stack",
        ),
        pytest.param(
            _ssm_access_denied,
            ["AccessDeniedException", "ssm:GetParameters on /fraud/*"],
            id="access denied is explained",
        ),
    ],
)
def test_unreadable_parameters_are_explained(
    make_ssm: Callable[[], Any], explained: list[str], capsys
) -> None:
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j1", "--config", "c", "--tag", "t"]
    assert main(parse_args(argv), ssm=make_ssm()) == 1
    err = capsys.readouterr().err
    for words in explained:
        assert words in err


def test_bu_without_team_is_a_usage_error(capsys) -> None:
    assert main(parse_args(["render", "--bu", BU, "--name", "j", "--config", "c"])) == 2
    assert "--team" in capsys.readouterr().err


# --- the job's life against a fake API server on 127.0.0.1 --------------------------------
def _cluster_state() -> FakeCluster:
    state = FakeCluster(
        namespaces={"hyperpod-ns-scoring"},
        queues={("hyperpod-ns-scoring", "hyperpod-ns-scoring-localqueue")},
    )
    # BU fraud's groups (config/fraud.yaml): 2 x p5 with whole GPUs, 1 x p5en cut into 1g.18gb.
    state.nodes = [
        _node("hyperpod-i-0", "ml.p5.48xlarge", {"nvidia.com/gpu": "8"}),
        _node("hyperpod-i-1", "ml.p5.48xlarge", {"nvidia.com/gpu": "8"}),
        _node("hyperpod-i-2", "ml.p5en.48xlarge", {"nvidia.com/mig-1g.18gb": "56"}, mig="success"),
    ]
    return state


def _node(name: str, kind: str, gpus: dict[str, str], mig: str | None = None) -> dict[str, Any]:
    labels = {**HEALTHY_NODE, INSTANCE_TYPE_LABEL: kind}
    if mig:
        labels["nvidia.com/mig.config.state"] = mig
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {**gpus, "cpu": "192"}},
    }


def _pod(name: str, node: str, restarts: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"HPJob": "j1"}},
        "spec": {"nodeName": node, "containers": [{"name": "trainer", "image": "i"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "trainer",
                    "restartCount": restarts,
                    "ready": True,
                    "image": "i",
                    "imageID": "",
                }
            ],
        },
    }


def _argv(command: str, kubeconfig: Path, *extra: str) -> list[str]:
    argv = [command, "--bu", BU, "--team", TEAM, "--name", "j1", "--kubeconfig", str(kubeconfig)]
    if command == "submit":
        argv += ["--config", "c.yaml", "--tag", "abc123"]
    return [*argv, *extra]


def _names(command: str) -> list[str]:
    if command == "submit":
        return hyperpod_names(TEAM)
    return [p.EKS_CLUSTER_NAME, p.team_parameter(p.TEAM_NAMESPACE, TEAM)]


def _main(command: str, kubeconfig: Path, *extra: str) -> int:
    argv = _argv(command, kubeconfig, *extra)
    return main(parse_args(argv), ssm=_stub_ssm(PUBLISHED, _names(command)))


def test_submit_status_logs_cancel_through_the_kubernetes_client(tmp_path: Path, capsys) -> None:
    state = _cluster_state()
    with fake_kube_server(state) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, EKS_ARN)
        assert _main("submit", kubeconfig, "--mig-profile", "1g.18gb", "--gpus-per-node", "2") == 0
        assert (
            "created HyperPodPyTorchJob hyperpod-ns-scoring/j1 on HyperPod cluster fraud-hyperpod"
            in capsys.readouterr().out
        )
        posted = state.jobs[("hyperpod-ns-scoring", "j1")]
        assert crd.problems(posted) == []
        assert posted["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == (
            "hyperpod-ns-scoring-localqueue"
        )
        checked = [path for method, path, _ in state.requests if method == "GET"]
        assert "/api/v1/namespaces/hyperpod-ns-scoring" in checked
        assert (
            "/apis/kueue.x-k8s.io/v1beta1/namespaces/hyperpod-ns-scoring/localqueues/"
            "hyperpod-ns-scoring-localqueue"
        ) in checked
        assert "/api/v1/nodes" in checked

        posted["status"] = {
            "conditions": [
                {"type": "Created", "status": "True"},
                {"type": "Running", "status": "True"},
            ],
            "restartCount": 1,
        }
        state.pods["hyperpod-ns-scoring"] = [
            _pod("j1-pod-1", "hyperpod-i-1", 0),
            _pod("j1-pod-0", "hyperpod-i-0", 2),
        ]
        state.logs = {"j1-pod-0": "step 1 loss 2.5\nstep 2 loss 2.1\n", "j1-pod-1": "rank 1\n"}
        assert _main("status", kubeconfig) == 0
        out = capsys.readouterr().out
        assert "hyperpod-ns-scoring/j1: Running, 1 job restart(s), 2 pod(s)" in out
        assert "j1-pod-0  Running  node=hyperpod-i-0  restarts=2" in out
        assert "j1-pod-1  Running  node=hyperpod-i-1  restarts=0" in out

        assert _main("logs", kubeconfig) == 0
        assert capsys.readouterr().out == "step 1 loss 2.5\nstep 2 loss 2.1\n"  # rank 0 only

        assert _main("cancel", kubeconfig) == 0
        assert ("hyperpod-ns-scoring", "j1") not in state.jobs
        assert _main("cancel", kubeconfig) == 1
        assert "no HyperPodPyTorchJob hyperpod-ns-scoring/j1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("break_it", "extra", "message"),
    [
        (lambda s: s.namespaces.clear(), (), "namespace 'hyperpod-ns-scoring' does not exist"),
        (
            lambda s: s.queues.clear(),
            (),
            "LocalQueue 'hyperpod-ns-scoring-localqueue' does not exist",
        ),
        (
            # The p5en node has the slices, but its MIG layout is not applied yet: the job's node
            # selector excludes it, so the check must too (it used to count any node's slices).
            lambda s: s.nodes[2]["metadata"]["labels"].update(
                {"nvidia.com/mig.config.state": "pending"}
            ),
            ("--mig-profile", "1g.18gb", "--gpus-per-node", "2"),
            "nvidia.com/mig-1g.18gb x 2 per node is not offered on 1 node(s) matching the job's "
            "node selector (0 of 0 matching qualify; selector node.kubernetes.io/instance-type="
            "ml.p5en.48xlarge, nvidia.com/mig.config.state=success, "
            "sagemaker.amazonaws.com/node-health-status=Schedulable); the cluster's GPU "
            "resources: nvidia.com/gpu: 16 on ml.p5.48xlarge, nvidia.com/mig-1g.18gb: 56 on "
            "ml.p5en.48xlarge",
        ),
        (
            lambda s: s.nodes[1]["metadata"]["labels"].update(
                {**HEALTHY_NODE, HEALTH: "Unschedulable"}
            ),
            ("--nodes", "2"),
            "nvidia.com/gpu x 8 per node is not offered on 2 node(s) matching the job's node "
            "selector (1 of 1 matching qualify",
        ),
        (
            lambda s: s.jobs.update({("hyperpod-ns-scoring", "j1"): {}}),
            (),
            "HyperPodPyTorchJob hyperpod-ns-scoring/j1 already exists",
        ),
    ],
    ids=["namespace", "queue", "mig-layout-pending", "unhealthy-node", "exists"],
)
def test_submit_errors_are_clear(tmp_path: Path, capsys, break_it, extra, message) -> None:
    state = _cluster_state()
    break_it(state)
    with fake_kube_server(state) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, EKS_ARN)
        assert _main("submit", kubeconfig, *extra) == 1
    assert message in capsys.readouterr().err
    posted = [path for method, path, _ in state.requests if method == "POST"]
    # A failed pre-flight check creates nothing; only the name clash gets as far as the create.
    assert len(posted) == (1 if "already exists" in message else 0)


def test_forbidden_cluster_reads_are_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    state = _cluster_state()
    state.forbidden = {"namespaces", "nodes"}  # a namespace-scoped access entry
    with fake_kube_server(state) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, EKS_ARN)
        assert _main("submit", kubeconfig, "--mig-profile", "1g.18gb") == 0
    err = capsys.readouterr().err
    assert "not allowed to read namespace" in err
    assert "not allowed to list nodes" in err


def test_unreachable_cluster_and_wrong_context_are_explained(tmp_path: Path, capsys) -> None:
    with fake_kube_server(FakeCluster()) as url:
        closed = url  # the server stops when the block ends: nothing listens there any more
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", closed, EKS_ARN)
    assert _main("status", kubeconfig) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the cluster API at {closed}" in err
    assert "private" in err

    other = write_kubeconfig(tmp_path / "other", closed, f"arn:aws:eks:{REGION}:1:cluster/x")
    assert _main("status", other) == 1
    err = capsys.readouterr().err
    assert "not this BU's EKS cluster 'fraud-eks'" in err
    assert f"aws eks update-kubeconfig --name {EKS} --region {REGION}" in err


def test_a_local_config_is_validated_before_rendering(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 1\n")
    assert main(parse_args(["render", "--name", "j", "--image", "i:1", "--config", str(bad)])) == 2
    assert "--config:" in capsys.readouterr().err


@pytest.mark.parametrize("image", ["<training image>", "training", "Repo/Upper:1", "a b:1"])
def test_an_image_that_is_not_a_tagged_reference_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image: str
) -> None:
    out = tmp_path / "job.yaml"
    argv = ["render", "--name", "j", "--image", image, "--config", "/fsx/c.yaml"]
    assert main(parse_args([*argv, "--output", str(out)])) == 2
    err = capsys.readouterr().err
    assert f"image: {image!r} is not an image reference with a tag or digest" in err
    assert not out.exists()


def test_a_digest_pinned_image_renders(tmp_path: Path) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud/training@sha256:" + "a" * 64
    out = tmp_path / "job.yaml"
    argv = ["render", "--name", "j", "--image", image, "--config", "/fsx/c.yaml"]
    assert main(parse_args([*argv, "--output", str(out)])) == 0
    assert image in out.read_text(encoding="utf-8")


# --- where the pods land: the BU's groups decide the instance type ---------------------------
def _no_aws() -> Any:
    """An SSM client that fails the test if any call reaches it."""
    ssm = boto3.client("ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    Stubber(ssm).activate()  # nothing queued: any call raises
    return ssm


def _selector(manifest: dict[str, Any]) -> dict[str, str]:
    return dict(_pod_template(manifest).spec.node_selector)


@pytest.mark.parametrize(
    ("extra", "instance_type"),
    [
        (("--mig-profile", "1g.18gb", "--gpus-per-node", "7"), "ml.p5en.48xlarge"),
        ((), "ml.p5.48xlarge"),  # whole GPUs: the h100 group
    ],
)
def test_the_instance_type_comes_from_the_bu_group_that_offers_the_request(
    tmp_path: Path, extra: tuple[str, ...], instance_type: str
) -> None:
    out = tmp_path / "job.yaml"
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j1", "--config", "c.yaml"]
    ssm = _stub_ssm(PUBLISHED, hyperpod_names(TEAM))
    assert main(parse_args([*argv, "--tag", "t", "--output", str(out), *extra]), ssm=ssm) == 0
    selector = _selector(yaml.safe_load(out.read_text()))
    assert selector[INSTANCE_TYPE_LABEL] == instance_type
    assert ("nvidia.com/mig.config.state" in selector) is bool(extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--bu", BU, "--team", TEAM, "--mig-profile", "1g.10gb"),
            "mig_profile: no GPU group of BU 'fraud' offers 1g.10gb MIG slices; its GPU groups: "
            "h200-mig (ml.p5en.48xlarge, all-1g.18gb), h100 (ml.p5.48xlarge, whole GPUs)",
        ),
        (
            ("--bu", BU, "--team", TEAM, "--mig-profile", "1g.18gb", "--instance-type",
             "ml.p5.48xlarge"),
            "instance_type: ml.p5.48xlarge offers no 1g.18gb MIG slices in BU 'fraud'; its GPU "
            "groups: h200-mig",
        ),
        (
            ("--bu", BU, "--team", TEAM, "--instance-type", "ml.p5en.48xlarge"),
            "instance_type: ml.p5en.48xlarge offers no whole GPUs in BU 'fraud'",
        ),
        (
            ("--bu", BU, "--team", TEAM, "--mig-profile", "1g.18gb", "--gpus-per-node", "57"),
            "gpus_per_node: 57 slices per node, but one ml.p5en.48xlarge node has 56",
        ),
        (
            ("--bu", BU, "--team", "nlp"),
            "--team: 'nlp' is not a team of BU 'fraud'; its teams: scoring, research",
        ),
        (("--bu", "nobody", "--team", TEAM), "--bu: no business unit 'nobody' here"),
        (
            ("--image", "i:1", "--mig-profile", "1g.18gb"),
            "instance_type: 1g.18gb MIG slices come on ml.p5e.48xlarge, ml.p5en.48xlarge; pick "
            "one with --instance-type",
        ),
        (
            ("--image", "i:1", "--mig-profile", "1g.18gb", "--instance-type", "ml.p5.48xlarge"),
            "instance_type: ml.p5.48xlarge offers no 1g.18gb MIG slices in any instance type; "
            "types that have them: ml.p5e.48xlarge, ml.p5en.48xlarge",
        ),
    ],
    ids=["profile-not-in-bu", "type-without-profile", "mig-type-for-whole-gpus", "too-many-slices",
         "unknown-team", "unknown-bu", "ambiguous-profile", "type-without-profile-no-bu"],
)  # fmt: skip
def test_impossible_placements_are_refused_before_any_aws_call(
    capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    argv = ["render", "--name", "j1", "--config", "c.yaml", "--tag", "t", *extra]
    assert main(parse_args(argv), ssm=_no_aws()) == 2
    assert message in capsys.readouterr().err


def test_a_profile_only_one_type_offers_picks_it_without_a_bu(tmp_path: Path) -> None:
    out = tmp_path / "job.yaml"
    argv = ["render", "--name", "j", "--image", "i:1", "--config", "c.yaml", "--output", str(out)]
    assert main(parse_args([*argv, "--mig-profile", "1g.5gb"])) == 0
    assert _selector(yaml.safe_load(out.read_text()))[INSTANCE_TYPE_LABEL] == "ml.p4d.24xlarge"
    with pytest.raises(JobSpecError, match=r"instance_type: ml\.p5\.48xlarge has no 1g\.18gb"):
        JobSpec(name="j", image="i:1", config="c", mig_profile="1g.18gb")  # the default type


# --- the training config: validated here, or said plainly that it was not ------------------
def test_config_file_validates_the_config_the_container_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = Path(__file__).resolve().parents[2] / "training" / "configs" / "qwen3-4b-lora.yaml"
    out = tmp_path / "job.yaml"
    argv = ["render", "--name", "j", "--image", "i:1", "--config", "/fsx/configs/q.yaml"]
    argv += ["--output", str(out)]
    assert main(parse_args([*argv, "--config-file", str(shipped), "--set", "max_steps=100"])) == 0
    assert capsys.readouterr().err == ""
    container = _pod_template(yaml.safe_load(out.read_text())).spec.containers[0]
    assert container.args == ["--config", "/fsx/configs/q.yaml", "--set", "max_steps=100"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(shipped.read_text().replace("optim:", "optimm:"))
    assert main(parse_args([*argv, "--config-file", str(bad)])) == 2
    assert "--config-file: " in capsys.readouterr().err
    assert main(parse_args([*argv, "--config-file", str(shipped), "--set", "optim.lrr=1"])) == 2
    assert "optim.lrr" in capsys.readouterr().err

    assert main(parse_args(argv)) == 0  # no local copy: rendered, with a plain warning
    err = capsys.readouterr().err
    assert "--config /fsx/configs/q.yaml is not a file here, so it was NOT validated" in err
    assert "--config-file" in err


# --- the region: resolved once, said where it came from, or one line saying how to set it ---
@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def test_no_region_is_one_line_saying_how_to_set_one(
    no_region: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.prepare import cli as prepare_cli

    monkeypatch.setenv("AWS_REGION", "us-east-1")  # what the README used to export
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j", "--config", "c", "--tag", "t"]
    assert main(parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2  # the unvalidated-config warning, then the error
    assert "error: no AWS region set: AWS_REGION=us-east-1 is set, but boto3 reads" in err
    processing = ["--backend", "processing", "--bu", BU, "--tag", "t", "--input", "s3://d/x"]
    assert prepare_cli([*processing, "--output", "s3://d/o/", "--tokenizer", "/app/t"]) == 2
    assert capsys.readouterr().err.startswith("error: no AWS region set: ")


def test_the_region_and_its_source_are_printed(
    no_region: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.job import platform

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    asked: list[str] = []

    def client(region: str) -> Any:
        asked.append(region)
        return _stub_ssm(PUBLISHED, hyperpod_names(TEAM))

    monkeypatch.setattr(platform, "ssm_client", client)
    argv = ["render", "--bu", BU, "--team", TEAM, "--name", "j", "--config", "c", "--tag", "t"]
    assert main(parse_args(argv)) == 0
    assert asked == [REGION]
    assert "region us-east-1 (from AWS_DEFAULT_REGION)" in capsys.readouterr().err
    assert main(parse_args([*argv, "--region", "eu-west-1"])) == 0
    assert asked == [REGION, "eu-west-1"]
    assert "region eu-west-1 (from --region)" in capsys.readouterr().err
