"""A tiny separable text set (positive and negative words, two labels) as Parquet train and eval splits."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

POSITIVE = ["good", "great", "nice", "lovely", "excellent"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "horrible"]


def toy_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = ["pos" if index % 2 else "neg" for index in range(rows)]
    texts = [" ".join(rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=rng.randint(2, 5))) for label in labels]
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(scope="session")
def toy_splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy")
    train_path, eval_path = folder / "train.parquet", folder / "eval.parquet"
    toy_frame(32, seed=1).to_parquet(train_path)
    toy_frame(12, seed=2).to_parquet(eval_path)
    return train_path, eval_path
