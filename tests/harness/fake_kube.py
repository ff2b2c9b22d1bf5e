"""A small fake Kubernetes API server on 127.0.0.1, for driving the real `kubernetes` client.

It serves only what `training.job.cluster`, `tools.doctor` and the pipeline's HyperPod deploy
call (namespaces, Kueue LocalQueues and ClusterQueues, nodes, PersistentVolumeClaims,
HyperPodPyTorchJobs, pods and pod logs, InferenceEndpointConfigs read and replaced), keeps state
in memory, answers with Kubernetes ``Status`` objects on errors, and records every request so
tests can check what was sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

JOBS = "/apis/sagemaker.amazonaws.com/v1/namespaces/(?P<ns>[^/]+)/hyperpodpytorchjobs"
ENDPOINT_CONFIGS = (
    "/apis/inference.sagemaker.aws.amazon.com/v1/namespaces/(?P<ns>[^/]+)/inferenceendpointconfigs"
)


@dataclass
class FakeCluster:
    namespaces: set[str] = field(default_factory=set)
    queues: set[tuple[str, str]] = field(default_factory=set)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # namespace -> pods
    logs: dict[str, str] = field(default_factory=dict)  # pod name -> log text
    cluster_queues: list[dict[str, Any]] = field(default_factory=list)  # Kueue ClusterQueues
    claims: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (ns, name) -> PVC
    # SageMaker Spaces' WorkspaceTemplates: namespace -> templates
    workspace_templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # InferenceEndpointConfigs by (namespace, name). A PUT must carry the stored
    # metadata.resourceVersion (else 409); a changed spec bumps metadata.generation; the stored
    # status is kept (the CRD's status subresource: only the operator writes it).
    endpoint_configs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)  # "nodes", "namespaces": answer 403
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, body


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _handler(state: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else None

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            body = self._body() if method in {"POST", "PUT"} else None
            state.requests.append((method, url.path, body))
            for pattern, handle in (
                (r"/api/v1/namespaces/(?P<ns>[^/]+)", self._namespace),
                (
                    r"/apis/kueue.x-k8s.io/v1beta1/namespaces/(?P<ns>[^/]+)/localqueues/(?P<q>[^/]+)",
                    self._queue,
                ),
                (r"/api/v1/nodes", self._nodes),
                (r"/apis/kueue.x-k8s.io/v1beta1/clusterqueues", self._cluster_queues),
                (
                    r"/api/v1/namespaces/(?P<ns>[^/]+)/persistentvolumeclaims/(?P<name>[^/]+)",
                    self._claim,
                ),
                (JOBS, self._create_job),
                (JOBS + "/(?P<name>[^/]+)", self._job),
                (ENDPOINT_CONFIGS + "/(?P<name>[^/]+)", self._endpoint_config),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)/pods", self._pods),
                (r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log", self._log),
                (
                    r"/apis/workspace.jupyter.org/v1alpha1/namespaces/(?P<ns>[^/]+)"
                    r"/workspacetemplates",
                    self._workspace_templates,
                ),
            ):
                if match := re.fullmatch(pattern, url.path):
                    return handle(method, match, parse_qs(url.query), body)
            return self._send(404, _status(404, "NotFound", f"no route {url.path}"))

        def _namespace(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            if "namespaces" in state.forbidden:
                return self._send(403, _status(403, "Forbidden", "namespaces is forbidden"))
            if m["ns"] in state.namespaces:
                return self._send(200, {"kind": "Namespace", "metadata": {"name": m["ns"]}})
            return self._send(404, _status(404, "NotFound", f'namespaces "{m["ns"]}" not found'))

        def _queue(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            if (m["ns"], m["q"]) in state.queues:
                return self._send(200, {"kind": "LocalQueue", "metadata": {"name": m["q"]}})
            return self._send(404, _status(404, "NotFound", "localqueue not found"))

        def _nodes(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            if "nodes" in state.forbidden:
                return self._send(403, _status(403, "Forbidden", "nodes is forbidden"))
            return self._send(200, {"kind": "NodeList", "items": state.nodes})

        def _workspace_templates(
            self, method: str, m: re.Match[str], query: Any, body: Any
        ) -> None:
            items = state.workspace_templates.get(m["ns"], [])
            return self._send(200, {"kind": "WorkspaceTemplateList", "items": items})

        def _cluster_queues(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            return self._send(200, {"kind": "ClusterQueueList", "items": state.cluster_queues})

        def _claim(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            claim = state.claims.get((m["ns"], m["name"]))
            if claim is None:
                message = f'persistentvolumeclaims "{m["name"]}" not found'
                return self._send(404, _status(404, "NotFound", message))
            return self._send(200, claim)

        def _create_job(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            key = (m["ns"], body["metadata"]["name"])
            if key in state.jobs:
                return self._send(409, _status(409, "AlreadyExists", "already exists"))
            state.jobs[key] = body
            return self._send(201, body)

        def _job(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            key = (m["ns"], m["name"])
            if key not in state.jobs:
                return self._send(404, _status(404, "NotFound", "job not found"))
            if method == "DELETE":
                del state.jobs[key]
                return self._send(200, _status(200, "", "deleted") | {"status": "Success"})
            return self._send(200, state.jobs[key])

        def _endpoint_config(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            key = (m["ns"], m["name"])
            stored = state.endpoint_configs.get(key)
            if stored is None:
                message = f'inferenceendpointconfigs "{m["name"]}" not found'
                return self._send(404, _status(404, "NotFound", message))
            if method == "GET":
                return self._send(200, stored)
            meta = stored["metadata"]
            if body["metadata"].get("resourceVersion") != meta["resourceVersion"]:
                message = "the object has been modified; please apply your changes to the latest"
                return self._send(409, _status(409, "Conflict", message))
            generation = meta.get("generation", 1) + (body["spec"] != stored["spec"])
            updated = {
                **body,
                "metadata": {
                    **body["metadata"],
                    "generation": generation,
                    "resourceVersion": str(int(meta["resourceVersion"]) + 1),
                },
            }
            if "status" in stored:
                updated["status"] = stored["status"]
            state.endpoint_configs[key] = updated
            return self._send(200, updated)

        def _pods(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            label, _, value = query.get("labelSelector", [""])[0].partition("=")
            items = [
                pod
                for pod in state.pods.get(m["ns"], [])
                if pod["metadata"].get("labels", {}).get(label) == value
            ]
            return self._send(200, {"kind": "PodList", "items": items})

        def _log(self, method: str, m: re.Match[str], query: Any, body: Any) -> None:
            if m["pod"] not in state.logs:
                return self._send(404, _status(404, "NotFound", "pod not found"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")  # as a followed log streams
            self.end_headers()
            for line in state.logs[m["pod"]].encode().splitlines(keepends=True):
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return None

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@contextmanager
def fake_kube_server(state: FakeCluster) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (a free port) until the block ends; yields the URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    # A short poll interval: shutdown() waits up to one interval (the default 0.5 s per test).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_kubeconfig(path: Path, server: str, cluster: str, context: str = "bu") -> Path:
    """A kubeconfig like `aws eks update-kubeconfig` writes (cluster entry named by its ARN)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": "user", "user": {"token": "test-token"}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": "user"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class Clock:
    """A deploy's clock and sleep for the fake cluster's tests: each poll's sleep moves time on
    and lets the test act as the operator (or fail the poll, as a lost worker would)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.on_sleep: Callable[[], None] = lambda: None

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()
