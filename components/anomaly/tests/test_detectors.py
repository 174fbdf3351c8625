import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.anomaly.demo import demo_metrics
from components.anomaly.detectors import (
    DETECTORS,
    DetectorError,
    StreamingScorer,
    autoencoder_scores,
    isolation_forest_scores,
    relative_to_recent_max,
    robust_scores,
)

SMALL = {
    "zscore": {"window": 288, "memory": 288},
    "robust": {"window": 288, "memory": 288},
    "isolation_forest": {"memory": 288},
    "autoencoder": {"epochs": 100, "memory": 288},
}


@pytest.fixture(scope="module")
def demo():
    return demo_metrics(hosts=2, days=6, anomalies_per_series=3, seed=1)


def test_demo_is_seeded_and_labelled(demo):
    again = demo_metrics(hosts=2, days=6, anomalies_per_series=3, seed=1)
    assert demo.equals(again)
    assert set(demo["metric"]) == {"cpu", "latency_ms", "error_rate"}
    per_series = demo.groupby(["host", "metric"])["anomaly"].sum()
    assert (per_series > 0).all()
    assert set(demo.loc[demo["anomaly"] == 1, "kind"]) <= {"spike", "level_shift", "drift"}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_ranks_injected_anomalies_above_chance(demo, name):
    scores, labels = [], []
    for _, one in demo.groupby(["host", "metric"]):
        series_scores = DETECTORS[name](one["value"].to_numpy(), **SMALL[name])
        assert series_scores.shape == (len(one),) and np.all((series_scores >= 0) & (series_scores <= 1))
        scores.append(series_scores)
        labels.append(one["anomaly"].to_numpy())
    auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))  # chance is 0.5
    assert auc > 0.6, f"{name}: ROC AUC {auc:.3f}"


def test_streaming_scorer_equals_batch_per_host(demo):
    scorer = StreamingScorer(window=100, memory=200)
    streamed = {host: [] for host in demo["host"].unique()}
    cpu = demo[demo["metric"] == "cpu"].sort_values(["timestamp", "host"])  # hosts interleaved, as they arrive
    for host, timestamp, value in cpu[["host", "timestamp", "value"]].itertuples(index=False):
        streamed[host].append(scorer.update(host, timestamp, value))
    assert scorer.hosts == sorted(streamed)
    for host, scores in streamed.items():
        batch = robust_scores(cpu.loc[cpu["host"] == host, "value"].to_numpy(), window=100, memory=200)
        np.testing.assert_allclose(scores, batch, rtol=1e-12, atol=1e-12)
        assert max(scores) > 0.5


def test_streaming_scorer_memory_is_bounded():
    scorer = StreamingScorer(window=10, memory=20)
    for minute in range(500):
        scorer.update("a", minute, float(minute % 7))
    state = scorer._hosts["a"]
    assert len(state.values) == 10 and len(state.recent_surprise) == 20


def test_streaming_scorer_rejects_bad_points():
    scorer = StreamingScorer(window=5, memory=5)
    scorer.update("a", 10, 1.0)
    with pytest.raises(DetectorError, match="host 'a': timestamp 9 is before 10"):
        scorer.update("a", 9, 1.0)
    with pytest.raises(DetectorError, match="host 'b' at 11: value nan is not finite"):
        scorer.update("b", 11, float("nan"))


def test_bad_series_names_the_row():
    values = np.ones(50)
    values[17] = np.nan
    with pytest.raises(DetectorError, match="row 17"):
        robust_scores(values)


def test_relative_to_recent_max_alerts_once_per_lasting_anomaly():
    surprise = np.array([1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 1.0])
    scores = relative_to_recent_max(surprise, memory=4)  # needs 4 // 4 = 1 known surprise before
    assert scores[3] == pytest.approx(0.9)  # 9 / 1 -> 9 / 10
    assert scores[4] == pytest.approx(0.5) and scores[5] == pytest.approx(0.5)
    assert scores[0] == 0.0
    warm_up = relative_to_recent_max(np.array([np.nan, np.nan, 5.0, 1.0]), memory=4)
    assert list(warm_up) == [0.0, 0.0, 0.0, pytest.approx(1 / 6)]


def test_learned_detectors_are_seeded():
    values = np.sin(np.arange(600) / 10) + np.random.default_rng(0).normal(0, 0.1, 600)
    np.testing.assert_array_equal(isolation_forest_scores(values, seed=4), isolation_forest_scores(values, seed=4))
    np.testing.assert_array_equal(autoencoder_scores(values, epochs=20), autoencoder_scores(values, epochs=20))
