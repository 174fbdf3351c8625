"""The smoke request every deployment must pass: one V1 ``:predict`` call that returns a label per text."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

SMOKE_TIMEOUT_S = 60.0


class DeployError(RuntimeError):
    """The model could not be served, or its smoke request failed; the message holds the evidence."""


@dataclass(frozen=True)
class SmokeResult:
    url: str
    request: dict
    response: dict
    latency_ms: float

    @property
    def predictions(self) -> list[dict]:
        return self.response["predictions"]


def v1_predict_url(base_url: str, model_name: str) -> str:
    return f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"


def send_smoke_request(url: str, texts: Sequence[str], *, timeout_s: float = SMOKE_TIMEOUT_S) -> SmokeResult:
    """POST ``{"instances": texts}`` to the V1 predict ``url``; raise :class:`DeployError` unless every text
    gets a prediction with a string label."""
    if not texts:
        raise DeployError("smoke_texts is empty: give at least one text to send to the deployed model")
    request = {"instances": list(texts)}
    started = time.perf_counter()
    try:
        response = httpx.post(url, json=request, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise DeployError(f"smoke request to {url} failed: {error!r}") from error
    latency_ms = (time.perf_counter() - started) * 1000
    if not _is_smoke_success(response, len(texts)):
        raise DeployError(f"smoke request to {url} failed: HTTP {response.status_code} {response.text}")
    return SmokeResult(url, request, response.json(), latency_ms)


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
