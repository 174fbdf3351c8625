import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from kfp_mlops import demo_tasks


def _split(frame: pd.DataFrame, directory, suffix: str):
    """Seeded 75/25 split written as Parquet or CSV; returns (train path, eval path)."""
    order = np.random.default_rng(0).permutation(len(frame))
    cut = int(len(frame) * 0.75)
    paths = []
    for name, rows in (("train", order[:cut]), ("eval", order[cut:])):
        path = directory / f"{name}.{suffix}"
        part = frame.iloc[rows].reset_index(drop=True)
        part.to_parquet(path) if suffix == "parquet" else part.to_csv(path, index=False)
        paths.append(path)
    return tuple(paths)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo_tasks")
    return (
        demo_tasks.write(directory / "train.csv", rows=700, seed=11),
        demo_tasks.write(directory / "eval.csv", rows=300, seed=12),
    )


@pytest.fixture(scope="session")
def breast_cancer_files(tmp_path_factory):
    """scikit-learn's copy of the Wisconsin breast cancer data (569 rows, 30 numeric features): no download."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    return _split(frame, tmp_path_factory.mktemp("breast_cancer"), "parquet")


@pytest.fixture(scope="session")
def diabetes_files(tmp_path_factory):
    """scikit-learn's diabetes progression data (442 rows, 10 features, unscaled): no download."""
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})  # a categorical column for the one-hot path
    return _split(frame, tmp_path_factory.mktemp("diabetes"), "csv")
