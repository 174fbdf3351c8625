"""Posts payloads to a logger the way KServe's agent does (pkg/logger/worker.go, cloudevents sdk-go v2).

Binary-mode CloudEvents: one POST per request and one per response (the agent logs a response only when
the model answered HTTP 200), the payload as the body, the event attributes as ``Ce-*`` headers in Go's
canonical capitalisation, ``Ce-Time`` in RFC 3339 with nanoseconds, and the request's Content-Type on
both events.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx

SOURCE = "tickets-predictor-00001-deployment"


def rfc3339_nano(moment: datetime) -> str:
    """How Go formats time.Time in RFC 3339 with nanoseconds (trailing zeros of the fraction dropped)."""
    moment = moment.astimezone(timezone.utc)
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}{'.' + fraction if fraction else ''}Z"


def event_headers(
    event_id: str,
    kind: str,
    moment: datetime,
    *,
    content_type: str = "application/json",
    inference_service: str = "tickets",
    namespace: str = "kubeflow-user",
    component: str = "predictor",
    endpoint: str = "default",
    metadata: dict[str, list[str]] | None = None,
) -> dict[str, str]:
    return {
        "Ce-Id": event_id,
        "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
        "Ce-Source": SOURCE,
        "Ce-Specversion": "1.0",
        "Ce-Time": rfc3339_nano(moment),
        "Ce-Inferenceservicename": inference_service,
        "Ce-Namespace": namespace,
        "Ce-Component": component,
        "Ce-Endpoint": endpoint,
        "Ce-Metadata": json.dumps(metadata or {}, separators=(",", ":")),
        "Content-Type": content_type,
    }


def log_event(client: httpx.Client, logger_url: str, event_id: str, kind: str, body: bytes, moment: datetime,
              **attributes: object) -> httpx.Response:  # fmt: skip
    return client.post(logger_url, content=body, headers=event_headers(event_id, kind, moment, **attributes))
