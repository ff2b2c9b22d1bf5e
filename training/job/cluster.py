"""A HyperPodPyTorchJob's life on the cluster of the user's kubeconfig: pre-flight checks,
submit, status, logs (rank 0, followed) and cancel, each failure explained in one sentence."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from kubernetes import client as k8s
from kubernetes import config as kube_config
from urllib3.exceptions import HTTPError as Urllib3Error

from training.job.manifest import (
    GROUP,
    INSTANCE_TYPE_LABEL,
    KIND,
    PLURAL,
    POD_JOB_LABEL,
    VERSION,
)

KUEUE_GROUP, KUEUE_VERSION, LOCAL_QUEUES = "kueue.x-k8s.io", "v1beta1", "localqueues"
HTTP_FORBIDDEN, HTTP_NOT_FOUND, HTTP_CONFLICT = 403, 404, 409
REQUEST_TIMEOUT_S = 15


class ClusterError(RuntimeError):
    """The cluster refused or could not serve a request; the message says what to do."""


def connect(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    expect_cluster: str | None = None,
    region: str | None = None,
) -> k8s.ApiClient:
    """An API client for the kubeconfig's (current) context, checked to point at the BU's EKS
    cluster when ``expect_cluster`` is known, so a job never lands on the wrong cluster."""
    fix = (
        f"run: aws eks update-kubeconfig --name {expect_cluster}"
        + (f" --region {region}" if region else "")
        if expect_cluster
        else "run: aws eks update-kubeconfig --name <EKS cluster> --region <region>"
    )
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    except (kube_config.ConfigException, OSError) as err:
        raise ClusterError(f"no usable kubeconfig ({err}); {fix}") from err
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    if chosen is None:
        raise ClusterError(f"kubeconfig has no context {context!r}; {fix}")
    cluster = str(chosen["context"].get("cluster", ""))
    # update-kubeconfig names the cluster entry by its ARN: arn:aws:eks:<region>:<acct>:cluster/N
    if expect_cluster and cluster.rsplit("/", 1)[-1] != expect_cluster:
        raise ClusterError(
            f"kubeconfig context {chosen['name']!r} points at cluster {cluster!r}, not this BU's "
            f"EKS cluster {expect_cluster!r}; {fix} (or pass --context)"
        )
    try:
        return kube_config.new_client_from_config(config_file=kubeconfig, context=chosen["name"])
    except (kube_config.ConfigException, OSError) as err:
        raise ClusterError(f"kubeconfig context {chosen['name']!r} is unusable: {err}") from err


def _call(what: str, host: str, fn: Callable[[], Any]) -> Any:
    """Run one API call; turn transport failures into a ClusterError that names the host."""
    try:
        return fn()
    except Urllib3Error as err:
        raise ClusterError(
            f"cannot reach the cluster API at {host} to {what} ({type(err).__name__}); the EKS "
            "endpoint is private: run this from a Studio space or host in the BU's VPC"
        ) from err


@dataclass
class HyperPodCluster:
    """The operations ``training.job`` offers, over one API client."""

    api: k8s.ApiClient
    warn: Callable[[str], None] = field(default=lambda m: print(f"warning: {m}", file=sys.stderr))

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    @property
    def _custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    @property
    def _core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    # --- pre-flight -----------------------------------------------------------------------
    def check_namespace(self, namespace: str) -> None:
        self._request(
            "read the namespace",
            lambda: self._core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT_S),
            refused={
                HTTP_NOT_FOUND: f"namespace {namespace!r} does not exist on the cluster: the team "
                "is not set up there (the HyperPod stack creates one namespace per team)"
            },
            # Namespace-scoped users may not read namespaces.
            tolerated={HTTP_FORBIDDEN: f"not allowed to read namespace {namespace!r}; not checked"},
        )

    def check_queue(self, namespace: str, queue: str) -> None:
        self._request(
            "read the queue",
            lambda: self._custom.get_namespaced_custom_object(
                KUEUE_GROUP,
                KUEUE_VERSION,
                namespace,
                LOCAL_QUEUES,
                queue,
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
            refused={
                HTTP_NOT_FOUND: f"Kueue LocalQueue {queue!r} does not exist in namespace "
                f"{namespace!r}: task governance has no queue for this team (check --team or "
                "--queue)"
            },
            tolerated={
                HTTP_FORBIDDEN: f"not allowed to read LocalQueue {namespace}/{queue}; not checked"
            },
        )

    def check_accelerator(
        self, resource: str, per_node: int, nodes: int, selector: Mapping[str, str]
    ) -> None:
        """``nodes`` nodes that match the job's node `selector` must each offer ``per_node`` of
        ``resource`` (``nvidia.com/mig-1g.18gb``): the pods' own placement rule, so a capacity
        some other instance type (or an unhealthy node) has does not count."""
        listed = self._request(
            "list nodes",
            lambda: self._core.list_node(_request_timeout=REQUEST_TIMEOUT_S),
            tolerated={
                HTTP_FORBIDDEN: f"not allowed to list nodes; {resource} availability not checked"
            },
        )
        if listed is None:
            return
        offered: dict[tuple[str, str], int] = {}  # (resource, instance type) -> count
        matching = able = 0
        for node in listed.items:
            labels = (node.metadata.labels or {}) if node.metadata else {}
            allocatable = (node.status.allocatable or {}) if node.status else {}
            kind = labels.get(INSTANCE_TYPE_LABEL, "unlabelled")
            for key, value in allocatable.items():
                if key.startswith("nvidia.com/"):
                    offered[key, kind] = offered.get((key, kind), 0) + int(value)
            if all(labels.get(k) == v for k, v in selector.items()):
                matching += 1
                able += int(allocatable.get(resource, 0)) >= per_node
        if able < nodes:
            have = ", ".join(f"{k}: {v} on {t}" for (k, t), v in sorted(offered.items()))
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
            raise ClusterError(
                f"{resource} x {per_node} per node is not offered on {nodes} node(s) matching "
                f"the job's node selector ({able} of {matching} matching qualify; selector "
                f"{wanted}); the cluster's GPU resources: {have or 'none'}"
            )

    # --- the job's life ---------------------------------------------------------------------
    def submit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        created: dict[str, Any] = self._request(
            "create the job",
            lambda: self._custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                dict(manifest),
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
            refused={
                HTTP_CONFLICT: f"{KIND} {namespace}/{name} already exists; cancel it first or "
                "pick another --name",
                HTTP_NOT_FOUND: f"the cluster does not serve {PLURAL}.{GROUP}/{VERSION} in "
                f"{namespace!r}: is the HyperPod training operator add-on installed?",
            },
        )
        return created

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        job: dict[str, Any] = self._request(
            "read the job",
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT_S
            ),
            job=(namespace, name),
        )
        return job

    def pods(self, namespace: str, name: str) -> list[k8s.V1Pod]:
        listed = _call(
            "list the job's pods",
            self.host,
            lambda: self._core.list_namespaced_pod(
                namespace,
                label_selector=f"{POD_JOB_LABEL}={name}",
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
        )
        return sorted(listed.items, key=lambda pod: pod.metadata.name)

    def status(self, namespace: str, name: str) -> JobStatus:
        job = self.get(namespace, name)
        state = job.get("status") or {}
        conditions = [c for c in state.get("conditions") or [] if c.get("status") == "True"]
        phase = conditions[-1]["type"] if conditions else "Pending"
        pods = [
            PodPlacement(
                name=pod.metadata.name,
                phase=pod.status.phase if pod.status else "Unknown",
                node=pod.spec.node_name if pod.spec else None,
                restarts=sum(c.restart_count for c in (pod.status.container_statuses or []))
                if pod.status
                else 0,
            )
            for pod in self.pods(namespace, name)
        ]
        return JobStatus(
            name=name,
            namespace=namespace,
            phase=phase,
            job_restarts=int(state.get("restartCount") or 0),
            pods=pods,
        )

    def rank0_pod(self, namespace: str, name: str) -> str:
        """The operator names pods ``<job>-pod-<index>``; index 0 runs rank 0."""
        pods = self.pods(namespace, name)
        if not pods:
            self.get(namespace, name)  # a missing job gets its own, clearer error
            raise ClusterError(f"{KIND} {namespace}/{name} has no pods yet (queued?): try status")
        names = [p.metadata.name for p in pods]
        return next((n for n in names if n.endswith("-0")), names[0])

    def logs(self, namespace: str, name: str, *, follow: bool = True) -> Iterator[str]:
        pod = self.rank0_pod(namespace, name)
        response = self._request(
            "read the logs",
            lambda: self._core.read_namespaced_pod_log(
                pod, namespace, follow=follow, _preload_content=False
            ),
        )
        try:
            for chunk in response.stream(amt=65536, decode_content=True):
                yield chunk.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def cancel(self, namespace: str, name: str) -> None:
        self._request(
            "delete the job",
            lambda: self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT_S
            ),
            job=(namespace, name),
        )

    def _request(
        self,
        what: str,
        fn: Callable[[], Any],
        *,
        refused: Mapping[int, str] | None = None,
        tolerated: Mapping[int, str] | None = None,
        job: tuple[str, str] | None = None,
    ) -> Any:
        """One API call (``_call``) with what the cluster's answers mean: ``refused`` maps an
        HTTP status to the sentence to fail with, ``tolerated`` to the warning to give instead
        (the call then returns None); a 404 on the ``job`` (namespace, name) says it is not
        there; any other refusal is explained by :meth:`_api_error`."""
        try:
            return _call(what, self.host, fn)
        except k8s.ApiException as err:
            if refused and err.status in refused:
                raise ClusterError(refused[err.status]) from err
            if tolerated and err.status in tolerated:
                self.warn(tolerated[err.status])
                return None
            raise self._api_error(what, err, job=job) from err

    @staticmethod
    def _api_error(
        what: str, err: k8s.ApiException, *, job: tuple[str, str] | None = None
    ) -> ClusterError:
        if err.status == HTTP_NOT_FOUND and job is not None:
            namespace, name = job
            return ClusterError(f"no {KIND} {namespace}/{name} on the cluster")
        if err.status == HTTP_FORBIDDEN:
            return ClusterError(
                f"not allowed to {what}: neither your EKS access entry's policies nor the "
                f"Roles bound to its Kubernetes groups allow it in this namespace ({err.reason})"
            )
        return ClusterError(f"cluster refused to {what}: HTTP {err.status} {err.reason}")


@dataclass(frozen=True)
class PodPlacement:
    name: str
    phase: str
    node: str | None
    restarts: int


@dataclass(frozen=True)
class JobStatus:
    name: str
    namespace: str
    phase: str
    job_restarts: int
    pods: list[PodPlacement]

    def render(self, out: IO[str]) -> None:
        out.write(
            f"{KIND} {self.namespace}/{self.name}: {self.phase}, "
            f"{self.job_restarts} job restart(s), {len(self.pods)} pod(s)\n"
        )
        for pod in self.pods:
            out.write(
                f"  {pod.name}  {pod.phase}  node={pod.node or '-'}  restarts={pod.restarts}\n"
            )
