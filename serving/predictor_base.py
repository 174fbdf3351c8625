"""What the model server's predictors (text, tabular, anomaly) share: the V1 and V2 protocols around a model.

A predictor subclasses :class:`Predictor` (or :class:`BatchedPredictor`, whose requests are coalesced by
:class:`serving.batching.AdaptiveBatcher`) and keeps only what is its model's own: reading one V1 instance or its
V2 tensors into model inputs, predicting, its input tensors and its outputs. This module gives them:

* :meth:`Predictor.predict`: V1 ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out; V2 (Open Inference
  Protocol) tensors in, one output tensor of shape ``[N]`` per :meth:`Predictor.output_tensors` out; request
  counts (status ok, invalid or error) and latencies in :mod:`serving.metrics`;
* the request checks common to all: the V1 body and its ``instances``, the number of instances, the V2 tensor
  names, shapes, row counts and UTF-8. Bad input raises :class:`kserve.errors.InvalidInput` (HTTP 400) naming
  the field or the tensor.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import kserve
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from serving import metrics
from serving.batching import AdaptiveBatcher

NUMERIC_V2_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
CLASSIFICATION_OUTPUTS = [("label", "BYTES"), ("score", "FP32")]


@dataclass(frozen=True)
class ClassPrediction:
    label: str
    score: float
    scores: dict[str, float]

    @classmethod
    def best_of(cls, labels: Sequence[str], probabilities: list[float]) -> ClassPrediction:
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return cls(labels[best], probabilities[best], dict(zip(labels, probabilities)))


class Predictor(kserve.Model):
    """A KServe model speaking V1 and V2; subclasses read their inputs, predict and name their outputs."""

    max_instances: int
    instance_noun = "instance"  # how request size errors count: "text", "row", "point"
    v1_body_example = '{"instances": [{...}, ...]}'

    @abstractmethod
    def inputs_from_v1(self, payload: Any) -> list:
        """The model inputs of a V1 request body; raise InvalidInput naming the instance and field."""

    @abstractmethod
    def inputs_from_v2(self, request: InferRequest) -> list:
        """The model inputs of a V2 request; raise InvalidInput naming the tensor."""

    @abstractmethod
    async def infer(self, inputs: list) -> list:
        """One result per input, computed off the event loop."""

    @abstractmethod
    def output_tensors(self) -> list[tuple[str, str]]:
        """The V2 outputs, (name, datatype), each of shape [N]."""

    def output_values(self, name: str, results: list) -> list:
        return [getattr(result, name) for result in results]

    def v1_predictions(self, inputs: list, results: list) -> list[dict]:
        return [asdict(result) for result in results]

    def count_predictions(self, inputs: list, results: list) -> None:
        """Metrics of a successful request's predictions (batched predictors count theirs per batch)."""

    async def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        started = time.perf_counter()
        v2 = isinstance(payload, InferRequest)
        protocol = "v2" if v2 else "v1"
        try:
            inputs = self.inputs_from_v2(payload) if v2 else self.inputs_from_v1(payload)
            results = await self.infer(inputs)
            if v2:
                response = self._v2_response(payload, results)
            else:
                response = {"predictions": self.v1_predictions(inputs, results)}
        except InvalidInput:
            metrics.REQUESTS.labels(self.name, protocol, "invalid").inc()
            raise
        except Exception:
            metrics.REQUESTS.labels(self.name, protocol, "error").inc()
            raise
        metrics.REQUESTS.labels(self.name, protocol, "ok").inc()
        metrics.REQUEST_LATENCY.labels(self.name).observe(time.perf_counter() - started)
        self.count_predictions(inputs, results)
        return response

    def get_output_types(self) -> list[dict]:
        return [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in self.output_tensors()]

    def v1_instances(self, payload: Any) -> list:
        """The ``instances`` list of a V1 body (a dict, or JSON text when sent without a JSON content type)."""
        if isinstance(payload, (bytes, str)):
            try:
                payload = json.loads(payload)
            except ValueError as error:
                raise InvalidInput(f"request body is not valid JSON: {error}") from None
        if not isinstance(payload, dict):
            raise InvalidInput(f"request body must be a JSON object {self.v1_body_example}")
        if "instances" not in payload:
            raise InvalidInput(f"missing field 'instances'; got fields {sorted(payload)}")
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InvalidInput(f"'instances' must be a list, got {type_name(instances)}")
        self.check_count(len(instances), "'instances'")
        return instances

    def v2_tensors(
        self, request: InferRequest, names: list[str], *, missing_hint: str, unknown_hint: str
    ) -> dict[str, InferInput]:
        """The request's tensors by name: exactly ``names``; the hints end the errors for missing and unknown ones."""
        tensors = {tensor.name: tensor for tensor in request.inputs}
        missing = [name for name in names if name not in tensors]
        if missing:
            raise InvalidInput(f"missing input tensor(s) {missing}; {missing_hint}")
        unknown = [name for name in tensors if name not in names]
        if unknown:
            raise InvalidInput(f"unknown input tensor(s) {unknown}; {unknown_hint}")
        return tensors

    def v2_columns(
        self,
        tensors: dict[str, InferInput],
        names: list[str],
        *,
        check_datatype: Callable[[str, str, str], None],
        convert: Callable[[str, Any, str], Any],
        allow_column: bool = False,
    ) -> tuple[dict[str, list], int]:
        """Each named tensor's values, and the row count they share, tensor by tensor in the order of ``names``.

        ``check_datatype(name, datatype, where)`` refuses a tensor's datatype; ``convert(name, value, where)``
        checks and converts one value. A tensor has shape [N] (or [N, 1] with ``allow_column``).
        """
        columns: dict[str, list] = {}
        count = None
        for name in names:
            tensor, where = tensors[name], f"input '{name}'"
            check_datatype(name, tensor.datatype, where)
            shape = list(tensor.shape)
            if not (len(shape) == 1 or (allow_column and len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
                raise InvalidInput(f"{where} must have shape {'[N] or [N, 1]' if allow_column else '[N]'}, got {shape}")
            if count is None:
                count = shape[0]
                self.check_count(count, where)
            elif shape[0] != count:
                raise InvalidInput(f"{where} has {shape[0]} rows but input '{names[0]}' has {count}")
            try:
                values = tensor.as_numpy().reshape(-1).tolist()
            except ValueError as error:
                raise InvalidInput(f"{where} data does not match its shape {shape}: {error}") from None
            if len(values) != count:
                raise InvalidInput(f"{where} holds {len(values)} values for shape {shape}")
            columns[name] = [convert(name, value, f"{where}[{i}]") for i, value in enumerate(values)]
        return columns, count or 0

    def check_count(self, count: int, where: str) -> None:
        if count == 0:
            raise InvalidInput(f"{where} is empty; send at least one {self.instance_noun}")
        if count > self.max_instances:
            raise InvalidInput(f"{where} has {count} {self.instance_noun}s; at most {self.max_instances} per request")

    def _v2_response(self, request: InferRequest, results: list) -> InferResponse:
        count = [len(results)]
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[
                InferOutput(name, count, datatype, self.output_values(name, results))
                for name, datatype in self.output_tensors()
            ],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )


class BatchedPredictor(Predictor):
    """A predictor whose concurrent requests are coalesced into one call of ``predict_batch`` on a worker thread."""

    def __init__(
        self, name: str, predict_batch: Callable[[list], list], *, max_batch_size: int, max_batch_wait_ms: float
    ):
        super().__init__(name)
        self._predict_batch = predict_batch
        self.batcher: AdaptiveBatcher[Any, Any] = AdaptiveBatcher(
            self._run_batch, max_batch_size=max_batch_size, max_wait_ms=max_batch_wait_ms,
            thread_name=f"inference-{name}",
        )  # fmt: skip

    async def infer(self, inputs: list) -> list:
        return await self.batcher.submit(inputs)

    def stop(self) -> None:
        self.batcher.close()
        super().stop()

    def _run_batch(self, inputs: list) -> list:
        started = time.perf_counter()
        predictions = self._predict_batch(inputs)
        metrics.BATCH_LATENCY.labels(self.name).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.name).observe(len(inputs))
        metrics.PREDICTIONS.labels(self.name).inc(len(inputs))
        for prediction in predictions:
            if isinstance(prediction, ClassPrediction):
                metrics.PREDICTED_LABELS.labels(self.name, prediction.label).inc()
        return predictions


def decoded(value: Any, where: str) -> Any:
    """A V2 BYTES value as text; other values as they are."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where} is not valid UTF-8") from None
    return value


def v2_string(value: Any, where: str) -> str:
    value = decoded(value, where)
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string, got {type_name(value)}")
    return value


def type_name(value: Any) -> str:
    """A JSON value's type as errors name it."""
    return "null" if value is None else type(value).__name__
