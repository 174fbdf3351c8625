"""KServe model that scores host metrics as they stream in, with a model written by the ``train_anomaly`` component.

The model directory holds ``model.json`` (``"family": "anomaly"``) and the detectors' state
(:mod:`components.anomaly.model`; every file's sha256 is checked, nothing is unpickled). Each host has its own
stream per metric, continuing from where training left it (a host the model has not seen starts with no
history); at most ``max_hosts`` streams are kept, the least recently used dropped first. Memory per host is
bounded by the detector's parameters.

Protocols (routing, health and metadata come from KServe):

* V1: ``POST /v1/models/NAME:predict`` with ``{"instances": [{"host": "h1", "timestamp": "2024-05-01T12:00:00Z",
  "cpu": 41.2, "latency_ms": 120.0, "error_rate": 0.01}, ...]}``: the model's host, timestamp and metric fields
  (other fields are ignored); the timestamp is ISO 8601 (no zone means UTC) or seconds since the epoch. Returns
  ``{"predictions": [{"host", "timestamp", "score", "anomaly", "threshold", "scores": {metric: score}}, ...]}``:
  ``score`` in [0, 1) is the largest metric score, ``anomaly`` is ``score >= threshold``.
* V2 (Open Inference Protocol): ``POST /v2/models/NAME/infer`` with tensors of shape ``[N]``: ``host`` (BYTES),
  ``timestamp`` (BYTES ISO 8601, or a numeric datatype in seconds since the epoch) and one numeric tensor per
  metric. Outputs: ``score`` (FP64) and ``anomaly`` (BOOL), shape ``[N]``.

Points are scored in request order. Each host's timestamps must increase: a point at or before the host's last
one is refused (HTTP 400), as is any other bad field, naming the instance and field, and nothing of that
request is scored then. Requests are scored one at a time on a worker thread, in the order they arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kserve
import numpy as np
import pandas as pd
from kserve import model_server
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from serving import metrics
from serving.model_kind import ModelLoadError, local_model_path
from serving.predictor_base import NUMERIC_V2_TYPES, Predictor, decoded, type_name

DEFAULT_MAX_HOSTS = 1000
DEFAULT_MAX_INSTANCES = 1000


@dataclass(frozen=True)
class Point:
    host: str
    timestamp: pd.Timestamp
    values: dict[str, float]
    where: str  # "instances[3]" or "row 3": how errors name it


Scores = tuple[float, dict[str, float]]  # a point's score (its largest metric score) and its score per metric


class AnomalyDetector(Predictor):
    """Serves a ``train_anomaly`` model directory over KServe's V1 and V2 protocols, one stream per host."""

    instance_noun = "point"

    def __init__(
        self, name: str, model_dir: str, *, max_hosts: int = DEFAULT_MAX_HOSTS, max_instances: int = DEFAULT_MAX_INSTANCES
    ):
        super().__init__(name)
        if max_hosts < 1 or max_instances < 1:
            raise ValueError(f"max_hosts and max_instances must be at least 1, got {max_hosts} and {max_instances}")
        self.model_dir = model_dir
        self.max_hosts = max_hosts
        self.max_instances = max_instances
        self.metric_names: tuple[str, ...] = ()
        # One thread: each request's order checks and scoring happen together, requests one after another.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"anomaly-{name}")

    def load(self) -> bool:
        from components.anomaly.model import AnomalyModel, HostCache

        path = local_model_path(self.model_dir)
        try:
            model = AnomalyModel.load(path)
        except Exception as error:  # sha256 mismatch, untrusted skops type, corrupt state: all mean "cannot serve"
            raise ModelLoadError(f"cannot load the anomaly model in {path}: {error}") from error
        self.model = model
        self.metric_names = model.metrics
        self.hosts = HostCache(model, self.max_hosts)
        self.ready = True
        return self.ready

    async def infer(self, points: list[Point]) -> list[Scores]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.score_points, points)

    def count_predictions(self, points: list[Point], scores: list[Scores]) -> None:
        metrics.PREDICTIONS.labels(self.name).inc(len(points))
        alerts = sum(1 for score, _ in scores if score >= self.model.threshold)
        if alerts:
            metrics.PREDICTED_LABELS.labels(self.name, "anomaly").inc(alerts)

    def score_points(self, points: list[Point]) -> list[Scores]:
        """Check every point's time against its host's stream, then score them all (or none): blocking."""
        self._check_order(points)
        by_host: dict[str, list[int]] = {}
        for index, point in enumerate(points):
            by_host.setdefault(point.host, []).append(index)
        results: list[Scores] = [(0.0, {})] * len(points)
        for host, indexes in by_host.items():
            stream = self.hosts.get(host)
            values = {m: np.array([points[i].values[m] for i in indexes]) for m in self.metric_names}
            scores = stream.score([points[i].timestamp for i in indexes], values)
            for row, index in enumerate(indexes):
                per_metric = {m: float(scores[m][row]) for m in self.metric_names}
                results[index] = (max(per_metric.values()), per_metric)
        return results

    def _check_order(self, points: list[Point]) -> None:
        last: dict[str, pd.Timestamp | None] = {}
        for point in points:
            if point.host not in last:
                last[point.host] = self._last_timestamp(point.host, point.where)
            previous = last[point.host]
            if previous is not None and point.timestamp <= previous:
                raise InvalidInput(
                    f"{point.where}.timestamp {point.timestamp.isoformat()} is not after host {point.host!r}'s last "
                    f"point ({previous.isoformat()}); send each host's points in time order, once"
                )
            last[point.host] = point.timestamp

    def _last_timestamp(self, host: str, where: str) -> pd.Timestamp | None:
        stream = self.hosts.peek(host)
        if stream is not None:
            return stream.last_timestamp
        model = self.model
        if model.spec.learned and (host, model.metrics[0]) not in model.fitted:
            raise InvalidInput(f"{where}.host {host!r} has no trained {model.spec.kind} detector (it is fitted per host)")
        trained = model.streams.get(host)
        return trained.last_timestamp if trained is not None and not self.hosts.was_resumed(host) else None

    def get_input_types(self) -> list[dict]:
        return [{"name": "host", "datatype": "BYTES", "shape": [-1]}, {"name": "timestamp", "datatype": "BYTES", "shape": [-1]}] + [
            {"name": metric, "datatype": "FP64", "shape": [-1]} for metric in self.metric_names
        ]

    def output_tensors(self) -> list[tuple[str, str]]:
        return [("score", "FP64"), ("anomaly", "BOOL")]

    def output_values(self, name: str, scores: list[Scores]) -> list:
        if name == "anomaly":
            return [score >= self.model.threshold for score, _ in scores]
        return [score for score, _ in scores]

    def inputs_from_v1(self, payload: Any) -> list[Point]:
        """The points of a V1 request, checked; raise InvalidInput naming the instance and field."""
        points = []
        for index, instance in enumerate(self.v1_instances(payload)):
            where = f"instances[{index}]"
            if not isinstance(instance, dict):
                raise InvalidInput(f"{where} must be an object with fields {self._fields()}, got {type_name(instance)}")
            missing = [name for name in ("host", "timestamp", *self.metric_names) if name not in instance]
            if missing:
                raise InvalidInput(f"{where} lacks field(s) {missing}; an instance has {self._fields()}")
            values = {m: _number(instance[m], f"{where}.{m}") for m in self.metric_names}
            host = _host(instance["host"], f"{where}.host")
            points.append(Point(host, _timestamp(instance["timestamp"], f"{where}.timestamp"), values, where))
        return points

    def inputs_from_v2(self, request: InferRequest) -> list[Point]:
        """The points of a V2 request: tensors host, timestamp and one per metric; raise InvalidInput naming the tensor."""
        names = self._fields()
        tensors = self.v2_tensors(
            request, names, missing_hint=f"this model takes tensors {names}, each of shape [N]",
            unknown_hint=f"this model takes tensors {names}",
        )  # fmt: skip
        columns, count = self.v2_columns(
            tensors, names, check_datatype=_check_datatype, convert=lambda name, value, where: decoded(value, where)
        )
        return [
            Point(
                _host(columns["host"][i], f"input 'host'[{i}]"),
                _timestamp(columns["timestamp"][i], f"input 'timestamp'[{i}]"),
                {m: _number(columns[m][i], f"input '{m}'[{i}]") for m in self.metric_names},
                f"row {i}",
            )
            for i in range(count)
        ]

    def v1_predictions(self, points: list[Point], scores: list[Scores]) -> list[dict]:
        threshold = self.model.threshold
        return [
            {"host": p.host, "timestamp": p.timestamp.isoformat(), "score": score, "anomaly": score >= threshold,
             "threshold": threshold, "scores": per_metric}
            for p, (score, per_metric) in zip(points, scores)
        ]  # fmt: skip

    def _fields(self) -> list[str]:
        return ["host", "timestamp", *self.metric_names]

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().stop()


def _check_datatype(name: str, datatype: str, where: str) -> None:
    allowed = {"BYTES"} if name == "host" else NUMERIC_V2_TYPES | ({"BYTES"} if name == "timestamp" else set())
    if datatype not in allowed:
        raise InvalidInput(f"{where} must have datatype {' or '.join(sorted(allowed)) if len(allowed) < 3 else 'numeric'}"
                           f"{' or BYTES' if name == 'timestamp' else ''}, got {datatype}")  # fmt: skip


def _host(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where} must be a non-empty string, got {value!r}")
    return value


def _timestamp(value: Any, where: str) -> pd.Timestamp:
    from components.anomaly.model import AnomalyModelError, utc_timestamp

    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where} must be a time, got {value}")
    try:
        return utc_timestamp(value, where)
    except AnomalyModelError as error:
        raise InvalidInput(str(error)) from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{where} must be a number, got {type_name(value)}")
    if not math.isfinite(value):
        raise InvalidInput(f"{where} must be a finite number, got {value}")
    return float(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve a train_anomaly model with KServe (V1 and V2).", parents=[model_server.parser]
    )
    parser.add_argument("--model_dir", required=True, help="local anomaly model directory (model.json)")
    parser.add_argument(
        "--max_hosts", type=int, default=DEFAULT_MAX_HOSTS, help="host streams kept (least recently used dropped)"
    )
    parser.add_argument(
        "--max_instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most points accepted in one request"
    )
    return parser.parse_args(argv)


def main() -> None:
    """``python -m serving.anomaly_detector --model_dir D --model_name N``: this predictor alone (``serving.server``
    serves it too, choosing it from the model directory)."""
    args = parse_args()
    model = AnomalyDetector(args.model_name, args.model_dir, max_hosts=args.max_hosts, max_instances=args.max_instances)
    try:
        model.load()
    except ModelLoadError as error:
        sys.exit(f"serving.anomaly_detector: {error}")
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
