"""Two tiny BERTs trained by `train` on a toy sentiment set (a perfect one and a weak one), and its test split."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from components.train.text_trainer import TrainConfig, train_text_classifier

POSITIVE = ["good", "great", "nice", "lovely", "excellent"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "horrible"]


def toy_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = ["pos" if index % 2 else "neg" for index in range(rows)]
    texts = [" ".join(rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=rng.randint(2, 6))) for label in labels]
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny BERT trained to classify the toy set perfectly, and one trained for one step at a tiny rate."""
    folder = tmp_path_factory.mktemp("models")
    toy_frame(48, seed=1).to_parquet(folder / "train.parquet")
    toy_frame(16, seed=2).to_parquet(folder / "eval.parquet")
    common = {"train_path": str(folder / "train.parquet"), "eval_path": str(folder / "eval.parquet")}
    common |= {"base_model": "tiny", "batch_size": 8, "warmup_ratio": 0.0, "max_length": 16, "num_threads": 1}
    strong = TrainConfig(model_dir=str(folder / "strong"), epochs=4, learning_rate=1e-2, **common)
    weak = TrainConfig(model_dir=str(folder / "weak"), max_steps=1, learning_rate=1e-7, **common)
    assert train_text_classifier(strong).metrics["eval_accuracy"] == 1.0
    assert train_text_classifier(weak).metrics["eval_accuracy"] <= 0.75
    return {"strong": strong.model_dir, "weak": weak.model_dir}


@pytest.fixture(scope="session")
def test_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("test") / "test.parquet"
    toy_frame(20, seed=3).to_parquet(path)
    return str(path)
