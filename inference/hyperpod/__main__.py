"""The same LMI model on a HyperPod EKS cluster: an `InferenceEndpointConfig` for the HyperPod
inference operator, rendered from the same `ServedEndpoint` the SageMaker endpoint is built from.

The command half of `inference.hyperpod`, and inference's one reader of a BU file (the import
contract lists this module): the endpoint comes from `config.hyperpod_endpoints`, the resource
from the library.

    python -m inference.hyperpod render --config config/fraud.yaml --endpoint qwen3-tools-hp
    python -m inference.hyperpod apply --config config/fraud.yaml --endpoint qwen3-tools-hp
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.hyperpod_endpoints import hyperpod_endpoint
from core import cli
from inference.hyperpod import (
    KIND,
    HyperPodEndpoint,
    KubeconfigError,
    RenderError,
    apply,
    build_endpoint_config,
    connect,
    validate,
)

MODULE = "inference.hyperpod"


@dataclass(frozen=True)
class EndpointArgs:
    """What both subcommands take: which endpoint of which BU, and where on the cluster."""

    config: Path = field(metadata={"help": "config/<bu>.yaml"})
    endpoint: str = field(metadata={"help": "endpoint name in the config"})
    namespace: str = field(default="default", metadata={"help": "Kubernetes namespace"})


@dataclass(frozen=True)
class RenderArgs(EndpointArgs):
    output: Path | None = field(default=None, metadata={"help": "write here, not stdout"})


@dataclass(frozen=True)
class ApplyArgs(EndpointArgs):
    pass


def _subcommand(name: str, args: type[EndpointArgs], text: str) -> cli.Subcommand:
    """``name`` with its help as its description and its examples in the module docstring as
    the epilog."""
    epilog = cli.examples(__doc__, f"{MODULE} {name} ")
    return cli.Subcommand(args, text, description=text, epilog=epilog)


COMMANDS = {
    "render": _subcommand(
        "render", RenderArgs, "print the resource as YAML (or write it with --output)"
    ),
    "apply": _subcommand(
        "apply", ApplyArgs, "create the resource, or replace it, on the kubeconfig's cluster"
    ),
}


def parse_args(argv: Sequence[str] | None = None) -> RenderArgs | ApplyArgs:
    args: RenderArgs | ApplyArgs = cli.parse_command(
        MODULE, __doc__, COMMANDS, argv, with_examples=True
    )
    return args


def _apply(manifest: dict[str, Any], endpoint: HyperPodEndpoint, api: Any | None) -> int:
    try:
        action, obj = apply(manifest, api or connect(endpoint.update_kubeconfig()))
    except KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = obj["metadata"]
    print(f"{action} {KIND} {meta['namespace']}/{meta['name']}")
    print(f"then: python -m inference.smoke --endpoint {meta['name']}")
    return 0


def main(args: RenderArgs | ApplyArgs, *, api: Any | None = None) -> int:
    """Render or apply; `api` stands in for the cluster's CustomObjectsApi (tests)."""
    try:
        endpoint = hyperpod_endpoint(args.config, args.endpoint, args.namespace)
        manifest = build_endpoint_config(endpoint)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = validate(manifest)
    if problems:  # a builder bug or a CRD change: never send what the operator would refuse
        for problem in problems:
            print(f"error: {KIND} {problem}", file=sys.stderr)
        return 1
    if isinstance(args, ApplyArgs):
        return _apply(manifest, endpoint, api)
    import yaml

    text = yaml.safe_dump(manifest, sort_keys=False)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
