"""A stand-in for a Kubernetes API server with KServe installed, for the endpoints the deploy component uses:
get, create, merge-patch and delete of ``serving.kserve.io/v1beta1`` InferenceServices.

It behaves like the real pair where the client depends on it: objects are validated against the CRD
(``fieldValidation=Strict``: unknown fields are refused with 422), only JSON merge patches are accepted,
``metadata.generation`` grows with each spec change, and the "controller" writes status a few reads
later (until then the status is the previous one, with an older ``observedGeneration``). A revision is
served by the real model server mapped to its storage URI; a storage URI without a server fails to load.
In Knative mode revisions are kept like KServe does: the template is the predictor without
``canaryTrafficPercent``, the rolled-out revision keeps ``100 - canaryTrafficPercent`` of traffic under the
tag ``prev``, the latest gets the rest under the tag ``latest``, each tag with its own URL.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops import crd_schema
from kfp_mlops.testing.fake_apiserver import Answer, FakeKubernetesApi, Request, Resource, deleted, failure


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


@dataclass
class _Revision:
    name: str
    storage_uri: str


@dataclass
class _Service:
    obj: dict[str, Any]
    revisions: list[_Revision] = field(default_factory=list)
    template: dict[str, Any] | None = None
    rolled_out: _Revision | None = None
    reads_left: int = 0  # reads that still see the old status
    pending_status: dict[str, Any] | None = None


class FakeKServeApi(FakeKubernetesApi):
    """Run with ``with FakeKServeApi(model_servers) as api:``; ``api.url`` is the API server's URL."""

    def __init__(self, model_servers: Mapping[str, str], *, reads_until_reconciled: int = 2):
        super().__init__()
        self.model_servers = dict(model_servers)  # storage URI -> base URL of a server of that model
        self.reads_until_reconciled = reads_until_reconciled
        self.services: dict[tuple[str, str], _Service] = {}
        self.patches: list[dict[str, Any]] = []

    @property
    def requests(self) -> list[tuple[str, str, Any]]:
        """(method, path?query, body) of each request so far."""
        return [(request.method, request.target, request.body) for request in self.received]

    def stored(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.services[(namespace, name)].obj)

    def verbs(self) -> set[str]:
        """The RBAC verbs the requests so far needed."""
        return {verb for verb, _, _ in self.permissions()}

    # --- the API ---------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        target = request.addresses("serving.kserve.io", "v1beta1", "inferenceservices")
        if target is None:
            return request.not_served()
        if request.verb == "create":
            return self._create(target, request.body, request.query)
        if request.verb == "get":
            return self._get(target)
        if request.verb == "patch":
            if (content_type := request.content_type) != "application/merge-patch+json":
                return failure(415, "UnsupportedMediaType", f"this fake takes merge patches, not {content_type}")
            return self._patch(target, request.body, request.query)
        if request.verb == "delete":
            return self._delete(target)
        return request.not_served()

    def _create(self, target: Resource, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
        namespace, name = target.namespace, body.get("metadata", {}).get("name", "")
        if (namespace, name) in self.services:
            return target.already_exists(name)
        if refusal := self._refusal(body, query):
            return refusal
        obj = copy.deepcopy(body)
        obj["metadata"].update(namespace=namespace, generation=1, uid=str(uuid.uuid4()), resourceVersion="1")
        obj.pop("status", None)
        service = _Service(obj)
        self.services[(namespace, name)] = service
        self._spec_changed(service)
        return 201, obj

    def _get(self, target: Resource) -> Answer:
        service = self.services.get((target.namespace, target.name))
        if service is None:
            return target.not_found()
        if service.pending_status is not None:
            if service.reads_left == 0:
                service.obj["status"] = service.pending_status
                service.pending_status = None
            else:
                service.reads_left -= 1
        return 200, service.obj

    def _patch(self, target: Resource, patch: dict[str, Any], query: dict[str, list[str]]) -> Answer:
        service = self.services.get((target.namespace, target.name))
        if service is None:
            return target.not_found()
        self.patches.append(copy.deepcopy(patch))
        patched = apply_merge_patch(service.obj, {key: value for key, value in patch.items() if key != "status"})
        if refusal := self._refusal(patched, query):
            return refusal
        spec_changed = patched["spec"] != service.obj["spec"]
        patched["metadata"]["resourceVersion"] = str(int(service.obj["metadata"]["resourceVersion"]) + 1)
        if spec_changed:
            patched["metadata"]["generation"] += 1
        service.obj = patched
        if spec_changed:
            self._spec_changed(service)
        return 200, patched

    def _delete(self, target: Resource) -> Answer:
        if self.services.pop((target.namespace, target.name), None) is None:
            return target.not_found()
        return deleted(target.name)

    def _refusal(self, obj: dict[str, Any], query: dict[str, list[str]]) -> Answer | None:
        if query.get("fieldValidation") != ["Strict"]:
            return failure(400, "BadRequest", "this fake expects fieldValidation=Strict")
        if (crd_schema.CRD_DIR / crd_schema.INFERENCE_SERVICE_CRD).exists() and (problems := crd_schema.manifest_errors(obj, crd_schema.INFERENCE_SERVICE_CRD, "v1beta1")):
            return failure(422, "Invalid", "InferenceService is invalid: " + "; ".join(problems))
        return None

    # --- the controller -------------------------------------------------------------------------------

    def _spec_changed(self, service: _Service) -> None:
        predictor = service.obj["spec"]["predictor"]
        container = predictor["containers"][0]
        storage_uri = next(e["value"] for e in container["env"] if e["name"] == "STORAGE_URI")
        template = {key: value for key, value in predictor.items() if key != "canaryTrafficPercent"}
        if template != service.template:
            service.template = template
            name = f"{service.obj['metadata']['name']}-predictor-{len(service.revisions) + 1:05d}"
            service.revisions.append(_Revision(name, storage_uri))
        mode = service.obj["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Standard")
        status = self._knative_status(service) if mode == "Knative" else self._standard_status(service)
        status["observedGeneration"] = service.obj["metadata"]["generation"]
        status["deploymentMode"] = mode
        service.pending_status = status
        service.reads_left = self.reads_until_reconciled

    def _knative_status(self, service: _Service) -> dict[str, Any]:
        latest = service.revisions[-1]
        canary = service.obj["spec"]["predictor"].get("canaryTrafficPercent")
        if latest.storage_uri not in self.model_servers:
            return self._failed_status(service, latest)
        previous = service.rolled_out
        if canary is None or previous is None or previous is latest:
            service.rolled_out = previous = latest
            canary = 100
        traffic = [
            {"tag": "latest", "revisionName": latest.name, "percent": canary, "latestRevision": True,
             "url": self.model_servers[latest.storage_uri]},
        ]  # fmt: skip
        if previous is not latest:
            traffic.insert(0, {
                "tag": "prev", "revisionName": previous.name, "percent": 100 - canary, "latestRevision": False,
                "url": self.model_servers[previous.storage_uri],
            })  # fmt: skip
        url = self.model_servers[previous.storage_uri]  # the service URL; the stable revision answers it here
        predictor = {
            "latestCreatedRevision": latest.name,
            "latestReadyRevision": latest.name,
            "latestRolledoutRevision": previous.name,
            "traffic": traffic,
            "url": url,
        }
        return _ready_status(url, predictor)

    def _standard_status(self, service: _Service) -> dict[str, Any]:
        latest = service.revisions[-1]
        if latest.storage_uri not in self.model_servers:
            return self._failed_status(service, latest)
        url = self.model_servers[latest.storage_uri]
        return _ready_status(url, {"url": url})

    def _failed_status(self, service: _Service, revision: _Revision) -> dict[str, Any]:
        message = f"storage-initializer: failed to download {revision.storage_uri}"
        status = copy.deepcopy(service.obj.get("status") or {})
        status["conditions"] = [
            {"type": "PredictorReady", "status": "False", "reason": "RevisionFailed", "message": message},
            {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": message},
        ]
        status["modelStatus"] = {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message, "modelRevisionName": revision.name},
        }
        return status


def _ready_status(url: str, predictor: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": url,
        "address": {"url": url},
        "conditions": [
            {"type": "PredictorReady", "status": "True"},
            {"type": "IngressReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
        "components": {"predictor": predictor},
        "modelStatus": {"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded"}},
    }
