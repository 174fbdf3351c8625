"""`kfp-mlops schedule`: a recurring run created through the real kfp.Client against a local HTTP server that
answers the KFP v2beta1 REST calls it makes and records them; bad schedules are refused before any connection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from kfp_mlops import cli
from kfp_mlops.schedules import ScheduleError, check_cron

API = "/apis/v2beta1"
PARAMS = ["payloads=gs://b/payloads", "reference_data=gs://b/train", "encoder_model=gs://b/model", "source=gs://b/t.csv"]


class FakeKfpApi(ThreadingHTTPServer):
    """Answers healthz, experiments (list, create) and recurringruns (create) as KFP's API server does."""

    def __init__(self, experiments: list[dict]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.experiments = experiments
        self.calls: list[tuple[str, str, dict, dict | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeKfpApi

    def do_GET(self) -> None:
        path, query = self._record(None)
        if path == f"{API}/healthz":
            self._answer({"multi_user": False})
        elif path == f"{API}/experiments":
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else None
            found = [e for e in self.server.experiments if wanted in (None, e["display_name"])]
            self._answer({"experiments": found, "total_size": len(found)} if found else {})
        else:
            self._answer({"error": f"no route {path}"}, status=404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path, _ = self._record(body)
        if path == f"{API}/experiments":
            created = {**body, "experiment_id": f"exp-{len(self.server.experiments) + 1}"}
            self.server.experiments.append(created)
            self._answer(created)
        elif path == f"{API}/recurringruns":
            self._answer({**body, "recurring_run_id": "rr-42", "status": "ENABLED"})
        else:
            self._answer({"error": f"no route {path}"}, status=404)

    def _record(self, body: dict | None) -> tuple[str, dict]:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.server.calls.append((self.command, url.path, query, body))
        return url.path, query

    def _answer(self, document: dict, status: int = 200) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def fake_api() -> Iterator[FakeKfpApi]:
    server = FakeKfpApi(experiments=[])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


@pytest.fixture(autouse=True)
def isolated_kfp_context(tmp_path, monkeypatch):
    """kfp.Client reads and writes ~/.config/kfp/context.json: keep it in the test's directory."""
    monkeypatch.setenv("HOME", str(tmp_path))


def schedule(host: str, *extra: str) -> int:
    params = [arg for param in PARAMS for arg in ("--param", param)]
    return cli.main(["schedule", "text_classification_ct", "--host", host, *params, *extra])


def test_a_recurring_run_is_created_with_the_compiled_pipeline_cron_and_parameters(fake_api, capsys):
    code = schedule(fake_api.url, "--cron", "0 0 6 * * *", "--experiment", "drift-checks", "--max-concurrency", "2",
                    "--no-catchup", "--param", "window_hours=12")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    posts = {path: body for method, path, _, body in fake_api.calls if method == "POST"}
    assert posts[f"{API}/experiments"]["display_name"] == "drift-checks"
    recurring = posts[f"{API}/recurringruns"]
    assert recurring["experiment_id"] == "exp-1" and recurring["mode"] == "ENABLE"
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *"}}
    assert int(recurring["max_concurrency"]) == 2 and recurring["no_catchup"] is True
    assert recurring["display_name"].startswith("text-classification-ct-")
    # The compiled package: the pipeline spec, and the platform spec with the kfp-kubernetes settings (GPU node
    # selector and tolerations of train, the optional MLflow Secret).
    spec, platform = recurring["pipeline_spec"]["pipeline_spec"], recurring["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "text-classification-ct" and "exec-drift" in spec["deploymentSpec"]["executors"]
    assert "kubernetes" in platform["platforms"]
    parameters = recurring["runtime_config"]["parameters"]
    assert parameters["payloads"] == "gs://b/payloads" and parameters["window_hours"] == 12.0
    out = capsys.readouterr().out
    assert "recurring run rr-42" in out and f"{fake_api.url}/#/recurringrun/details/rr-42" in out


def test_an_existing_experiment_is_reused(fake_api, capsys):
    fake_api.experiments.append({"experiment_id": "exp-7", "display_name": "kfp-mlops"})
    assert schedule(fake_api.url, "--cron", "@daily") == 0, capsys.readouterr().err
    assert [path for method, path, _, _ in fake_api.calls if method == "POST"] == [f"{API}/recurringruns"]
    recurring = next(body for method, path, _, body in fake_api.calls if path == f"{API}/recurringruns")
    assert recurring["experiment_id"] == "exp-7" and recurring["trigger"]["cron_schedule"]["cron"] == "@daily"
    assert int(recurring["max_concurrency"]) == 1 and recurring.get("no_catchup") in (None, False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--cron", "0 9 * * 1"], "has 5 fields; KFP's cron has 6, seconds first"),
        (["--cron", "0 61 * * * *"], "the minute field: 61 is outside 0-59"),
        (["--cron", "0 0 6 * * 7"], "the day of week field: 7 is outside 0-6"),
        (["--cron", "0 0 6 * FOO *"], "the month field: 'FOO' is not a value (1-12 or JAN-DEC)"),
        (["--cron", "*/0 * * * * *"], "step '0' in '*/0' must be a positive whole number"),
        (["--cron", "0 0 18-6 * * *"], "range '18-6' starts after it ends"),
        (["--cron", "@every tomorrow"], "@every takes a Go duration"),
        (["--cron", "@sometimes"], "is not a cron descriptor"),
        (["--cron", "@daily", "--max-concurrency", "11"], "--max-concurrency must be 1-10"),
        (["--cron", "@daily", "--param", "window_hours=soon"], "window_hours"),
    ],
)
def test_bad_schedules_are_refused_before_any_connection(extra, message, fake_api, capsys):
    assert schedule(fake_api.url, *extra) == 1
    error = capsys.readouterr().err
    assert error.startswith("kfp-mlops schedule: ") and message in error
    assert fake_api.calls == []


def test_a_missing_required_parameter_is_named_before_any_connection(fake_api, capsys):
    code = cli.main(["schedule", "text_classification_ct", "--host", fake_api.url, "--cron", "@daily"])
    assert code == 1 and "payloads" in capsys.readouterr().err
    assert fake_api.calls == []


@pytest.mark.parametrize(
    "expression",
    ["0 */15 * * * *", "0 0 6 * * MON-FRI", "0 0 9 ? * 2-6", "30 0 0 1,15 jan,JUL *", "0 0/10 * * * ?", "@hourly",
     "@every 1h30m", "  0 0 6   * * *  "],
)
def test_six_field_crons_and_descriptors_pass(expression):
    assert check_cron(expression) == " ".join(expression.split())


def test_a_unix_crontab_line_gets_its_six_field_spelling():
    with pytest.raises(ScheduleError, match=r"write '0 0 9 \* \* 1'"):
        check_cron("0 9 * * 1")
