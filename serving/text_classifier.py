"""KServe model that classifies short texts with a fine-tuned Hugging Face sequence classifier.

The model directory is the one the train component writes: ``config.json`` (with ``id2label``),
``model.safetensors``, tokenizer files and, optionally, ``label_map.json`` ({"labels": [...]}).

Protocols (routing, health and metadata come from KServe):

* V1: ``POST /v1/models/NAME:predict`` with ``{"instances": ["text", ...]}`` or
  ``{"instances": [{"text": "..."}, ...]}`` returns
  ``{"predictions": [{"label": "...", "score": 0.93, "scores": {"label": p, ...}}, ...]}``.
* V2 (Open Inference Protocol): ``POST /v2/models/NAME/infer`` with one BYTES input ``text`` of shape
  ``[N]`` returns the outputs ``label`` (BYTES ``[N]``) and ``score`` (FP32 ``[N]``).

Concurrent requests are coalesced into one forward pass by :class:`serving.batching.AdaptiveBatcher`
(``max_batch_size`` texts, ``max_batch_wait_ms``), run on a worker thread under ``torch.inference_mode``.
Request counts, latencies and batch sizes go to the Prometheus metrics of :mod:`serving.metrics`.

Bad input raises :class:`kserve.errors.InvalidInput`, which KServe answers with HTTP 400.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kserve
import torch
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from serving import metrics
from serving.batching import AdaptiveBatcher

TEXT_INPUT = "text"
LABEL_OUTPUT = "label"
SCORE_OUTPUT = "score"
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_TEXT_CHARS = 10_000
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_WAIT_MS = 0.0


class ModelLoadError(ValueError):
    """The model directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class TextPrediction:
    label: str
    score: float
    scores: dict[str, float]


class TextClassifier(kserve.Model):
    """Serves an ``AutoModelForSequenceClassification`` directory over KServe's V1 and V2 protocols."""

    def __init__(
        self,
        name: str,
        model_dir: str,
        *,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_wait_ms: float = DEFAULT_MAX_BATCH_WAIT_MS,
        device: str | None = None,
    ):
        super().__init__(name)
        if max_instances < 1 or max_text_chars < 1:
            raise ValueError("max_instances and max_text_chars must be at least 1")
        self.model_dir = model_dir
        self.max_instances = max_instances
        self.max_text_chars = max_text_chars
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.labels: list[str] = []
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed"). Served
        # requests reach the model only through the batcher's single worker thread; the lock covers direct
        # callers of classify().
        self._lock = threading.Lock()
        self.batcher: AdaptiveBatcher[str, TextPrediction] = AdaptiveBatcher(
            self._classify_batch, max_batch_size=max_batch_size, max_wait_ms=max_batch_wait_ms,
            thread_name=f"inference-{name}",
        )  # fmt: skip

    def load(self) -> bool:
        model_dir = local_model_dir(self.model_dir)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the model in {model_dir}: {error}") from error
        self._model = model.to(self.device).eval()
        self.labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
        _check_label_map(model_dir, self.labels)
        self._max_tokens = min(
            self._tokenizer.model_max_length,
            getattr(model.config, "max_position_embeddings", self._tokenizer.model_max_length),
        )
        self.ready = True
        return self.ready

    def classify(self, texts: list[str]) -> list[TextPrediction]:
        """Label each text; blocking, so the server calls it off the event loop."""
        with self._lock, torch.inference_mode():
            encoded = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
            ).to(self.device)
            probabilities = self._model(**encoded).logits.float().softmax(dim=-1).cpu()
        predictions = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            predictions.append(TextPrediction(self.labels[best], row[best], dict(zip(self.labels, row))))
        return predictions

    async def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        started = time.perf_counter()
        protocol = "v2" if isinstance(payload, InferRequest) else "v1"
        try:
            if isinstance(payload, InferRequest):
                predictions = await self.batcher.submit(self._texts_from_v2(payload))
                response = self._v2_response(payload, predictions)
            else:
                predictions = await self.batcher.submit(self._texts_from_v1(payload))
                response = {"predictions": [asdict(prediction) for prediction in predictions]}
        except InvalidInput:
            metrics.REQUESTS.labels(self.name, protocol, "invalid").inc()
            raise
        except Exception:
            metrics.REQUESTS.labels(self.name, protocol, "error").inc()
            raise
        metrics.REQUESTS.labels(self.name, protocol, "ok").inc()
        metrics.REQUEST_LATENCY.labels(self.name).observe(time.perf_counter() - started)
        return response

    def stop(self) -> None:
        self.batcher.close()
        super().stop()

    def _classify_batch(self, texts: list[str]) -> list[TextPrediction]:
        started = time.perf_counter()
        predictions = self.classify(texts)
        metrics.BATCH_LATENCY.labels(self.name).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.name).observe(len(texts))
        metrics.PREDICTIONS.labels(self.name).inc(len(texts))
        for prediction in predictions:
            metrics.PREDICTED_LABELS.labels(self.name, prediction.label).inc()
        return predictions

    def get_input_types(self) -> list[dict]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": SCORE_OUTPUT, "datatype": "FP32", "shape": [-1]},
        ]

    def _texts_from_v1(self, payload: Any) -> list[str]:
        if isinstance(payload, (bytes, str)):  # a body sent without a JSON content type
            try:
                payload = json.loads(payload)
            except ValueError as error:
                raise InvalidInput(f"request body is not valid JSON: {error}") from None
        if not isinstance(payload, dict):
            raise InvalidInput('request body must be a JSON object {"instances": [...]}')
        if "instances" not in payload:
            raise InvalidInput(f"missing field 'instances'; got fields {sorted(payload)}")
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InvalidInput(f"'instances' must be a list, got {_type_name(instances)}")
        self._check_count(len(instances), "'instances'")
        texts = []
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            if isinstance(instance, dict):
                if "text" not in instance:
                    raise InvalidInput(f"{where} has no 'text' field; got fields {sorted(instance)}")
                instance, where = instance["text"], f"{where}.text"
            if not isinstance(instance, str):
                raise InvalidInput(f"{where} must be a string, got {_type_name(instance)}")
            self._check_text(instance, where)
            texts.append(instance)
        return texts

    def _texts_from_v2(self, request: InferRequest) -> list[str]:
        names = [tensor.name for tensor in request.inputs]
        if TEXT_INPUT not in names:
            raise InvalidInput(f"missing input tensor '{TEXT_INPUT}' (BYTES, shape [N]); got inputs {names}")
        if len(names) > 1:
            raise InvalidInput(f"this model takes one input tensor '{TEXT_INPUT}'; got inputs {names}")
        tensor = request.inputs[0]
        where = f"input '{TEXT_INPUT}'"
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"{where} must have datatype BYTES, got {tensor.datatype}")
        if len(tensor.shape) != 1 or tensor.shape[0] < 0:
            raise InvalidInput(f"{where} must have shape [N], got {tensor.shape}")
        self._check_count(tensor.shape[0], where)
        try:
            values = tensor.as_numpy().tolist()
        except ValueError as error:
            raise InvalidInput(f"{where} data does not match its shape {tensor.shape}: {error}") from None
        texts = []
        for index, value in enumerate(values):
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidInput(f"{where}[{index}] is not valid UTF-8") from None
            if not isinstance(value, str):
                raise InvalidInput(f"{where}[{index}] must be a string, got {_type_name(value)}")
            self._check_text(value, f"{where}[{index}]")
            texts.append(value)
        return texts

    def _v2_response(self, request: InferRequest, predictions: list[TextPrediction]) -> InferResponse:
        count = [len(predictions)]
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[
                InferOutput(LABEL_OUTPUT, count, "BYTES", [p.label for p in predictions]),
                InferOutput(SCORE_OUTPUT, count, "FP32", [p.score for p in predictions]),
            ],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _check_count(self, count: int, where: str) -> None:
        if count == 0:
            raise InvalidInput(f"{where} is empty; send at least one text")
        if count > self.max_instances:
            raise InvalidInput(f"{where} has {count} texts; at most {self.max_instances} per request")

    def _check_text(self, text: str, where: str) -> None:
        if not text.strip():
            raise InvalidInput(f"{where} is blank")
        if len(text) > self.max_text_chars:
            raise InvalidInput(f"{where} has {len(text)} characters; at most {self.max_text_chars}")


def local_model_dir(uri: str) -> Path:
    """The local model directory named by ``uri``, checked to hold a ``config.json``."""
    scheme = urlparse(uri).scheme
    if scheme:
        raise ModelLoadError(
            f"cannot load the model from {uri!r}: only local directories are supported, not {scheme}:// URIs"
        )
    model_dir = Path(uri)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(
            f"{model_dir / 'config.json'} is missing: {model_dir} is not a Hugging Face model directory"
        )
    return model_dir


def _check_label_map(model_dir: Path, labels: list[str]) -> None:
    label_map_path = model_dir / "label_map.json"
    if not label_map_path.is_file():
        return
    try:
        expected = json.loads(label_map_path.read_text())["labels"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f'{label_map_path} must be a JSON object {{"labels": [...]}}: {error!r}') from error
    if expected != labels:
        raise ModelLoadError(f"{label_map_path} lists labels {expected}, but config.json's id2label gives {labels}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
