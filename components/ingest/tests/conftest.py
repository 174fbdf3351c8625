"""Fixtures: output paths, and a real GCS emulator (gcp-storage-emulator) run as a subprocess."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from components.ingest.ingest import run_ingest

EMULATOR_START_SECONDS = 30


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, str]:
    """Output paths for train/eval/test/rejects, in a folder of their own."""
    folder = tmp_path / "outputs"
    return {name: str(folder / name) for name in ("train", "eval", "test", "rejects")}


@pytest.fixture
def ingest(outputs: dict[str, str]):
    """``run_ingest`` writing to the ``outputs`` paths."""

    def run(source: str, **options):
        return run_ingest(source, outputs["train"], outputs["eval"], outputs["test"], outputs["rejects"], **options)

    return run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """``host:port`` of a running in-memory GCS emulator; stopped after the session."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + EMULATOR_START_SECONDS
    while True:
        if process.poll() is not None:
            _, error = process.communicate()
            raise RuntimeError(f"GCS emulator exited with {process.returncode}: {error.decode()}")
        try:
            if requests.get(f"http://{address}/", timeout=1).text == "OK":
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"GCS emulator did not answer on {address} within {EMULATOR_START_SECONDS}s")
        time.sleep(0.1)  # poll interval while waiting for the server to listen
    try:
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the emulator, with STORAGE_EMULATOR_HOST pointing at it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{gcs_emulator}")
    from components.ingest.sources import storage_client

    bucket = storage_client().create_bucket(f"ingest-test-{uuid.uuid4().hex[:12]}")
    return bucket


class FlakyProxy(ThreadingHTTPServer):
    """An HTTP proxy to the emulator that answers 503 to the first request of each kind in ``flaky``.

    A kind is ``(method, path prefix)``; ``failed`` lists the requests it failed.
    """

    def __init__(self, upstream: str, flaky: list[tuple[str, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.flaky = list(flaky)
        self.failed: list[str] = []
        self.lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FlakyProxy

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            kind = next((k for k in self.server.flaky if self.command == k[0] and self.path.startswith(k[1])), None)
            if kind:
                self.server.flaky.remove(kind)
                self.server.failed.append(f"{self.command} {self.path}")
        if kind:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def flaky_gcs(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch):
    """Start a :class:`FlakyProxy` to the emulator: call it with the request kinds to fail once."""
    proxies = []

    def start(flaky: list[tuple[str, str]]) -> FlakyProxy:
        proxy = FlakyProxy(gcs_emulator, flaky)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        proxies.append(proxy)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.address)
        return proxy

    yield start
    for proxy in proxies:
        proxy.shutdown()
        proxy.server_close()
