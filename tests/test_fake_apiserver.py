"""The base of the stand-in Kubernetes API servers (kfp_mlops/testing/fake_apiserver.py) over real HTTP: what each
request is recorded as, the answers it sends, and its lifecycle. The fakes built on it are tested with the
components that use them (deploy, tune, launch_training)."""

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from urllib3.exceptions import MaxRetryError

from kfp_mlops.testing.fake_apiserver import Answer, FakeKubernetesApi, Request, failure

GROUP = "example.org"
WIDGETS = f"/apis/{GROUP}/v1/namespaces/team-a/widgets"


class WidgetApi(FakeKubernetesApi):
    """Serves get of widgets and the log of a pod; refuses everything else as the real fakes do."""

    def handle(self, request: Request) -> Answer:
        if (widget := request.addresses(GROUP, "v1", "widgets")) and request.verb == "get":
            if widget.name == "missing":
                return widget.not_found()
            return 200, {"kind": "Widget", "metadata": {"name": widget.name, "namespace": widget.namespace}}
        if request.addresses("", "v1", "pods/log"):
            return 200, "line 1\n"
        if (widgets := request.addresses(GROUP, "v1", "widgets")) and request.verb == "create":
            return widgets.already_exists(request.body["metadata"]["name"])
        if request.verb == "patch":
            return failure(422, "Invalid", "no patching here")
        return request.not_served()


def send(api: WidgetApi, method: str, path: str, body: object = None) -> tuple[int, str, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_each_request_is_recorded_with_the_rbac_permission_it_needs():
    calls = [
        ("GET", f"{WIDGETS}/w1", ("get", GROUP, "widgets")),
        ("GET", f"{WIDGETS}?labelSelector=a%3Db", ("list", GROUP, "widgets")),
        ("POST", WIDGETS, ("create", GROUP, "widgets")),
        ("PUT", f"{WIDGETS}/w1", ("update", GROUP, "widgets")),
        ("PATCH", f"{WIDGETS}/w1", ("patch", GROUP, "widgets")),
        ("DELETE", f"{WIDGETS}/w1", ("delete", GROUP, "widgets")),
        ("DELETE", WIDGETS, ("deletecollection", GROUP, "widgets")),
        ("GET", "/api/v1/namespaces/team-a/pods/p-0/log?tailLines=5", ("get", "", "pods/log")),
        ("GET", "/version", ("get", "", "/version")),
    ]
    with WidgetApi() as api:
        for method, path, _ in calls:
            send(api, method, path, {"metadata": {"name": "w1"}} if method in ("POST", "PUT", "PATCH") else None)
    assert [(r.method, r.target, r.permission) for r in api.received] == calls
    assert api.received[1].query == {"labelSelector": ["a=b"]}
    assert api.received[2].body == {"metadata": {"name": "w1"}}
    assert api.permissions() == {permission for _, _, permission in calls}


def test_answers_are_json_text_or_a_kubernetes_status_with_the_api_servers_message():
    with WidgetApi() as api:
        ok = send(api, "GET", f"{WIDGETS}/w1")
        log = send(api, "GET", "/api/v1/namespaces/team-a/pods/p-0/log")
        missing = send(api, "GET", f"{WIDGETS}/missing")
        exists = send(api, "POST", WIDGETS, {"metadata": {"name": "w1"}})
        refused = send(api, "PATCH", f"{WIDGETS}/w1", {})
        unserved = send(api, "GET", "/api/v1/namespaces/team-a/configmaps")
    assert ok[:2] == (200, "application/json")
    assert json.loads(ok[2]) == {"kind": "Widget", "metadata": {"name": "w1", "namespace": "team-a"}}
    assert log == (200, "text/plain", b"line 1\n")
    assert refused[:2] == (422, "application/json")
    assert json.loads(refused[2]) == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "message": "no patching here",
        "code": 422,
    }  # fmt: skip
    statuses = [(code, json.loads(body)) for code, _, body in (missing, exists, unserved)]
    assert [(code, status["reason"], status["message"]) for code, status in statuses] == [
        (404, "NotFound", 'widgets.example.org "missing" not found'),
        (409, "AlreadyExists", 'widgets.example.org "w1" already exists'),
        (404, "NotFound", "GET /api/v1/namespaces/team-a/configmaps is not served by this fake"),
    ]


def test_api_client_reaches_the_fake_and_nothing_answers_after_it_exits():
    with WidgetApi() as api:
        custom = client.CustomObjectsApi(api.api_client())
        widget = custom.get_namespaced_custom_object(GROUP, "v1", "team-a", "widgets", "w1")
        with pytest.raises(client.ApiException) as missing:
            custom.get_namespaced_custom_object(GROUP, "v1", "team-a", "widgets", "missing")
    assert widget["metadata"]["name"] == "w1"
    assert missing.value.status == 404
    # The client used above keeps no connection the stopped fake would still serve.
    with pytest.raises(MaxRetryError):
        custom.get_namespaced_custom_object(GROUP, "v1", "team-a", "widgets", "w1")
    with pytest.raises(urllib.error.URLError):
        send(api, "GET", f"{WIDGETS}/w1")
