"""Local deployment: run the model server beside the task, smoke-test it over HTTP, report, stop it.

The server is ``python -m serving.server`` started with the current interpreter on a free loopback
port (see :mod:`serving.process`); the smoke test is one V1 ``:predict`` request.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from serving.process import ServerProcess, ServerStartError

SMOKE_TIMEOUT_S = 60.0


class DeployError(RuntimeError):
    """The model server did not start, or its smoke request failed; the message holds the evidence."""


class DeployOutputs(NamedTuple):
    url: str
    prediction: str  # JSON of the smoke text's prediction: {"label": ..., "score": ..., "scores": {...}}


class LocalDeployment:
    """A model server running on this machine, already smoke-tested; a context manager that stops it."""

    def __init__(self, server: ServerProcess, request: dict, response: dict, latency_ms: float):
        self.server = server
        self.request = request
        self.response = response
        self.latency_ms = latency_ms

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def predict_url(self) -> str:
        return predict_url(self.server)

    @property
    def predictions(self) -> list[dict]:
        return self.response["predictions"]

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_locally(
    model_dir: str | os.PathLike,
    model_name: str,
    smoke_texts: Sequence[str],
    *,
    startup_timeout_s: float = 120.0,
) -> LocalDeployment:
    """Start the model server on ``model_dir``, wait until it is ready and send ``smoke_texts`` to it.

    Raises :class:`DeployError` with the server's last log lines if it exits or never gets ready, and
    with the HTTP response if the smoke request fails; no server is left running then.
    """
    if not smoke_texts:
        raise DeployError("smoke_texts is empty: give at least one text to send to the deployed model")
    try:
        server = ServerProcess.start(model_dir, model_name, startup_timeout_s=startup_timeout_s)
    except ServerStartError as error:
        raise DeployError(f"could not serve the model in {model_dir}: {error}") from error
    try:
        request = {"instances": list(smoke_texts)}
        started = time.perf_counter()
        try:
            response = httpx.post(predict_url(server), json=request, timeout=SMOKE_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise DeployError(f"smoke request to {predict_url(server)} failed: {error!r}") from error
        latency_ms = (time.perf_counter() - started) * 1000
        if not _is_smoke_success(response, len(smoke_texts)):
            raise DeployError(
                f"smoke request to {predict_url(server)} failed: HTTP {response.status_code} {response.text}\n"
                f"last server log lines:\n{server.log_tail()}"
            )
        return LocalDeployment(server, request, response.json(), latency_ms)
    except BaseException:
        server.stop()
        raise


def deploy_locally(model_dir: str, report_path: str, model_name: str, smoke_text: str) -> DeployOutputs:
    """Serve the model locally, smoke-test it with ``smoke_text``, write the Markdown report, stop the server."""
    with serve_locally(model_dir, model_name, [smoke_text]) as deployment:
        prediction = json.dumps(deployment.predictions[0])
        _write_atomically(Path(report_path), smoke_report(deployment, model_dir))
        return DeployOutputs(deployment.url, prediction)


def smoke_report(deployment: LocalDeployment, model_dir: str) -> str:
    prediction = deployment.predictions[0]
    return "\n".join([
        f"# Deployment of `{deployment.server.model_name}` (local)",
        "",
        f"- Model directory: `{model_dir}`",
        f"- Server: `{deployment.url}` (KServe model server, stopped after the smoke test)",
        f"- Smoke request: `POST {deployment.predict_url}` (V1 protocol)",
        f"- Latency: {deployment.latency_ms:.1f} ms",
        f"- Prediction: **{prediction['label']}** (score {prediction['score']:.3f})",
        "",
        "## Request",
        "",
        "```json",
        json.dumps(deployment.request, indent=2),
        "```",
        "",
        "## Response",
        "",
        "```json",
        json.dumps(deployment.response, indent=2),
        "```",
        "",
    ])  # fmt: skip


def predict_url(server: ServerProcess) -> str:
    return f"{server.url}/v1/models/{server.model_name}:predict"


def _is_smoke_success(response: httpx.Response, expected_predictions: int) -> bool:
    if response.status_code != 200:
        return False
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(predictions, list)
        and len(predictions) == expected_predictions
        and all(isinstance(p, dict) and isinstance(p.get("label"), str) for p in predictions)
    )


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    staging.replace(path)
