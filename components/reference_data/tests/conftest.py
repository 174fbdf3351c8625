"""Fixtures: a real MLflow registry (an embedded SQLite store, and the tracking server of components/register's
tests), training splits as Parquet files, and a model directory to register."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.register.registry import ModelRegistry
from components.register.tests.conftest import mlflow_server, store_template  # noqa: F401 (fixtures used here)

MODEL_NAME = "ticket-classifier"


def write_split(path: Path, rows: int, seed: int) -> Path:
    """A small training split (Parquet) that differs from one seed to the next."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"text": [f"ticket {seed}-{i}" for i in range(rows)], "category": ["billing", "outage"] * (rows // 2)})
    frame.to_parquet(path)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text('{"family": "tabular", "task": "classification"}\n')
    return folder


@pytest.fixture
def embedded_uri(store_template: Path, tmp_path: Path) -> str:  # noqa: F811 (the imported fixture)
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(store_template, store / "mlflow.db")
    return f"sqlite:///{store / 'mlflow.db'}"


@pytest.fixture
def registry(embedded_uri: str) -> ModelRegistry:
    return ModelRegistry(embedded_uri)


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    """Where the component's output would be: a path in a folder of its own (so leftovers show)."""
    return tmp_path / "outputs" / "reference"
