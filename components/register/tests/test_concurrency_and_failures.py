"""Two processes registering at once lose no versions; an unreachable tracking server fails after bounded attempts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.register.registry import MLFLOW_HTTP_DEFAULTS, ModelRegistry, RegistryUnavailableError
from components.register.tests.samples import free_port
from kfp_mlops.paths import PROJECT_ROOT

WORKER_START_SECONDS = 240
REGISTRATIONS_PER_WORKER = 3

# Imports MLflow, says it is ready, waits for "go" (so both workers register at the same time), then registers.
WORKER = """
import json, sys, time
from pathlib import Path
from components.register.registry import ModelRegistry, PipelineRun
uri, name, model_dir, worker, count, barrier = sys.argv[1:7]
Path(barrier, f"ready-{worker}").touch()
deadline = time.monotonic() + 240
while not Path(barrier, "go").exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.05)
registry = ModelRegistry(uri)
runs = [registry.register(name, model_dir, pipeline_run=PipelineRun(f"{worker}-{i}")) for i in range(int(count))]
print(json.dumps([run.version.version for run in runs]))
"""


@pytest.mark.parametrize("store", ["server", "fresh-sqlite"])
def test_two_processes_registering_at_once_lose_no_versions(store, request, model_name, model_dir, tmp_path):
    if store == "server":
        uri = request.getfixturevalue("mlflow_server")
    else:  # a new database: both workers also race to create its tables
        uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, model_name, str(model_dir), worker, str(REGISTRATIONS_PER_WORKER), str(barrier)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in ("a", "b")
    ]
    deadline = time.monotonic() + WORKER_START_SECONDS
    while not all((barrier / f"ready-{worker}").exists() for worker in ("a", "b")):
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(worker.poll() is None for worker in workers), [worker.communicate() for worker in workers]
        time.sleep(0.05)  # poll interval while the workers import MLflow
    (barrier / "go").touch()
    reported = []
    for worker in workers:
        out, err = worker.communicate(timeout=WORKER_START_SECONDS)
        assert worker.returncode == 0, err[-3000:]
        reported += json.loads(out.strip().splitlines()[-1])

    total = 2 * REGISTRATIONS_PER_WORKER
    assert sorted(reported, key=int) == [str(v) for v in range(1, total + 1)]
    versions = ModelRegistry(uri).versions(model_name)
    assert [info.version for info in versions] == [str(v) for v in range(1, total + 1)]
    assert len({info.run_id for info in versions}) == total
    expected_runs = {f"{worker}-{i}" for worker in "ab" for i in range(REGISTRATIONS_PER_WORKER)}
    assert {info.tags["kfp.run_id"] for info in versions} == expected_runs


class AlwaysUnavailable(ThreadingHTTPServer):
    """Answers every request with 503 and keeps the paths it was asked for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Unavailable)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Unavailable(BaseHTTPRequestHandler):
    server: AlwaysUnavailable

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_an_unavailable_server_fails_after_bounded_attempts_and_nothing_else(model_name, model_dir):
    server = AlwaysUnavailable()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        registry = ModelRegistry(server.url, connect_attempts=3, retry_backoff_s=0.01)
        with pytest.raises(RegistryUnavailableError, match=r"unreachable after 3 attempts \(last: HTTP 503 from .*/health\)"):
            registry.register(model_name, model_dir)
    finally:
        server.shutdown()
        server.server_close()
    assert server.paths == ["/health"] * 3  # the probe retried three times and MLflow was never called


def test_nothing_listening_is_a_clear_error(model_name, model_dir):
    url = f"http://127.0.0.1:{free_port()}"
    registry = ModelRegistry(url, connect_attempts=2, retry_backoff_s=0.01)
    with pytest.raises(RegistryUnavailableError, match=rf"{url} is unreachable after 2 attempts \(last: ConnectionError"):
        registry.models()


def test_mlflow_http_retries_are_bounded_unless_configured(monkeypatch):
    for name in MLFLOW_HTTP_DEFAULTS:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)  # absent now; restored to the session's value afterwards
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    ModelRegistry("http://127.0.0.1:1")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "15"
