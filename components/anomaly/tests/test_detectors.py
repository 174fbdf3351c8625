import json
import math

import numpy as np
import pytest

from components.anomaly.demo import demo_host_metrics, demo_metrics
from components.anomaly.detectors import DETECTORS, DetectorError, detector_scores
from components.anomaly.learned import fit_window_model
from components.anomaly.metrics import best_f1_threshold, event_metrics
from components.anomaly.scorer import KINDS, DetectorSpec, SeriesScorer, SlidingMax

# small settings so that two-day series exercise every stage
SMALL = {
    "zscore": {"window": 144, "min_history": 60, "memory": 288},
    "robust": {"window": 144, "min_history": 60, "memory": 288},
    "isolation_forest": {"memory": 288, "trees": 50},
    "autoencoder": {"epochs": 60, "memory": 288},
    "ensemble": {"window": 144, "min_history": 60, "history": 300, "knn_widths": [6, 24], "memory": 288},
}


@pytest.fixture(scope="module")
def demo():
    return demo_metrics(hosts=2, steps=6 * 288, anomalies_per_series=3, seed=1)


def test_demo_is_seeded_and_labelled(demo):
    again = demo_metrics(hosts=2, steps=6 * 288, anomalies_per_series=3, seed=1)
    assert demo.equals(again)
    assert set(demo["metric"]) == {"cpu", "latency_ms", "error_rate"}
    assert (demo.groupby(["host", "metric"])["anomaly"].sum() > 0).all()
    assert set(demo.loc[demo["anomaly"] == 1, "kind"]) <= {"spike", "level_shift", "drift"}
    wide = demo_host_metrics(hosts=2, steps=2 * 288, anomalies_per_series=1, seed=3)
    assert list(wide.columns) == ["timestamp", "host", "cpu", "latency_ms", "error_rate", "anomaly"]
    assert len(wide) == 2 * 2 * 288 and str(wide["timestamp"].dt.tz) == "UTC"


@pytest.mark.parametrize("name", KINDS)
def test_detector_finds_injected_anomalies(demo, name):
    groups = []
    for _, one in demo.groupby(["host", "metric"]):
        series_scores = DETECTORS[name](one["value"].to_numpy(), train_fraction=0.3, **SMALL[name])
        assert series_scores.shape == (len(one),) and np.all((series_scores >= 0) & (series_scores < 1))
        groups.append((one["anomaly"].to_numpy(), series_scores))
    threshold, f1 = best_f1_threshold(groups)
    quality = event_metrics(groups, threshold)
    # NAB-style: 0 is "never alert"; alerting at random scores below it (false alerts cost, misses too)
    assert quality["nab_standard"] > 10 and f1 > 0.2, f"{name}: {quality}"


def _scorer(name: str, values: np.ndarray) -> SeriesScorer:
    spec = DetectorSpec.from_parameters(name, SMALL[name])
    return SeriesScorer(spec, fit_window_model(spec, values[:300]) if spec.learned else None)


@pytest.mark.parametrize("name", KINDS)
def test_scoring_in_pieces_equals_scoring_whole(demo, name):
    """What lets the server stream: any split of a series into blocks (single rows included) scores the same."""
    values = demo.loc[(demo["host"] == "host-0") & (demo["metric"] == "cpu"), "value"].to_numpy()[:900]
    whole = _scorer(name, values).score(values)
    pieces = _scorer(name, values)
    cuts = [0, 1, 2, 7, 150, 151, 400, 640, 641, 900]
    streamed = np.concatenate([pieces.score(values[a:b]) for a, b in zip(cuts, cuts[1:])])
    np.testing.assert_allclose(streamed, whole, rtol=1e-12, atol=1e-12)
    assert whole.max() > 0.5


@pytest.mark.parametrize("name", KINDS)
def test_state_round_trips_through_json(demo, name):
    values = demo.loc[(demo["host"] == "host-1") & (demo["metric"] == "latency_ms"), "value"].to_numpy()[:800]
    whole = _scorer(name, values).score(values)
    first = _scorer(name, values)
    head = first.score(values[:500])
    state = json.loads(json.dumps(first.to_state()))
    resumed = first.fresh().with_state(state)
    np.testing.assert_allclose(np.concatenate([head, resumed.score(values[500:])]), whole, rtol=1e-12, atol=1e-12)


def test_state_is_bounded_by_the_spec():
    spec = DetectorSpec.from_parameters("ensemble", {"window": 20, "min_history": 5, "history": 30, "knn_widths": [4], "memory": 50})
    scorer = SeriesScorer(spec)
    scorer.score(np.sin(np.arange(3000) / 7.0) + np.random.default_rng(0).normal(0, 0.1, 3000))
    assert len(scorer.context) == spec.context_rows() == 2 * 4 + 30 - 2
    state = scorer.to_state()
    assert all(len(recent["values"]) <= spec.memory for recent in state["recent"])
    assert all(max(recent["ages"]) < spec.memory for recent in state["recent"])


def test_sliding_max_matches_brute_force():
    rng = np.random.default_rng(3)
    values = rng.normal(size=400)
    values[rng.random(400) < 0.1] = np.nan
    sliding = SlidingMax(span=25)
    for index, value in enumerate(values):
        recent = values[max(0, index - 25) : index]
        expected = np.nanmax(recent) if np.isfinite(recent).any() else np.nan
        assert (math.isnan(sliding.current()) and math.isnan(expected)) or sliding.current() == expected
        sliding.push(float(value))
    assert sliding.known == int(np.isfinite(values).sum())


def test_hold_scores_only_new_records():
    steady = np.zeros(300)
    steady[200:205] = 10.0  # a lasting level: with hold, one alert at its onset
    noisy = steady + np.random.default_rng(0).normal(0, 0.1, 300)
    held = detector_scores(noisy, "robust", window=100, min_history=50, memory=100, warmup=10, hold=20, refractory=0)
    free = detector_scores(noisy, "robust", window=100, min_history=50, memory=100, warmup=10, hold=0, refractory=0)
    assert held[200] > 0.9 and np.all(held[201:206] == 0.0)
    assert np.count_nonzero(free[200:206] > 0.5) >= 1 and np.count_nonzero(held[200:206] > 0.5) == 1


def test_refractory_silences_a_growing_surprise_after_its_first_alert():
    values = np.random.default_rng(1).normal(0, 0.1, 300)
    # each row is more surprising, relative to the one before, than that one was: hold alone alerts on all four
    values[200:204] += [2.0, 16.0, 160.0, 1920.0]
    settings = dict(window=100, min_history=50, memory=100, warmup=10, hold=20)
    held_only = detector_scores(values, "robust", refractory=0, **settings)
    quieted = detector_scores(values, "robust", refractory=10, **settings)
    assert np.count_nonzero(held_only[200:204] > 0.5) == 4
    assert quieted[200] > 0.5 and np.all(quieted[201:211] == 0.0)


def test_bad_series_names_the_row():
    values = np.ones(50)
    values[17] = np.nan
    with pytest.raises(DetectorError, match="row 17"):
        detector_scores(values, "robust")


@pytest.mark.parametrize(
    ("kind", "parameters", "message"),
    [
        ("median", {}, "detector must be one of"),
        ("robust", {"windw": 10}, r"unknown detector parameter\(s\) \['windw'\]"),
        ("robust", {"window": "ten"}, "window must be an integer"),
        ("robust", {"memory": 0}, "memory must be >= 1"),
        ("ensemble", {"knn_widths": [10, "x"]}, "knn_widths must be a list of integers"),
    ],
)
def test_bad_detector_settings_are_named(kind, parameters, message):
    with pytest.raises(DetectorError, match=message):
        DetectorSpec.from_parameters(kind, parameters)


def test_learned_detectors_are_seeded_and_need_fitting():
    values = np.sin(np.arange(600) / 10) + np.random.default_rng(0).normal(0, 0.1, 600)
    for kind in ("isolation_forest", "autoencoder"):
        np.testing.assert_array_equal(detector_scores(values, kind, epochs=20), detector_scores(values, kind, epochs=20))
        with pytest.raises(DetectorError, match="must be fitted"):
            SeriesScorer(DetectorSpec(kind=kind))
