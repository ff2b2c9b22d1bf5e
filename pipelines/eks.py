"""A Kubernetes API client for the BU's EKS cluster from AWS credentials alone (no kubeconfig:
MWAA has none), made afresh for each task or sensor poke.

The bearer token is what ``aws eks get-token`` prints: ``k8s-aws-v1.`` and the base64url of a
presigned STS GetCallerIdentity URL that carries the ``x-k8s-aws-id: <cluster>`` header (AWS CLI
``awscli/customizations/eks/get_token.py``; the EKS user guide, "Grant IAM users access to
Kubernetes with EKS access entries", is what maps the signing role to a Kubernetes identity).
EKS accepts such a token for about 15 minutes, so a poke never reuses one.
"""

from __future__ import annotations

import base64
import tempfile
from typing import Any

from kubernetes import client as k8s

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60  # what the AWS CLI uses; EKS itself bounds the token's life


def bearer_token(sts: Any, cluster: str) -> str:
    """The EKS token for ``cluster`` signed with ``sts``'s credentials."""

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_HEADER] = cluster

    sts.meta.events.register_first(
        "before-sign.sts.GetCallerIdentity", add_cluster_header, unique_id=f"eks-{cluster}"
    )
    url = sts.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=PRESIGN_SECONDS, HttpMethod="GET"
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def api_client(eks: Any, sts: Any, cluster: str) -> k8s.ApiClient:
    """An API client for the cluster's (private) endpoint, trusting only its CA."""
    described = eks.describe_cluster(name=cluster)["cluster"]
    configuration = k8s.Configuration()
    configuration.host = described["endpoint"]
    ca = base64.b64decode(described["certificateAuthority"]["data"])
    with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as handle:
        handle.write(ca)
    configuration.ssl_ca_cert = handle.name
    configuration.api_key = {"authorization": f"Bearer {bearer_token(sts, cluster)}"}
    return k8s.ApiClient(configuration)
