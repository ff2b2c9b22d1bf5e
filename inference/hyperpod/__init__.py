"""The same LMI model on a HyperPod EKS cluster: an `InferenceEndpointConfig` for the HyperPod
inference operator, rendered from the same `ServedEndpoint` the SageMaker endpoint is built from.

`worker.environmentVariables` is `ServingConfig.to_environment()` and `worker.image` is
`inference.serving.image_uri(region)`, so both targets run the same container with the same
options. `endpointName` makes the operator register a SageMaker endpoint, so
`python -m inference.smoke --endpoint <bu>-<name>` checks either target. Objects are built
with the `kubernetes` client's models and checked against the operator's published CRD schema
(`crds/` in this package) before they are applied. The library reads no BU file: the
`python -m inference.hyperpod render|apply` command (`__main__`) does, through
`config.hyperpod_endpoints`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from core.crd_schema import schema_problems
from core.workload_apis import INFERENCE_ENDPOINT_CONFIG
from inference.serving import MODEL_DIR, ServedEndpoint

GROUP = INFERENCE_ENDPOINT_CONFIG.group
VERSION = INFERENCE_ENDPOINT_CONFIG.version
KIND = INFERENCE_ENDPOINT_CONFIG.kind
PLURAL = INFERENCE_ENDPOINT_CONFIG.plural
SCHEMA = Path(__file__).resolve().parent / "crds" / "inferenceendpointconfig-v1.schema.json"
LMI_PORT = 8080  # DJL Serving's port: /ping and /invocations
MIG_READY = "nvidia.com/mig.config.state"  # node label the MIG manager sets to "success"


class RenderError(ValueError):
    """A setting the operator's resource cannot express; the message names it."""


class KubeconfigError(RuntimeError):
    """No usable kubeconfig; the message is the command that writes one."""


@dataclass(frozen=True)
class HyperPodEndpoint:
    """Everything the resource needs: the endpoint as both targets serve it, and where on the
    cluster it goes (`config.hyperpod_endpoints` builds it from a BU config)."""

    served: ServedEndpoint
    namespace: str
    eks_cluster: str = "<bu>-eks"  # the BU's EKS cluster: named in the kubeconfig hint

    def update_kubeconfig(self) -> str:
        """The command that points kubectl (and `apply`) at this BU's cluster."""
        return f"aws eks update-kubeconfig --region {self.served.region} --name {self.eks_cluster}"


def _resources(served: ServedEndpoint) -> k8s.V1ResourceRequirements:
    if served.mig_profile is not None:
        if served.serving.tensor_parallel_degree != 1:
            raise RenderError("tensor_parallel_degree: a MIG slice is one device: use 1")
        accelerators = {f"nvidia.com/mig-{served.mig_profile}": "1"}
    else:
        accelerators = {"nvidia.com/gpu": str(served.serving.tensor_parallel_degree)}
    return k8s.V1ResourceRequirements(requests=accelerators, limits=accelerators)


def _mig_affinity(served: ServedEndpoint) -> k8s.V1NodeAffinity:
    """Nodes of the instance type whose MIG layout has been applied (mutually exclusive with
    the resource's `instanceType`, so the type moves in here)."""
    return k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
            node_selector_terms=[
                k8s.V1NodeSelectorTerm(
                    match_expressions=[
                        k8s.V1NodeSelectorRequirement(
                            key="node.kubernetes.io/instance-type",
                            operator="In",
                            values=[served.serving.instance_type],
                        ),
                        k8s.V1NodeSelectorRequirement(
                            key=MIG_READY, operator="In", values=["success"]
                        ),
                    ]
                )
            ]
        )
    )


def build_endpoint_config(spec: HyperPodEndpoint) -> dict[str, Any]:
    """The `InferenceEndpointConfig` as a plain dict (for `CustomObjectsApi` or YAML)."""
    served = spec.served
    if served.replicas < 1:
        raise RenderError(f"replicas: must be at least 1, got {served.replicas}")
    api = k8s.ApiClient()
    environment = served.serving.to_environment()
    if environment["HF_MODEL_ID"] != MODEL_DIR:
        raise RenderError(f"model: the operator mounts the model at {MODEL_DIR}; leave it there")
    worker = {
        "image": served.image,
        "modelInvocationPort": {"containerPort": LMI_PORT, "name": "http"},
        # The operator mounts the S3 prefix (Mountpoint CSI, prefetched) here.
        "modelVolumeMount": {"name": "model-weights", "mountPath": MODEL_DIR},
        "resources": api.sanitize_for_serialization(_resources(served)),
        "environmentVariables": [
            api.sanitize_for_serialization(k8s.V1EnvVar(name=k, value=v))
            for k, v in environment.items()
        ],
    }
    name = served.endpoint_name
    body: dict[str, Any] = {
        "modelName": name,
        "endpointName": name,
        "replicas": served.replicas,
        "modelSourceConfig": {
            "modelSourceType": "s3",
            "s3Storage": {"bucketName": served.bucket, "region": served.region},
            "modelLocation": served.model_prefix.rstrip("/"),
            "prefetchEnabled": True,
        },
        "worker": worker,
    }
    if served.mig_profile is None:
        body["instanceType"] = served.serving.instance_type
    else:
        body["nodeAffinity"] = api.sanitize_for_serialization(_mig_affinity(served))
    metadata = k8s.V1ObjectMeta(
        name=name,
        namespace=spec.namespace,
        labels={"app.kubernetes.io/name": "lmi", "app.kubernetes.io/instance": name},
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": api.sanitize_for_serialization(metadata),
        "spec": body,
    }


def validate(manifest: Mapping[str, Any]) -> list[str]:
    """Every way `manifest` breaks the CRD's schema, as `path: message` lines (none: valid)."""
    return schema_problems(SCHEMA, manifest)


def connect(update_kubeconfig: str) -> Any:
    """A CustomObjectsApi for the kubeconfig's current context; `KubeconfigError` (one line,
    naming `update_kubeconfig`, the command that writes one) when there is none to use."""
    from kubernetes import config as kube_config

    try:
        kube_config.load_kube_config()
    except (kube_config.ConfigException, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise KubeconfigError(f"no kubeconfig: run {update_kubeconfig} ({detail})") from exc
    return k8s.CustomObjectsApi()


def apply(manifest: Mapping[str, Any], api: Any) -> tuple[str, dict[str, Any]]:
    """Create the resource, or replace it when it exists; returns ("created"|"replaced", obj)."""
    from kubernetes.client.exceptions import ApiException

    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    where = {"group": GROUP, "version": VERSION, "namespace": namespace, "plural": PLURAL}
    try:
        return "created", api.create_namespaced_custom_object(**where, body=dict(manifest))
    except ApiException as exc:
        if exc.status != 409:  # anything but "already exists"
            raise
    current = api.get_namespaced_custom_object(**where, name=name)
    body = {**manifest, "metadata": {**manifest["metadata"]}}
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return "replaced", api.replace_namespaced_custom_object(**where, name=name, body=body)


# -- reading back and re-applying a live object (the pipeline's deploy, pipelines/aws.py) ------
# The status fields read here, from the vendored schema
# (crds/inferenceendpointconfig-v1.schema.json, `properties.status`): `observedGeneration`
# ("Latest generation reconciled by controller"), `state` (enum DeploymentPending,
# DeploymentInProgress, DeploymentFailed, DeploymentComplete, Deletion*),
# `deploymentStatus.status` (the hosting Deployment's status: `replicas`, `updatedReplicas`,
# `availableReplicas`), `deploymentStatus.message`/`reason` and `conditions[].message`.
READY_STATE = "DeploymentComplete"
FAILED_STATE = "DeploymentFailed"


def _where(namespace: str) -> dict[str, str]:
    return {"group": GROUP, "version": VERSION, "namespace": namespace, "plural": PLURAL}


def read(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The live object (spec, status, metadata), or None when there is none."""
    from kubernetes.client.exceptions import ApiException

    try:
        found: dict[str, Any] = api.get_namespaced_custom_object(**_where(namespace), name=name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def served_location(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(bucket, key prefix ending in '/') of the model ``obj``'s spec serves; `RenderError` when
    its model does not come from S3."""
    source = (obj.get("spec") or {}).get("modelSourceConfig") or {}
    bucket = (source.get("s3Storage") or {}).get("bucketName")
    if source.get("modelSourceType") != "s3" or not bucket:
        raise RenderError(
            f"modelSourceConfig: serves from {source.get('modelSourceType') or 'nothing'}, "
            "not from an S3 prefix"
        )
    return str(bucket), str(source.get("modelLocation") or "").strip("/") + "/"


def same_location(a: str, b: str) -> bool:
    """Two key prefixes name the same model (``modelLocation`` is written without the '/')."""
    return a.strip("/") == b.strip("/")


def with_spec(obj: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """What to PUT to give the live ``obj`` the whole ``spec``: its name, namespace, labels,
    annotations and ``resourceVersion`` (a concurrent change makes the PUT fail with 409),
    no status or server-set metadata."""
    meta = obj["metadata"]
    metadata: dict[str, Any] = {"name": meta["name"], "namespace": meta["namespace"]}
    for key in ("labels", "annotations", "resourceVersion"):
        if meta.get(key):
            metadata[key] = copy.deepcopy(meta[key])
    return {
        "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": obj.get("kind", KIND),
        "metadata": metadata,
        "spec": copy.deepcopy(dict(spec)),
    }


def with_model_location(obj: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``with_spec`` of ``obj``'s own spec with only ``modelSourceConfig.modelLocation``
    changed to ``prefix`` (inside the same bucket), written as `build_endpoint_config` writes it."""
    spec = copy.deepcopy(dict(obj["spec"]))
    spec["modelSourceConfig"]["modelLocation"] = prefix.strip("/")
    return with_spec(obj, spec)


def replace(api: Any, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """PUT ``manifest`` over the live object it names (its ``resourceVersion`` must be current)."""
    meta = manifest["metadata"]
    replaced: dict[str, Any] = api.replace_namespaced_custom_object(
        **_where(meta["namespace"]), name=meta["name"], body=dict(manifest)
    )
    return replaced


@dataclass(frozen=True)
class Rollout:
    """How far the operator has rolled the object's current spec out: ``ready`` (every pod of
    its Deployment runs it), ``failed`` (the operator gave up), else still going; ``detail`` for
    a log line or a failure message."""

    ready: bool
    failed: bool
    detail: str


def rollout(obj: Mapping[str, Any]) -> Rollout:
    """Ready only when the operator has reconciled this generation of the spec
    (``status.observedGeneration`` >= ``metadata.generation``: an older generation's
    ``DeploymentComplete`` says nothing about the new spec), reports ``DeploymentComplete``, and
    its Deployment, when reported, has every pod updated and available."""
    generation = (obj.get("metadata") or {}).get("generation")
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    state = status.get("state") or "no state reported"
    deployment = status.get("deploymentStatus") or {}
    why = deployment.get("message") or deployment.get("reason") or ""
    if generation is not None and (observed is None or observed < generation):
        return Rollout(
            False, False, f"the operator has not reconciled generation {generation} yet "
            f"(observed: {observed if observed is not None else 'none'})"
        )  # fmt: skip
    if state == FAILED_STATE:
        messages = [c.get("message") for c in status.get("conditions") or [] if c.get("message")]
        return Rollout(False, True, f"{state}: {why or '; '.join(messages) or 'no reason given'}")
    if state != READY_STATE:
        return Rollout(False, False, f"{state}{': ' + why if why else ''}")
    pods = deployment.get("status")
    if pods is not None:
        updated = int(pods.get("updatedReplicas") or 0)
        total = int(pods.get("replicas") or 0)
        available = int(pods.get("availableReplicas") or 0)
        if updated < 1 or updated < total or available < updated:
            return Rollout(
                False, False, f"{state}, but {updated} of {total} pods run the new spec and "
                f"{available} are available"
            )  # fmt: skip
    return Rollout(True, False, state)
