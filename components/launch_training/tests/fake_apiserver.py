"""A stand-in Kubernetes API server for the launcher's tests: real HTTP, only the endpoints the launcher calls.

The launcher talks to it through the real ``kubernetes`` client: create, get and delete a namespaced custom
object, list pods by label selector, and read a pod's log. The job's status follows a script of stages, one
per read of the job, and the last stage repeats. Each stage also gives the pods that exist at that point.
Pods carry the labels each operator sets: JobSet's ``jobset.sigs.k8s.io/jobset-name`` for a TrainJob (the
JobSet is named after the TrainJob), and the Training Operator's ``training.kubeflow.org/job-name``.
Every request is recorded as the RBAC (verb, API group, resource) it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.testing.fake_apiserver import Answer, FakeKubernetesApi, Request, Resource, deleted, failure


@dataclass
class Stage:
    conditions: list[dict[str, Any]]
    pods: list[dict[str, Any]] = field(default_factory=list)


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


class FakeApiServer(FakeKubernetesApi):
    """Use as a context manager; ``api_client()`` gives a real kubernetes ApiClient pointed at it."""

    def __init__(self, stages: list[Stage]):
        super().__init__()
        self.stages = stages
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.create_error: tuple[int, str] | None = None
        self.read_errors: dict[int, int] = {}
        """Job read number -> HTTP status to answer with instead of the job."""
        self.on_read: Callable[[int], None] | None = None
        """Called with the job read number (from 1) before the answer is sent."""
        self.job_reads = 0

    @property
    def requests(self) -> list[Request]:
        """Each request so far, with its path, query and RBAC permission."""
        return self.received

    def deletes(self) -> list[Request]:
        return [request for request in self.received if request.method == "DELETE"]

    def _stage(self) -> Stage:
        return self.stages[min(max(self.job_reads, 1), len(self.stages)) - 1]

    def handle(self, request: Request) -> Answer:
        custom = request.resource if request.resource and request.resource.group else None
        if custom and "/" not in custom.plural and request.verb in ("create", "get", "delete"):
            return self._custom_object(request.verb, custom, request.body)
        if (pods := request.addresses("", "v1", "pods")) and request.verb == "list":
            return 200, self._pod_list(pods.namespace, request.query.get("labelSelector", [""])[0])
        if (log := request.addresses("", "v1", "pods/log")) and request.verb == "get":
            return self._pod_log(log, request.query)
        return request.not_served()

    def _custom_object(self, verb: str, target: Resource, obj: Any) -> Answer:
        namespace, plural = target.namespace, target.plural
        if verb == "create":
            if self.create_error:
                code, message = self.create_error
                return failure(code, "Invalid", message)
            if obj["metadata"].get("namespace", namespace) != namespace:
                return failure(400, "BadRequest", "the object's namespace does not match the request's")
            key = (plural, namespace, obj["metadata"]["name"])
            if key in self.objects:
                return target.already_exists(key[2])
            obj["metadata"] |= {"uid": f"uid-{len(self.objects)}", "creationTimestamp": "2025-01-01T00:00:00Z"}
            self.objects[key] = obj
            return 201, obj
        key = (plural, namespace, target.name)
        if key not in self.objects:
            return target.not_found()
        if verb == "delete":
            del self.objects[key]
            return deleted(target.name)
        self.job_reads += 1
        if self.on_read:
            self.on_read(self.job_reads)
        if self.job_reads in self.read_errors:
            return failure(self.read_errors[self.job_reads], "ServiceUnavailable", "etcd is restarting")
        return 200, {**self.objects[key], "status": {"conditions": self._stage().conditions}}

    def _pod_list(self, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            {**p, "metadata": {**p["metadata"], "namespace": namespace}}
            for p in self._stage().pods
            if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def _pod_log(self, target: Resource, query: dict[str, list[str]]) -> Answer:
        name = target.name
        if not any(p["metadata"]["name"] == name for p in self._stage().pods):
            return target.not_found()
        previous = query.get("previous", ["false"])[0] == "true"
        text = self.logs.get(f"{name}/previous" if previous else name, "")
        tail = int(query.get("tailLines", ["0"])[0])
        if tail:
            text = "".join(text.splitlines(keepends=True)[-tail:])
        return 200, text
