"""HyperPod job manifests: the shape the training operator and Kueue expect; bad specs refused."""

import pytest
import yaml
from kubernetes import client as k8s

from training.job import JobSpec, JobSpecError, build_manifest, main

SPEC = JobSpec(
    name="qwen3-lora-001",
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/qwen3-train:1.0",
    config="/fsx/configs/qwen3-4b-lora.yaml",
    nodes=2,
    team="fraud",
    priority_class="training-priority",
    efa_per_node=32,
    env={
        "MLFLOW_TRACKING_URI": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/x"
    },
)


def _pod_template(manifest):
    """Round-trip the template through the kubernetes client's own deserializer."""
    api = k8s.ApiClient()
    return api._ApiClient__deserialize(
        manifest["spec"]["replicaSpecs"][0]["template"], "V1PodTemplateSpec"
    )


def test_manifest_is_a_hyperpod_pytorch_job_in_the_team_queue():
    m = build_manifest(SPEC)
    assert m["apiVersion"] == "sagemaker.amazonaws.com/v1"
    assert m["kind"] == "HyperPodPyTorchJob"
    assert m["metadata"]["namespace"] == "hyperpod-ns-fraud"
    assert m["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-fraud-localqueue"
    assert m["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "training-priority"
    assert m["spec"]["nprocPerNode"] == "8"
    assert m["spec"]["replicaSpecs"][0]["replicas"] == 2
    assert m["spec"]["runPolicy"]["jobMaxRetryCount"] == 3


def test_container_runs_hyperpodrun_on_healthy_nodes_with_gpus_efa_and_fsx():
    template = _pod_template(build_manifest(SPEC))
    pod = template.spec
    (container,) = pod.containers
    assert container.command[:3] == ["hyperpodrun", "--nnodes=2", "--nproc-per-node=8"]
    assert container.command[-2:] == ["-m", "training.train"]
    assert container.args == ["--config", "/fsx/configs/qwen3-4b-lora.yaml"]
    assert container.resources.limits == {"nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"}
    assert container.resources.requests == container.resources.limits
    assert pod.node_selector["sagemaker.amazonaws.com/node-health-status"] == "Schedulable"
    assert pod.node_selector["node.kubernetes.io/instance-type"] == "ml.p5.48xlarge"
    assert {v.name: v.persistent_volume_claim for v in pod.volumes}["fsx"].claim_name == "fsx-claim"
    assert {e.name: e.value for e in container.env}["MLFLOW_TRACKING_URI"].startswith(
        "arn:aws:sagemaker"
    )
    assert template.metadata.labels["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-fraud-localqueue"


def test_mig_profile_requests_slices_instead_of_whole_gpus():
    spec = JobSpec(
        name="small", image="img", config="c.yaml", gpus_per_node=2, mig_profile="1g.10gb"
    )
    (container,) = _pod_template(build_manifest(spec)).spec.containers
    assert container.resources.limits == {"nvidia.com/mig-1g.10gb": "2"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"nodes": 0}, "nodes"),
        ({"gpus_per_node": 0}, "gpus_per_node"),
        ({"team": "Fraud Team"}, "team"),
        ({"mig_profile": "big"}, "mig_profile"),
    ],
)
def test_bad_specs_name_the_setting(kwargs, field):
    base = {"name": "ok", "image": "img", "config": "c.yaml"}
    with pytest.raises(JobSpecError, match=f"^{field}"):
        JobSpec(**{**base, **kwargs})


def test_cli_writes_yaml_and_submits_through_the_custom_objects_api(tmp_path, capsys):
    out = tmp_path / "job.yaml"
    assert (
        main(
            [
                "--name",
                "j1",
                "--image",
                "img",
                "--config",
                "c.yaml",
                "--team",
                "credit",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert yaml.safe_load(out.read_text())["metadata"]["namespace"] == "hyperpod-ns-credit"

    calls = []

    class FakeCustomObjects:  # the cluster side; the manifest and the call are the real ones
        def create_namespaced_custom_object(self, **kwargs):
            calls.append(kwargs)
            return kwargs["body"]

    argv = ["--name", "j1", "--image", "img", "--config", "c.yaml", "--team", "credit", "--submit"]
    assert main(argv, api=FakeCustomObjects()) == 0
    assert calls[0]["plural"] == "hyperpodpytorchjobs"
    assert calls[0]["group"] == "sagemaker.amazonaws.com"
    assert calls[0]["namespace"] == "hyperpod-ns-credit"
    assert "created HyperPodPyTorchJob hyperpod-ns-credit/j1" in capsys.readouterr().out
    assert main(["--name", "BAD", "--image", "i", "--config", "c"]) == 2
