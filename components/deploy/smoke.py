"""The smoke request every deployment must pass: one V1 ``:predict`` call that returns a prediction per instance.

An instance is a text (text classifiers) or a JSON object of feature values (tabular models, anomaly
detectors). The deploy component takes it as one string, ``smoke_input``: a string that starts with ``{`` is
parsed as the JSON object, anything else is sent as a text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

SMOKE_TIMEOUT_S = 60.0
Instance = str | dict[str, Any]


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


def smoke_instance(smoke_input: str) -> Instance:
    """The V1 instance ``smoke_input`` stands for: the JSON object it holds when it starts with ``{``, else the text."""
    if not smoke_input.lstrip().startswith("{"):
        return smoke_input
    try:
        return json.loads(smoke_input)  # a JSON document that starts with '{' is an object
    except ValueError as error:
        raise DeployError(
            f"smoke_input starts with '{{' but is not a JSON object ({error}); give one V1 instance such as "
            '{"duration_s": 12.5, "channel": "web"}, or a text that does not start with \'{\''
        ) from None


def v1_predict_url(base_url: str, model_name: str) -> str:
    return f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"


def send_smoke_request(url: str, instances: Sequence[Instance], *, timeout_s: float = SMOKE_TIMEOUT_S) -> SmokeResult:
    """POST ``{"instances": instances}`` to the V1 predict ``url``; raise :class:`DeployError` unless every instance
    gets a prediction: an object with a string ``label`` (classifiers), a numeric ``value`` (regressors) or a
    boolean ``anomaly`` (anomaly detectors)."""
    if not instances:
        raise DeployError("smoke_inputs is empty: give at least one instance to send to the deployed model")
    request = {"instances": list(instances)}
    started = time.perf_counter()
    try:
        response = httpx.post(url, json=request, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise DeployError(f"smoke request to {url} failed: {error!r}") from error
    latency_ms = (time.perf_counter() - started) * 1000
    if not _is_smoke_success(response, len(instances)):
        raise DeployError(f"smoke request to {url} failed: HTTP {response.status_code} {response.text}")
    return SmokeResult(url, request, response.json(), latency_ms)


def is_prediction(prediction: Any) -> bool:
    """One V1 prediction of a model this project serves: a label, a value or an anomaly flag."""
    if not isinstance(prediction, dict):
        return False
    value = prediction.get("value")
    return (
        isinstance(prediction.get("label"), str)
        or (isinstance(value, (int, float)) and not isinstance(value, bool))
        or isinstance(prediction.get("anomaly"), bool)
    )


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
        and all(is_prediction(p) for p in predictions)
    )
