import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.anomaly.demo import demo_host_metrics
from components.anomaly.metrics import best_f1_threshold, event_metrics, events, quantile_threshold
from components.anomaly.model import AnomalyModel, AnomalyModelError, HostCache
from components.anomaly.scoring import score_anomaly_model
from components.train_anomaly.trainer import train_anomaly_model

ROBUST = json.dumps({"window": 144, "min_history": 60, "memory": 288})
DAY = 288


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    """Four days of three hosts, split by time: 2.5 days train, then 0.75 eval, 0.75 test."""
    data = demo_host_metrics(hosts=3, steps=4 * DAY, anomalies_per_series=3, seed=5)
    stamps = np.sort(data["timestamp"].unique())
    cut_eval, cut_test = stamps[int(2.5 * DAY)], stamps[int(3.25 * DAY)]
    folder = tmp_path_factory.mktemp("splits")
    parts = {"train": data[data["timestamp"] < cut_eval], "eval": data[(data["timestamp"] >= cut_eval) & (data["timestamp"] < cut_test)],
             "test": data[data["timestamp"] >= cut_test], "all": data}  # fmt: skip
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.parquet"
        part.to_parquet(paths[name])
    return paths


@pytest.fixture(scope="module")
def robust_model(splits, tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("robust") / "model"
    train_anomaly_model(str(splits["train"]), str(splits["eval"]), str(model_dir), detector="robust", hyperparameters=ROBUST)
    return model_dir


def test_model_directory_is_safe_and_checksummed(robust_model):
    manifest = json.loads((robust_model / "model.json").read_text())
    assert manifest["family"] == "anomaly" and manifest["detector"]["kind"] == "robust"
    assert manifest["detector"]["parameters"]["window"] == 144
    assert 0.5 <= manifest["threshold"] < 1
    assert manifest["columns"] == {"timestamp": "timestamp", "host": "host", "metrics": ["cpu", "latency_ms", "error_rate"]}
    assert sorted(p.name for p in robust_model.iterdir()) == ["model.json", "state.json"]
    assert set(manifest["files"]) == {"state.json"}


def test_tampered_state_is_refused(robust_model, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for path in robust_model.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    state = json.loads((copy / "state.json").read_text())
    state["hosts"]["host-0"]["metrics"]["cpu"]["context"][0] += 1.0
    (copy / "state.json").write_text(json.dumps(state))
    with pytest.raises(AnomalyModelError, match="state.json does not match its sha256"):
        AnomalyModel.load(copy)


def test_scoring_continues_where_training_left_off(robust_model, splits):
    """Test rows scored by the saved model equal the same rows scored as part of the whole history."""
    model = AnomalyModel.load(robust_model)
    test = pd.read_parquet(splits["test"])
    scored = model.score_frame(test)
    fresh = AnomalyModel(model.spec, model.threshold, "timestamp", "host", model.metrics, streams={})
    whole = fresh.score_frame(pd.read_parquet(splits["all"]))
    in_test = whole.rows["timestamp"] >= test["timestamp"].min()
    np.testing.assert_allclose(scored.score, whole.score[in_test.to_numpy()], rtol=1e-12, atol=1e-12)
    assert model.score_frame(test).score.tolist() == scored.score.tolist()  # scoring leaves the model as it was


def test_learned_model_saves_forests_as_skops(splits, tmp_path):
    model_dir = tmp_path / "forest"
    train_anomaly_model(str(splits["train"]), str(splits["eval"]), str(model_dir), detector="isolation_forest",
                        hyperparameters='{"trees": 20, "memory": 288}')  # fmt: skip
    manifest = json.loads((model_dir / "model.json").read_text())
    assert sorted(manifest["files"]) == ["forests/0.skops", *(f"forests/{i}.skops" for i in range(1, 9)), "state.json"]
    model = AnomalyModel.load(model_dir)
    with pytest.raises(AnomalyModelError, match="host 'host-9' has no trained isolation_forest detector"):
        model.stream_for("host-9")
    assert model.score_frame(pd.read_parquet(splits["test"])).score.max() > 0.5


def test_host_cache_drops_the_least_recently_used(robust_model):
    model = AnomalyModel.load(robust_model)
    cache = HostCache(model, max_hosts=2)
    trained_last = model.streams["host-0"].last_timestamp
    assert cache.get("host-0").last_timestamp == trained_last  # first use: continues from training
    cache.get("host-1")
    cache.get("host-0")  # host-1 is now the least recently used
    cache.get("new-host")
    assert "host-1" not in cache and "host-0" in cache and len(cache) == 2 and cache.evicted == 1
    assert cache.get("host-1").last_timestamp is None  # dropped once: starts again with no history
    assert cache.was_resumed("host-1") and not cache.was_resumed("new-host")


def test_bad_rows_are_named(robust_model, splits):
    model = AnomalyModel.load(robust_model)
    test = pd.read_parquet(splits["test"])
    broken = test.copy()
    broken.loc[broken.index[4], "cpu"] = np.nan
    with pytest.raises(AnomalyModelError, match="column 'cpu', row 4"):
        model.score_frame(broken, "test")
    with pytest.raises(AnomalyModelError, match=r"missing column\(s\) \['latency_ms'\]"):
        model.score_frame(test.drop(columns="latency_ms"), "test")
    with pytest.raises(AnomalyModelError, match="host 'host-1' has more than one row at"):
        model.score_frame(pd.concat([test, test[test["host"] == "host-1"].head(1)]), "test")


def test_event_metrics_count_events_and_alerts():
    labels = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    scores = np.array([0, 0, 0.9, 0, 0, 0, 0, 0.8, 0, 0])
    assert events(labels) == [(1, 2), (5, 5)]
    metrics = event_metrics([(labels, scores)], 0.7)
    assert (metrics["events"], metrics["detected_events"], metrics["alerts"], metrics["false_alerts"]) == (2, 1, 2, 1)
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["f1"] == 0.5
    assert event_metrics([(labels, scores)], 0.95)["f1"] == 0.0


def test_best_threshold_sits_between_scores():
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.0, 0.55, 0.0, 0.9, 0.0, 0.7, 0.0, 0.6])
    threshold, f1 = best_f1_threshold([(labels, scores)])
    assert f1 == 1.0 and threshold == pytest.approx((0.9 + 0.7) / 2)
    assert best_f1_threshold([(np.zeros(8), scores)]) is None
    assert best_f1_threshold([(labels, np.where(labels == 1, 0.0, scores))]) is None  # nothing detects the event
    assert quantile_threshold(np.linspace(0, 0.6, 101), 0.5) == 0.5 and quantile_threshold(np.linspace(0, 1, 101), 0.9) == pytest.approx(0.9)


def test_score_anomaly_model_for_the_gate(robust_model, splits, tmp_path):
    metrics = score_anomaly_model(str(robust_model), str(splits["test"]), "anomaly")
    assert {"precision", "recall", "f1", "nab_standard", "test_rows"} <= set(metrics)
    assert metrics["events"] >= 1 and metrics["test_rows"] == len(pd.read_parquet(splits["test"]))
    bad = pd.read_parquet(splits["test"])
    bad["anomaly"] = bad["anomaly"].astype(str)
    bad.loc[bad.index[7], "anomaly"] = "maybe"
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(AnomalyModelError, match="column 'anomaly', row 7: 'maybe' is not 0/1"):
        score_anomaly_model(str(robust_model), str(tmp_path / "bad.parquet"), "anomaly")
    quiet = pd.read_parquet(splits["test"]).assign(anomaly=0)
    quiet.to_parquet(tmp_path / "quiet.parquet")
    with pytest.raises(AnomalyModelError, match="marks no anomaly"):
        score_anomaly_model(str(robust_model), str(tmp_path / "quiet.parquet"), "anomaly")
