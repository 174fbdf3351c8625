"""Run ``serving.server`` as a child process on a free loopback port: start, wait until ready, stop.

Used by the deploy component's local mode and by the server tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

READINESS_POLL_S = 0.25
STOP_GRACE_S = 15.0


class ServerStartError(RuntimeError):
    """The server process exited, or did not become ready before the deadline."""


def free_port() -> int:
    """A TCP port free on the loopback interface now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """A running ``python -m serving.server``; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen, url: str, model_name: str, log_path: Path):
        self.process = process
        self.url = url
        self.model_name = model_name
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        model_dir: str | os.PathLike,
        model_name: str,
        *,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 120.0,
    ) -> ServerProcess:
        """Start the server with the current interpreter and wait until the model is ready.

        gRPC is off (its fixed default port would collide between servers). Raises
        :class:`ServerStartError` with the server's last log lines if it exits or is not ready in time;
        no process is left running then.
        """
        port = free_port()
        command = [
            sys.executable, "-m", "serving.server",
            "--model_dir", str(model_dir),
            "--model_name", model_name,
            "--http_port", str(port),
            "--enable_grpc", "false",
            *extra_args,
        ]  # fmt: skip
        log_fd, log_name = tempfile.mkstemp(prefix=f"serving-{model_name}-", suffix=".log")
        with os.fdopen(log_fd, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        server = cls(process, f"http://127.0.0.1:{port}", model_name, Path(log_name))
        try:
            server._wait_until_ready(startup_timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def ready_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/ready"

    def is_ready(self) -> bool:
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period) and remove its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.is_ready():
            try:
                returncode = self.process.wait(timeout=READINESS_POLL_S)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"model server for {self.model_name!r} was not ready at {self.ready_url} "
                        f"after {timeout_s:.0f}s; last log lines:\n{self.log_tail()}"
                    ) from None
                continue
            raise ServerStartError(
                f"model server for {self.model_name!r} exited with code {returncode} before it was ready; "
                f"last log lines:\n{self.log_tail()}"
            )
