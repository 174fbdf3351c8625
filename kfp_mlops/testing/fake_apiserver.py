"""The common part of the stand-in Kubernetes API servers in the tests: real HTTP on a free loopback port, served
to the real ``kubernetes`` client.

A fake subclasses :class:`FakeKubernetesApi` and answers :meth:`~FakeKubernetesApi.handle`; this module runs the
server (``with Fake(...) as api:``, ``api.url``), parses each request, including the namespaced resource its path
names, records it with the RBAC permission the real API server would check, and sends the answer as JSON or, for
a string, as text. Requests are handled one at a time. :func:`failure`, :func:`deleted`, ``not_found`` and the
like give Kubernetes ``Status`` answers with the API server's messages. Only the standard library is imported here
(the authoring venv has no ``kubernetes``); :meth:`~FakeKubernetesApi.api_client` imports it when called.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from kubernetes import client

Answer = tuple[int, Any]
"""An HTTP status and a body: JSON-serialisable, or a string sent as text/plain."""
Permission = tuple[str, str, str]
"""(verb, API group, resource) as an RBAC rule names them."""

_NAMESPACED = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<subresource>[^/]+))?)?$"
)


@dataclass(frozen=True)
class Resource:
    """What a namespaced path names: ``/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]`` or ``/apis/GROUP/VERSION/...``."""

    group: str  # "" for the core API
    version: str
    namespace: str
    plural: str  # with "/SUB" for a subresource, as RBAC names it: "pods/log"
    name: str  # "" for the collection

    @property
    def qualified(self) -> str:
        """How the API server's messages name the resource: ``inferenceservices.serving.kserve.io``, ``pods``."""
        plural = self.plural.split("/")[0]
        return f"{plural}.{self.group}" if self.group else plural

    def not_found(self) -> Answer:
        return failure(404, "NotFound", f'{self.qualified} "{self.name}" not found')

    def already_exists(self, name: str) -> Answer:
        return failure(409, "AlreadyExists", f'{self.qualified} "{name}" already exists')


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the path and query as sent
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any  # the decoded JSON body, None when there is none
    resource: Resource | None  # None for a path that names no namespaced resource
    permission: Permission

    @property
    def verb(self) -> str:
        return self.permission[0]

    def addresses(self, group: str, version: str, plural: str) -> Resource | None:
        """The resource when the request is to ``plural`` of ``group/version`` (a collection or an object)."""
        resource = self.resource
        if resource and (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
        return None

    def not_served(self) -> Answer:
        return failure(404, "NotFound", f"{self.method} {self.path} is not served by this fake")


def parse_request(method: str, target: str, content_type: str, body: Any) -> Request:
    parts = urlsplit(target)
    resource = None
    if match := _NAMESPACED.match(parts.path):
        subresource = match["subresource"]
        resource = Resource(
            group=match["group"] or "",
            version=match["version"],
            namespace=match["namespace"],
            plural=f"{match['plural']}/{subresource}" if subresource else match["plural"],
            name=match["name"] or "",
        )
    return Request(
        method=method,
        target=target,
        path=parts.path,
        query=parse_qs(parts.query),
        content_type=content_type,
        body=body,
        resource=resource,
        permission=_permission(method, parts.path, resource),
    )


def _permission(method: str, path: str, resource: Resource | None) -> Permission:
    if resource is None:  # RBAC names a non-resource URL by its path and the lower-case HTTP method
        return method.lower(), "", path
    verb = {
        "GET": "get" if resource.name else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if resource.name else "deletecollection",
    }[method]
    return verb, resource.group, resource.plural


class FakeKubernetesApi(ABC):
    """A Kubernetes API server for one test: subclass, answer :meth:`handle`, run with ``with``."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self._lock = threading.Lock()
        self._http = _HttpServer(self)
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def api_client(self) -> client.ApiClient:
        """A real kubernetes ApiClient pointed at this server."""
        from kubernetes import client

        return client.ApiClient(client.Configuration(host=self.url))

    def permissions(self) -> set[Permission]:
        """What the requests so far needed, as RBAC names it."""
        return {request.permission for request in self.received}

    @abstractmethod
    def handle(self, request: Request) -> Answer:
        """The answer to one request; called with the fake's lock held."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _receive(self, request: Request) -> tuple[int, str, bytes]:
        """Records and answers the request: (HTTP status, content type, body)."""
        with self._lock:  # also while encoding, as the fake's objects may change once it is released
            self.received.append(request)
            code, payload = self.handle(request)
            if isinstance(payload, str):
                return code, "text/plain", payload.encode()
            return code, "application/json", json.dumps(payload).encode()


def failure(code: int, reason: str, message: str) -> Answer:
    """A ``Status`` answer as the API server sends it for a refused request."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message}
    return code, {**status, "code": code}


def deleted(name: str) -> Answer:
    return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}


class _HttpServer(ThreadingHTTPServer):
    def __init__(self, fake: FakeKubernetesApi):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0, the default: a connection per request, so a fake that has exited answers nothing more (with
    # keep-alive, a client's open connection would still be served).
    server: _HttpServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        request = parse_request(self.command, self.path, self.headers.get("Content-Type", ""), body)
        code, content_type, data = self.server.fake._receive(request)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: object) -> None:
        pass
