"""A stand-in Kubernetes API server for the launcher's tests: real HTTP, only the endpoints the launcher calls.

The launcher talks to it through the real ``kubernetes`` client: create, get and delete a namespaced custom
object, list pods by label selector, and read a pod's log. The job's status follows a script of stages, one
per read of the job, and the last stage repeats. Each stage also gives the pods that exist at that point.
Pods carry the labels each operator sets: JobSet's ``jobset.sigs.k8s.io/jobset-name`` for a TrainJob (the
JobSet is named after the TrainJob), and the Training Operator's ``training.kubeflow.org/job-name``.
Every request is recorded as the RBAC (verb, API group, resource) it needs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client

_CUSTOM = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)
_PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
_POD_LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$")


@dataclass
class Stage:
    conditions: list[dict[str, Any]]
    pods: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    permission: tuple[str, str, str]
    """(verb, API group, resource) as an RBAC rule names them."""


def condition(
    kind: str, status: str = "True", reason: str = "Test", message: str = "", at: str = "2025-01-01T00:00:00Z"
) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def pod(
    name: str,
    labels: dict[str, str],
    container: str,
    phase: str,
    exit_code: int | None = None,
    finished_at: str = "2025-01-01T00:10:00Z",
    previous_exit_code: int | None = None,
) -> dict[str, Any]:
    """A pod with one container; ``exit_code`` terminates it, ``previous_exit_code`` gives it a failed earlier run."""
    status: dict[str, Any] = {
        "name": container, "ready": phase == "Running", "restartCount": 0, "image": "train", "imageID": "",
        "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
    }
    if exit_code is not None:
        status["state"] = {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed",
                                          "finishedAt": finished_at}}
    if previous_exit_code is not None:
        status["restartCount"] = 1
        status["lastState"] = {"terminated": {"exitCode": previous_exit_code, "reason": "Error",
                                              "finishedAt": finished_at}}
    return {
        "metadata": {"name": name, "namespace": "", "labels": labels},
        "spec": {"containers": [{"name": container, "image": "train"}]},
        "status": {"phase": phase, "containerStatuses": [status]},
    }


def trainjob_pod(job: str, index: int, phase: str, **kwargs: Any) -> dict[str, Any]:
    labels = {"jobset.sigs.k8s.io/jobset-name": job, "jobset.sigs.k8s.io/replicatedjob-name": "node",
              "batch.kubernetes.io/job-completion-index": str(index)}
    return pod(f"{job}-node-0-{index}-x7k2p", labels, "node", phase, **kwargs)


def pytorchjob_pod(job: str, role: str, index: int, phase: str, **kwargs: Any) -> dict[str, Any]:
    labels = {"training.kubeflow.org/job-name": job, "training.kubeflow.org/replica-type": role,
              "training.kubeflow.org/replica-index": str(index)}
    return pod(f"{job}-{role}-{index}", labels, "pytorch", phase, **kwargs)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code}


class FakeApiServer:
    """Use as a context manager; ``api_client()`` gives a real kubernetes ApiClient pointed at it."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.requests: list[Request] = []
        self.create_error: tuple[int, str] | None = None
        self.read_errors: dict[int, int] = {}
        """Job read number -> HTTP status to answer with instead of the job."""
        self.on_read: Callable[[int], None] | None = None
        """Called with the job read number (from 1) before the answer is sent."""
        self.job_reads = 0
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def permissions(self) -> set[tuple[str, str, str]]:
        return {request.permission for request in self.requests}

    def deletes(self) -> list[Request]:
        return [request for request in self.requests if request.method == "DELETE"]

    def _stage(self) -> Stage:
        return self.stages[min(max(self.job_reads, 1), len(self.stages)) - 1]

    def handle(self, method: str, url: str, body: bytes) -> tuple[int, Any]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if match := _CUSTOM.match(parts.path):
            group, plural, name = match["group"], match["plural"], match["name"]
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method] if name or method == "POST" else "list"
            self.requests.append(Request(method, parts.path, query, (verb, group, plural)))
            return self._custom_object(verb, match["ns"], plural, name, body)
        if match := _PODS.match(parts.path):
            self.requests.append(Request(method, parts.path, query, ("list", "", "pods")))
            return 200, self._pod_list(match["ns"], query.get("labelSelector", [""])[0])
        if match := _POD_LOG.match(parts.path):
            self.requests.append(Request(method, parts.path, query, ("get", "", "pods/log")))
            return self._pod_log(match["ns"], match["name"], query)
        return 404, _status(404, "NotFound", f"the fake API server does not serve {method} {parts.path}")

    def _custom_object(self, verb: str, namespace: str, plural: str, name: str | None, body: bytes) -> tuple[int, Any]:
        if verb == "create":
            if self.create_error:
                code, message = self.create_error
                return code, _status(code, "Invalid", message)
            obj = json.loads(body)
            if obj["metadata"].get("namespace", namespace) != namespace:
                return 400, _status(400, "BadRequest", "the object's namespace does not match the request's")
            key = (plural, namespace, obj["metadata"]["name"])
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f"{plural} {key[2]!r} already exists")
            obj["metadata"] |= {"uid": f"uid-{len(self.objects)}", "creationTimestamp": "2025-01-01T00:00:00Z"}
            self.objects[key] = obj
            return 201, obj
        key = (plural, namespace, name or "")
        if key not in self.objects:
            return 404, _status(404, "NotFound", f"{plural} {name!r} not found")
        if verb == "delete":
            del self.objects[key]
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
        with self._lock:
            self.job_reads += 1
            read = self.job_reads
        if self.on_read:
            self.on_read(read)
        if read in self.read_errors:
            code = self.read_errors[read]
            return code, _status(code, "ServiceUnavailable", "etcd is restarting")
        return 200, {**self.objects[key], "status": {"conditions": self._stage().conditions}}

    def _pod_list(self, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            {**p, "metadata": {**p["metadata"], "namespace": namespace}}
            for p in self._stage().pods
            if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def _pod_log(self, namespace: str, name: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if not any(p["metadata"]["name"] == name for p in self._stage().pods):
            return 404, _status(404, "NotFound", f'pods "{name}" not found')
        previous = query.get("previous", ["false"])[0] == "true"
        text = self.logs.get(f"{name}/previous" if previous else name, "")
        tail = int(query.get("tailLines", ["0"])[0])
        if tail:
            text = "".join(text.splitlines(keepends=True)[-tail:])
        return 200, text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload = self.server.fake.handle(self.command, self.path, body)  # type: ignore[attr-defined]
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass
