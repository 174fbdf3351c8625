"""Run ``serving.server`` or ``serving.payload_logger`` as a child process on a free loopback port.

Start, wait until ready, stop. Used by the deploy component's local mode, the load benchmark and the tests.
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


class _ChildServer:
    """A ``python -m MODULE`` child that logs to a temporary file; a context manager that stops it."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path):
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def description(self) -> str:
        raise NotImplementedError

    @property
    def ready_url(self) -> str:
        raise NotImplementedError

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
        """Stop the process (SIGTERM, then SIGKILL after a grace period) and remove its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self, timeout_s: float) -> None:
        """Raise :class:`ServerStartError` (and stop the process) if it exits or is not ready in time."""
        deadline = time.monotonic() + timeout_s
        try:
            while not self.is_ready():
                try:
                    returncode = self.process.wait(timeout=READINESS_POLL_S)
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise ServerStartError(
                            f"{self.description} was not ready at {self.ready_url} "
                            f"after {timeout_s:.0f}s; last log lines:\n{self.log_tail()}"
                        ) from None
                    continue
                raise ServerStartError(
                    f"{self.description} exited with code {returncode} before it was ready; "
                    f"last log lines:\n{self.log_tail()}"
                )
        except BaseException:
            self.stop()
            raise


def _spawn(module: str, args: Sequence[str], log_prefix: str) -> tuple[subprocess.Popen, Path]:
    log_fd, log_name = tempfile.mkstemp(prefix=log_prefix, suffix=".log")
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return process, Path(log_name)


class ServerProcess(_ChildServer):
    """A running ``python -m serving.server``; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen, url: str, model_name: str, log_path: Path):
        super().__init__(process, url, log_path)
        self.model_name = model_name

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
        return cls.start_module(
            "serving.server", model_name, ["--model_dir", str(model_dir), *extra_args], startup_timeout_s
        )

    @classmethod
    def start_module(
        cls, module: str, model_name: str, args: Sequence[str], startup_timeout_s: float = 120.0
    ) -> ServerProcess:
        """Start any KServe model server module (e.g. ``serving.feast_transformer``) the same way."""
        port = free_port()
        args = ["--model_name", model_name, "--http_port", str(port), "--enable_grpc", "false", *args]
        process, log_path = _spawn(module, args, f"{module}-{model_name}-")
        server = cls(process, f"http://127.0.0.1:{port}", model_name, log_path)
        server._wait_until_ready(startup_timeout_s)
        return server

    @property
    def description(self) -> str:
        return f"model server for {self.model_name!r}"

    @property
    def ready_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/ready"


class PayloadLoggerProcess(_ChildServer):
    """A running ``python -m serving.payload_logger``; its ``url`` is where KServe's logger should POST."""

    def __init__(self, process: subprocess.Popen, url: str, out: str, log_path: Path):
        super().__init__(process, url, log_path)
        self.out = out

    @classmethod
    def start(
        cls, out: str | os.PathLike, *, extra_args: Sequence[str] = (), startup_timeout_s: float = 60.0
    ) -> PayloadLoggerProcess:
        """Start the payload logger writing to ``out`` and wait until ``/healthz`` answers."""
        port = free_port()
        args = ["--out", str(out), "--host", "127.0.0.1", "--port", str(port), *extra_args]
        process, log_path = _spawn("serving.payload_logger", args, "payload-logger-")
        logger = cls(process, f"http://127.0.0.1:{port}", str(out), log_path)
        logger._wait_until_ready(startup_timeout_s)
        return logger

    @property
    def description(self) -> str:
        return f"payload logger writing to {self.out}"

    @property
    def ready_url(self) -> str:
        return f"{self.url}/healthz"

    def status(self) -> dict:
        return httpx.get(self.ready_url, timeout=5).json()
