"""A BU's HyperPod endpoint as `python -m inference.hyperpod render|apply` deploys it: the
BU-reading half of that command, kept in `config` so that the `inference.hyperpod` library
imports no config (the command, `inference.hyperpod.__main__`, is the one exception and calls
this).

The endpoint itself is translated by `Endpoint.served`, the same translation the CDK endpoints
stack builds its SageMaker endpoints from; this adds only where it goes on the cluster.
"""

from pathlib import Path

from config.loader import load_file
from inference.hyperpod import HyperPodEndpoint, RenderError


def hyperpod_endpoint(path: Path, endpoint: str, namespace: str) -> HyperPodEndpoint:
    """The endpoint `endpoint` of the BU config at `path`, validated like `make validate`;
    `RenderError` when the file is invalid, has no such endpoint, or serves it on SageMaker."""
    cfg, errors = load_file(path)
    if cfg is None:
        raise RenderError("\n".join(str(e) for e in errors))
    items = {e.name: e for e in (cfg.endpoints.items if cfg.endpoints else [])}
    if endpoint not in items:
        raise RenderError(f"{path}: no endpoint {endpoint!r} (have: {', '.join(items) or 'none'})")
    item = items[endpoint]
    if item.target != "hyperpod":
        raise RenderError(f"{endpoint}: target is {item.target}; `cdk deploy` creates it")
    return HyperPodEndpoint(
        served=item.served(cfg.naming),
        namespace=namespace,
        eks_cluster=cfg.naming.resource("eks"),  # the HyperPod stack's name for it
    )
