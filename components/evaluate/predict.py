"""Batch inference of a Hugging Face sequence-classification model directory (safetensors weights only)."""
# ruff: noqa: E402

from __future__ import annotations

import os

# huggingface_hub reads this once, when it is first imported: set it before transformers loads.
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


class ModelDirError(ValueError):
    """A model directory that is missing, incomplete, or has no usable label names."""


@dataclass(frozen=True)
class Classifier:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: tuple[str, ...]
    """Label names in class-id order (from the config's id2label)."""
    max_length: int
    """Tokens kept per text: the tokenizer's model_max_length, capped by the model's position embeddings."""
    device: torch.device


def load_classifier(model_dir: str | Path) -> Classifier:
    """The model (in eval mode, on CUDA when there is one), its tokenizer and its label names."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelDirError(f"{path} is not a Hugging Face model directory (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise ModelDirError(f"{path} has no .safetensors weights (other weight formats are not loaded)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    id2label = model.config.id2label
    if sorted(id2label) != list(range(model.config.num_labels)):
        raise ModelDirError(f"{path / 'config.json'} id2label does not name classes 0..{model.config.num_labels - 1}")
    labels = tuple(str(id2label[index]) for index in range(model.config.num_labels))
    max_length = min(
        tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", tokenizer.model_max_length)
    )
    return Classifier(model.to(device).eval(), tokenizer, labels, max_length, device)


@torch.inference_mode()
def predict_probabilities(classifier: Classifier, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Class probabilities (softmax, float32) of each text: one row per text in input order, columns in label order.

    Texts are batched by length so each padded batch wastes little; each is truncated to
    ``classifier.max_length`` tokens (the train component saves its ``max_length`` as the tokenizer's).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    batch_probabilities: list[torch.Tensor] = []
    on_cuda = classifier.device.type == "cuda"
    autocast = torch.autocast(device_type=classifier.device.type, dtype=torch.bfloat16, enabled=on_cuda)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        encoded = classifier.tokenizer(
            [texts[index] for index in batch],
            padding="longest",
            truncation=True,
            max_length=classifier.max_length,
            return_tensors="pt",
        ).to(classifier.device)
        with autocast:
            logits = classifier.model(**encoded).logits
        batch_probabilities.append(logits.float().softmax(dim=-1))
    probabilities = np.zeros((len(texts), len(classifier.labels)), dtype=np.float32)
    if batch_probabilities:
        probabilities[order] = torch.cat(batch_probabilities).cpu().numpy()  # one device sync, at the end
    return probabilities
