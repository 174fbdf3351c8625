import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from components.anomaly.demo import demo_host_metrics
from components.anomaly.model import AnomalyModel
from components.train_anomaly.trainer import TrainAnomalyError, train_anomaly_model

DAY = 288
SMALL_ENSEMBLE = json.dumps({"window": 144, "min_history": 60, "history": 300, "knn_widths": [6, 24], "memory": 288})


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    """Four days of two hosts: three days train, one day eval, as ingest's time split writes them."""
    data = demo_host_metrics(hosts=2, steps=4 * DAY, anomalies_per_series=3, seed=2)
    cut = np.sort(data["timestamp"].unique())[3 * DAY]
    folder = tmp_path_factory.mktemp("splits")
    paths = {"train": folder / "train.parquet", "eval": folder / "eval.parquet"}
    data[data["timestamp"] < cut].to_parquet(paths["train"])
    data[data["timestamp"] >= cut].to_parquet(paths["eval"])
    return paths


def train(splits, model_dir, **settings):
    return train_anomaly_model(str(splits["train"]), str(splits["eval"]), str(model_dir), **settings)


def test_ensemble_threshold_from_eval_f1(splits, tmp_path):
    result = train(splits, tmp_path / "model", detector="ensemble", hyperparameters=SMALL_ENSEMBLE)
    metrics = result.metrics
    assert metrics["events"] >= 2 and 0 < metrics["f1"] <= 1 and metrics["threshold"] >= 0.5
    assert (metrics["hosts"], metrics["series"], metrics["train_rows"], metrics["eval_rows"]) == (2, 6, 2 * 3 * DAY, 2 * DAY)
    assert result.model_metadata["detector"] == "ensemble" and result.model_metadata["metrics"] == ["cpu", "latency_ms", "error_rate"]
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["threshold_method"] == "eval_f1" and manifest["eval_metrics"]["f1"] == metrics["f1"]
    model = AnomalyModel.load(tmp_path / "model")
    eval_rows = pd.read_parquet(splits["eval"])
    assert model.streams["host-1"].last_timestamp == eval_rows["timestamp"].max()  # streams stand after eval


def test_quantile_threshold_and_no_labels(splits, tmp_path):
    result = train(splits, tmp_path / "q", detector="zscore", label_column="", threshold_method="quantile",
                   threshold_quantile=0.99, hyperparameters='{"window": 144, "min_history": 60}')  # fmt: skip
    assert "f1" not in result.metrics and result.metrics["threshold"] >= 0.5
    assert json.loads((tmp_path / "q" / "model.json").read_text())["threshold_method"] == "quantile 0.99"


def test_autoencoder_weights_are_safetensors(splits, tmp_path):
    train(splits, tmp_path / "ae", detector="autoencoder", hyperparameters='{"epochs": 30, "memory": 288}')
    tensors = load_file(str(tmp_path / "ae" / "autoencoder.safetensors"))
    assert {name.split(".")[0] for name in tensors} == {f"s{i}" for i in range(6)}
    assert not list((tmp_path / "ae").rglob("*.pkl")) and not list((tmp_path / "ae").rglob("*.pt"))


def test_bad_settings_and_data_are_named(splits, tmp_path):
    with pytest.raises(TrainAnomalyError, match="detector must be one of"):
        train(splits, tmp_path / "a", detector="lstm")
    with pytest.raises(TrainAnomalyError, match="hyperparameters is not JSON"):
        train(splits, tmp_path / "b", hyperparameters="{window: 3}")
    with pytest.raises(TrainAnomalyError, match="threshold_method must be one of"):
        train(splits, tmp_path / "c", threshold_method="best")
    with pytest.raises(TrainAnomalyError, match="no label column 'incident'"):
        train(splits, tmp_path / "d", detector="zscore", label_column="incident")
    broken = pd.read_parquet(splits["train"])
    broken.loc[broken.index[9], "latency_ms"] = np.inf
    broken.to_parquet(tmp_path / "broken.parquet")
    with pytest.raises(TrainAnomalyError, match="column 'latency_ms', row 9"):
        train_anomaly_model(str(tmp_path / "broken.parquet"), str(splits["eval"]), str(tmp_path / "e"), detector="zscore")
    with pytest.raises(TrainAnomalyError, match=r"missing column\(s\) \['disk'\]"):
        train(splits, tmp_path / "f", detector="zscore", metric_columns=["cpu", "disk"])
    assert not [p.name for p in tmp_path.iterdir() if p.name in "abcdef" or p.name.endswith(".partial")]
