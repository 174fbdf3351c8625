"""Builds a tiny random-init BERT text classifier directory, laid out like the train component's output."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

LABELS = ["card_declined", "lost_card", "balance_inquiry"]
WORDS = "my card payment was declined twice i lost what is balance the account".split()


def build_tiny_text_classifier(model_dir: Path, labels: list[str] = LABELS, seed: int = 0) -> Path:
    """Write config.json, model.safetensors, tokenizer files, vocab.txt and label_map.json to ``model_dir``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    vocab_path = model_dir / "vocab.txt"
    vocab_path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    # transformers 5 takes the WordPiece file as `vocab`; `vocab_file` is silently ignored there.
    tokenizer = BertTokenizerFast(vocab=str(vocab_path), model_max_length=64)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "label_map.json").write_text(json.dumps({"labels": labels}))
    return model_dir
