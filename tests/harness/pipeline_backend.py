"""What the tests of the pipeline's AWS backend (``pipelines.aws``) against the fake API server
(``harness.fake_kube``) build around it: fraud's pipeline changed after validation (no example
BU trains or deploys on HyperPod), boto3 clients that never reach AWS, and the cluster lookup
that points the backend's Kubernetes clients at the fake server."""

import base64
from typing import Any

import boto3
from harness.fake_kube import Clock

from config.loader import CONFIG_DIR, load_file
from config.schema import BusinessUnitConfig
from pipelines.aws import AwsBackend
from training.job.platform import BuPlatform

# The clients AwsBackend takes that these tests give it (ECR: the Training Jobs path only).
SERVICES = ("ssm", "sagemaker", "s3", "cloudwatch", "eks", "sts")


def fraud_pipeline(
    *, train: dict[str, Any] | None = None, deploy: dict[str, Any] | None = None
) -> BusinessUnitConfig:
    """The example BU fraud with ``train`` and ``deploy`` merged into its pipeline's sections."""
    fraud, _ = load_file(CONFIG_DIR / "fraud.yaml")
    assert fraud is not None
    assert fraud.pipeline is not None
    pipeline = fraud.pipeline.model_copy(
        update={
            "train": fraud.pipeline.train.model_copy(update=train or {}),
            "deploy": fraud.pipeline.deploy.model_copy(update=deploy or {}),
        }
    )
    return fraud.model_copy(update={"pipeline": pipeline})


def hyperpod_training(team: str) -> dict[str, Any]:
    """A ``fraud_pipeline`` train section: HyperPod, on p5 in ``team``'s queue, from a base
    model under the team's prefix of the models bucket (all its pods may read)."""
    return {
        "backend": "hyperpod",
        "team": team,
        "instance_type": "ml.p5.48xlarge",
        "base_model": f"{team}/base/Qwen3-4B/",
    }


def offline_client(service: str, region: str) -> Any:
    """A boto3 client with made-up credentials, for moto, a Stubber or presigning."""
    return boto3.client(
        service, region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )


class ClusterLookup:
    """eks:DescribeCluster of ``cluster_name`` for every fresh Kubernetes client the backend
    makes (one per read or write): the fake API server at ``url``."""

    def __init__(self, url: str, cluster_name: str) -> None:
        self.url = url
        self.cluster_name = cluster_name

    def describe_cluster(self, name: str) -> dict[str, Any]:
        assert name == self.cluster_name
        ca = base64.b64encode(b"ca").decode()
        return {
            "cluster": {"name": name, "endpoint": self.url, "certificateAuthority": {"data": ca}}
        }


def offline_backend(
    bu: BusinessUnitConfig,
    published: dict[str, str],
    *,
    clock: Clock | None = None,
    **clients: Any,
) -> AwsBackend:
    """An ``AwsBackend`` for ``bu`` that reaches no AWS: ``clients`` (a Stubber's, moto's, a
    ``ClusterLookup``) and an ``offline_client`` for each other service; ``clock``'s sleep and
    time, or no sleeping; the platform's values are ``published`` (the SSM read they stand for
    is test_pipeline_aws.py's)."""
    made = {s: clients.pop(s, None) or offline_client(s, bu.region) for s in SERVICES}
    assert not clients, f"not a client these tests give: {sorted(clients)}"
    if clock is None:
        backend = AwsBackend(bu, **made, sleep=lambda s: None)
    else:
        backend = AwsBackend(bu, **made, sleep=clock.sleep, clock=clock.time)
    backend._platform = BuPlatform(bu=bu.name, region=bu.region, team=None, values=published)
    return backend
