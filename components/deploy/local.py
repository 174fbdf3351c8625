"""Local deployment: run the model server beside the task, smoke-test it over HTTP, report, stop it.

The server is ``python -m serving.server`` started with the current interpreter on a free loopback
port (see :mod:`serving.process`); the smoke test is one V1 ``:predict`` request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from components.deploy.smoke import (
    DeployError,
    Instance,
    SmokeResult,
    send_smoke_request,
    smoke_instance,
    v1_predict_url,
)
from serving.process import ServerProcess, ServerStartError

__all__ = ["DeployError", "DeployOutputs", "LocalDeployment", "deploy_locally", "serve_locally"]


class DeployOutputs(NamedTuple):
    url: str
    prediction: str  # JSON of the smoke input's V1 prediction, e.g. {"label": ..., "score": ..., "scores": {...}}
    revision: str = ""  # the serving revision (KServe); empty for a local server


class LocalDeployment:
    """A model server running on this machine, already smoke-tested; a context manager that stops it."""

    def __init__(self, server: ServerProcess, smoke: SmokeResult):
        self.server = server
        self.request = smoke.request
        self.response = smoke.response
        self.latency_ms = smoke.latency_ms

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
    smoke_inputs: Sequence[Instance],
    *,
    startup_timeout_s: float = 120.0,
) -> LocalDeployment:
    """Start the model server on ``model_dir``, wait until it is ready and send ``smoke_inputs`` (V1 instances:
    texts, or JSON objects of feature values) to it.

    Raises :class:`DeployError` with the server's last log lines if it exits or never gets ready, and
    with the HTTP response if the smoke request fails; no server is left running then.
    """
    if not smoke_inputs:
        raise DeployError("smoke_inputs is empty: give at least one instance to send to the deployed model")
    try:
        server = ServerProcess.start(model_dir, model_name, startup_timeout_s=startup_timeout_s)
    except ServerStartError as error:
        raise DeployError(f"could not serve the model in {model_dir}: {error}") from error
    try:
        try:
            smoke = send_smoke_request(predict_url(server), smoke_inputs)
        except DeployError as error:
            raise DeployError(f"{error}\nlast server log lines:\n{server.log_tail()}") from error
        return LocalDeployment(server, smoke)
    except BaseException:
        server.stop()
        raise


def deploy_locally(model_dir: str, report_path: str, model_name: str, smoke_input: str) -> DeployOutputs:
    """Serve the model locally, smoke-test it with ``smoke_input`` (see :func:`smoke_instance`), write the Markdown
    report, stop the server."""
    with serve_locally(model_dir, model_name, [smoke_instance(smoke_input)]) as deployment:
        prediction = json.dumps(deployment.predictions[0])
        write_atomically(Path(report_path), smoke_report(deployment, model_dir))
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
        f"- Prediction: {prediction_summary(prediction)}",
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


def prediction_summary(prediction: dict) -> str:
    """One line for a report: the label and its score, the value and its interval, or the anomaly flag."""
    if "label" in prediction:
        score = prediction.get("score")
        return f"**{prediction['label']}**" + (f" (score {score:.3f})" if isinstance(score, (int, float)) else "")
    if "value" in prediction:
        interval = (prediction.get("p10"), prediction.get("p90"))
        shown = all(isinstance(bound, (int, float)) for bound in interval)
        return f"**{prediction['value']:.4g}**" + (f" (p10 {interval[0]:.4g}, p90 {interval[1]:.4g})" if shown else "")
    flag = "anomaly" if prediction.get("anomaly") else "normal"
    score = prediction.get("score")
    return f"**{flag}**" + (f" (score {score:.4g})" if isinstance(score, (int, float)) else "")


def predict_url(server: ServerProcess) -> str:
    return v1_predict_url(server.url, server.model_name)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(text)
    staging.replace(path)
