"""Prometheus metrics of the text model server, per model (label ``model``).

They live in prometheus_client's default registry, which KServe's ``GET /metrics`` exposes beside its own
``request_{preprocess,predict,postprocess}_seconds`` histograms (label ``model_name``). With KServe's
``--workers`` > 1 each worker process has its own registry, so scrape a single-worker server.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "serving_requests",
    "Prediction requests that reached the model, by protocol (v1, v2) and status (ok, invalid, error).",
    ["model", "protocol", "status"],
)
PREDICTIONS = Counter("serving_predictions", "Texts classified.", ["model"])
PREDICTED_LABELS = Counter("serving_predicted_labels", "Texts classified, by predicted label.", ["model", "label"])
REQUEST_LATENCY = Histogram(
    "serving_request_latency_seconds",
    "Time from a request reaching the model to its answer, queueing for a batch included (successful requests).",
    ["model"],
    buckets=LATENCY_BUCKETS_S,
)
BATCH_SIZE = Histogram(
    "serving_batch_size", "Texts per forward pass (requests coalesced by the batcher).", ["model"],
    buckets=BATCH_SIZE_BUCKETS,
)  # fmt: skip
BATCH_LATENCY = Histogram(
    "serving_batch_latency_seconds", "Time of one batch: tokenization, forward pass, softmax.", ["model"],
    buckets=LATENCY_BUCKETS_S,
)  # fmt: skip
