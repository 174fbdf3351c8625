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
(``max_batch_size`` texts, ``max_batch_wait_ms``), run on a worker thread under ``torch.inference_mode``;
on CPU the forward pass is a frozen TorchScript graph checked against the eager model
(:mod:`serving.torchscript`).
Request counts, latencies and batch sizes go to the Prometheus metrics of :mod:`serving.metrics`.

Bad input raises :class:`kserve.errors.InvalidInput`, which KServe answers with HTTP 400.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from serving.predictor_base import CLASSIFICATION_OUTPUTS, BatchedPredictor, ClassPrediction, type_name, v2_string
from serving.torchscript import eager_forward, traced_forward

TEXT_INPUT = "text"
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_TEXT_CHARS = 10_000
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_WAIT_MS = 0.0


class ModelLoadError(ValueError):
    """The model directory is missing, incomplete or inconsistent."""


class TextClassifier(BatchedPredictor):
    """Serves an ``AutoModelForSequenceClassification`` directory over KServe's V1 and V2 protocols."""

    instance_noun = "text"
    v1_body_example = '{"instances": [...]}'

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
        torchscript: bool = True,
    ):
        if max_instances < 1 or max_text_chars < 1:
            raise ValueError("max_instances and max_text_chars must be at least 1")
        super().__init__(name, self.classify, max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms)
        self.model_dir = model_dir
        self.max_instances = max_instances
        self.max_text_chars = max_text_chars
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.torchscript = torchscript
        self.traced = False
        self.labels: list[str] = []
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed"). Served
        # requests reach the model only through the batcher's single worker thread; the lock covers direct
        # callers of classify().
        self._lock = threading.Lock()

    def load(self) -> bool:
        model_dir = local_model_dir(self.model_dir)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"cannot load the model in {model_dir}: {error}") from error
        model = model.to(self.device).eval()
        self.labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
        _check_label_map(model_dir, self.labels)
        self._max_tokens = min(
            self._tokenizer.model_max_length,
            getattr(model.config, "max_position_embeddings", self._tokenizer.model_max_length),
        )
        traced = None
        if self.torchscript and self.device.type == "cpu":
            traced = traced_forward(model, self._tokenizer, self._max_tokens)
        self.traced = traced is not None
        self._forward = traced or eager_forward(model)
        self.ready = True
        return self.ready

    def classify(self, texts: list[str]) -> list[ClassPrediction]:
        """Label each text; blocking, so the server calls it off the event loop."""
        with self._lock, torch.inference_mode():
            encoded = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
            ).to(self.device)
            probabilities = self._forward(dict(encoded)).float().softmax(dim=-1).cpu()
        return [ClassPrediction.best_of(self.labels, row) for row in probabilities.tolist()]

    def get_input_types(self) -> list[dict]:
        return [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def output_tensors(self) -> list[tuple[str, str]]:
        return CLASSIFICATION_OUTPUTS

    def inputs_from_v1(self, payload: Any) -> list[str]:
        texts = []
        for index, instance in enumerate(self.v1_instances(payload)):
            where = f"instances[{index}]"
            if isinstance(instance, dict):
                if "text" not in instance:
                    raise InvalidInput(f"{where} has no 'text' field; got fields {sorted(instance)}")
                instance, where = instance["text"], f"{where}.text"
            if not isinstance(instance, str):
                raise InvalidInput(f"{where} must be a string, got {type_name(instance)}")
            self._check_text(instance, where)
            texts.append(instance)
        return texts

    def inputs_from_v2(self, request: InferRequest) -> list[str]:
        names = [tensor.name for tensor in request.inputs]
        if TEXT_INPUT not in names:
            raise InvalidInput(f"missing input tensor '{TEXT_INPUT}' (BYTES, shape [N]); got inputs {names}")
        if len(names) > 1:
            raise InvalidInput(f"this model takes one input tensor '{TEXT_INPUT}'; got inputs {names}")
        columns, _ = self.v2_columns(
            {TEXT_INPUT: request.inputs[0]}, [TEXT_INPUT], check_datatype=_check_bytes, convert=self._v2_text
        )
        return columns[TEXT_INPUT]

    def _v2_text(self, name: str, value: Any, where: str) -> str:
        text = v2_string(value, where)
        self._check_text(text, where)
        return text

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


def _check_bytes(name: str, datatype: str, where: str) -> None:
    if datatype != "BYTES":
        raise InvalidInput(f"{where} must have datatype BYTES, got {datatype}")
