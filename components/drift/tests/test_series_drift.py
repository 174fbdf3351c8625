"""The series test: seeded demo host metrics (kfp_mlops.demo_metrics) and NAB, through the detector API."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from components.anomaly.demo import METRICS, demo_host_metrics
from components.drift import series
from components.drift.detectors import DetectorSettings, DriftColumns, DriftInputError, create_detector, load_detector
from components.drift.drift import run_drift
from components.drift.tests.helpers import (
    FALSE_ALARM_TRIALS,
    false_alarm_tolerance,
    nab_series,
    payload_row,
    write_payload_log,
)

HOST_METRICS = DriftColumns(numeric=tuple(METRICS), time="timestamp", group="host")
NAB_VALUE = DriftColumns(numeric=("value",), time="timestamp")
NOISE = {metric: sigma for metric, (_, _, sigma) in METRICS.items()}
"""Each demo metric's noise standard deviation: the unit of the generated shifts."""
DAY_ROWS = 288  # 5-minute steps
STEPS, TRAIN_STEPS = 3000, 2100  # the anomaly pipeline's demo data set and its 70% training split by time


def demo_split(seed: int, window_rows: int = DAY_ROWS, drift: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training split of a seeded demo data set and its last ``window_rows`` steps (a later, unseen window)."""
    data = demo_host_metrics(hosts=3, steps=STEPS, seed=seed)
    steps = data["timestamp"].rank(method="dense").astype(int) - 1
    window = demo_host_metrics(hosts=3, steps=STEPS, seed=seed, drift=True) if drift else data
    return data[steps < TRAIN_STEPS], window[steps >= STEPS - window_rows].drop(columns="anomaly")


def fitted(columns: DriftColumns, reference: pd.DataFrame, **settings):
    detector = create_detector(columns, DetectorSettings(**settings))
    detector.fit(reference)
    return detector


def test_undrifted_days_of_demo_metrics_raise_few_false_alarms():
    alarms = 0
    for trial in range(FALSE_ALARM_TRIALS):
        reference, window = demo_split(seed=100 + trial)
        alarms += fitted(HOST_METRICS, reference, seed=trial).predict(window).drift
    # Measured over 200 such days: 8 alarms (4%). The tolerance is the 99.9% quantile of Binomial(40, 0.05): 7.
    assert alarms <= false_alarm_tolerance(0.05), f"{alarms} of {FALSE_ALARM_TRIALS} undrifted days flagged"


def test_ks_on_the_raw_values_flags_undrifted_days_which_is_why_time_series_get_the_series_test():
    flagged = 0
    for seed in range(10):
        reference, window = demo_split(seed=300 + seed)
        flagged += fitted(DriftColumns(numeric=tuple(METRICS)), reference).predict(window).drift
    # Measured: 94 of 100 undrifted days; a test at level 0.05 would flag more than this in 1 of 1,000 runs only.
    assert flagged > false_alarm_tolerance(0.05, trials=10), f"KS flagged {flagged} of 10 undrifted days"


def test_a_window_shorter_than_a_day_is_judged_against_reference_windows_as_short():
    reference, window = demo_split(seed=7, window_rows=DAY_ROWS // 4)
    result = fitted(HOST_METRICS, reference).predict(window)
    assert [test.name for test in result.tests] == ["series"] and not result.drift
    assert re.match(r"\d{3} like windows of 6 h in 7.29 days of reference, 29 of them disjoint", result.tests[0].note)
    shifted = fitted(HOST_METRICS, reference).predict(window.assign(cpu=window["cpu"] + 3 * NOISE["cpu"]))
    assert shifted.drifted_features == ["cpu"]


@pytest.mark.parametrize(
    ("metric", "kind", "size"),
    [
        ("cpu", "level", 2.0),  # + 2 noise sigmas
        ("latency_ms", "spread", 4.0),  # noise sigma x 4
        ("error_rate", "level", -2.0),
    ],
)
def test_generated_level_and_spread_shifts_are_detected_and_named(metric, kind, size):
    found = []
    for seed in range(10):
        reference, window = demo_split(seed=500 + seed)
        if kind == "level":
            window[metric] += size * NOISE[metric]
        else:
            noise = np.random.default_rng(seed).normal(0.0, NOISE[metric] * np.sqrt(size**2 - 1), len(window))
            window[metric] += noise
        found.append(fitted(HOST_METRICS, reference).predict(window).drifted_features)
    assert sum(metric in drifted for drifted in found) >= 9, found
    # another metric is flagged only as often as an undrifted one may be
    assert sum(bool(set(drifted) - {metric}) for drifted in found) <= false_alarm_tolerance(0.05, trials=10), found


def test_the_demo_data_sets_drift_is_detected_on_every_metric_with_its_level_shift():
    reference, window = demo_split(seed=11, drift=True)  # CPU x 1.25, latency x 1.4, error rate x 2
    result = fitted(HOST_METRICS, reference).predict(window)
    assert result.drift and result.drifted_features == list(METRICS)
    levels = {feature.feature: feature for feature in result.features if feature.test == "level"}
    assert all(levels[metric].drift and levels[metric].statistic > 2 for metric in METRICS)  # in robust scales


@pytest.mark.parametrize(
    ("name", "anomaly"),
    [
        ("realKnownCause/cpu_utilization_asg_misconfiguration.csv", 0),  # an autoscaling misconfiguration
        ("realKnownCause/nyc_taxi.csv", 2),  # Christmas
    ],
)
def test_covariate_shift_in_nab_anomaly_windows_is_detected(name, anomaly):
    series, anomalies = nab_series(name)
    reference = series[series["timestamp"] < anomalies[0][0]]
    start, end = anomalies[anomaly]
    window = series[(series["timestamp"] >= start) & (series["timestamp"] <= end)]
    result = fitted(NAB_VALUE, reference).predict(window)
    assert result.drift and result.drifted_features == ["value"]


def test_generated_shifts_of_a_quiet_nab_day_are_detected():
    series, anomalies = nab_series("realKnownCause/nyc_taxi.csv")
    normal = series[series["timestamp"] < anomalies[0][0]]
    last_day = normal["timestamp"] > normal["timestamp"].max() - timedelta(days=1)
    detector = fitted(NAB_VALUE, normal[~last_day])
    window = normal[last_day]
    assert not detector.predict(window).drift
    scale = float(detector._series.baseline.scales[-1, 0])  # the series' robust scale (taxi passengers)
    assert detector.predict(window.assign(value=window["value"] + 2 * scale)).drift
    assert detector.predict(window.assign(value=window["value"] * 0.6)).drift


def test_a_saved_series_detector_loads_answers_the_same_and_holds_no_pickles(tmp_path):
    reference, window = demo_split(seed=21, drift=True)
    detector = fitted(HOST_METRICS, reference)
    detector.save(tmp_path / "detector")
    before, after = detector.predict(window), load_detector(tmp_path / "detector").predict(window)
    answers = [[(f.feature, f.test, f.p_value) for f in result.features] for result in (before, after)]
    assert answers[0] == answers[1]
    files = sorted(str(path.relative_to(tmp_path / "detector")) for path in (tmp_path / "detector").rglob("*.*"))
    assert files == ["detector.json", "series/reference.npz", "series/series.json"]
    manifest = json.loads((tmp_path / "detector" / "detector.json").read_text())
    assert manifest["tests"] == {"series": {"level": 0.05, "directory": "series"}}
    assert manifest["columns"]["time"] == "timestamp" and manifest["columns"]["group"] == "host"
    with np.load(tmp_path / "detector" / "series" / "reference.npz", allow_pickle=False) as arrays:
        assert arrays["values"].shape == (len(reference), 3)


def test_a_host_the_reference_never_had_is_judged_by_the_pooled_hosts():
    reference, window = demo_split(seed=31)
    result = fitted(HOST_METRICS, reference).predict(window.assign(host=window["host"].replace("host-0", "host-9")))
    assert not result.drift


def test_bad_columns_short_references_and_long_windows_are_refused_with_the_reason():
    reference, window = demo_split(seed=41)
    with pytest.raises(DriftInputError, match="time column 'timestamp' needs numeric columns"):
        create_detector(DriftColumns(categorical=("host",), time="timestamp"), DetectorSettings())
    with pytest.raises(DriftInputError, match="group column 'host' needs a time column"):
        create_detector(DriftColumns(numeric=("cpu",), group="host"), DetectorSettings())
    with pytest.raises(DriftInputError, match=r"column 'timestamp' of the reference data spans 2\.00 days"):
        fitted(HOST_METRICS, reference.iloc[: 3 * 2 * DAY_ROWS])
    detector = fitted(HOST_METRICS, reference)
    with pytest.raises(DriftInputError, match=r"spans 72\.0 h; the reference \(7\.3 days\) holds 2 disjoint"):
        detector.predict(demo_split(seed=41, window_rows=3 * DAY_ROWS)[1])
    bad = window.astype({"timestamp": object})
    bad.loc[bad.index[[2, 5]], "timestamp"] = "yesterday"
    with pytest.raises(DriftInputError, match=r"time column 'timestamp' of the window has .* rows \[\d+, \d+\]"):
        detector.predict(bad)


def test_run_drift_reads_host_metrics_from_the_payload_log(tmp_path):
    """Each logged V1 request holds one point ({"host", "timestamp", metrics}), as the anomaly server gets them."""
    reference, quiet = demo_split(seed=51)
    _, drifted = demo_split(seed=51, drift=True)
    reference.to_parquet(tmp_path / "reference.parquet")
    detector = create_detector(HOST_METRICS, DetectorSettings())
    detector.fit(reference)
    detector.save(tmp_path / "detector")
    end = quiet["timestamp"].max() + timedelta(minutes=5)
    for name, window in (("quiet", quiet), ("drifted", drifted)):
        rows = [
            payload_row(moment.to_pydatetime(), {"instances": [{**point, "timestamp": moment.isoformat()}]},
                        {"predictions": [{"score": 0.1, "anomaly": False}]}, inference_service="hosts")
            for moment, point in zip(window["timestamp"], window.drop(columns="timestamp").to_dict(orient="records"))
        ]  # fmt: skip
        unreadable = {"host": "host-0", "timestamp": "soon", **dict.fromkeys(METRICS, 1.0)}
        rows.append(payload_row(end.to_pydatetime() - timedelta(hours=1), {"instances": [unreadable]}))
        write_payload_log(tmp_path / name, rows)
    outputs = {}
    for name in ("quiet", "drifted"):
        outputs[name] = run_drift(
            str(tmp_path / "detector"), str(tmp_path / name), str(tmp_path / name / "report.html"),
            str(tmp_path / name / "summary.md"), str(tmp_path / name / "window.parquet"), window_end=end.isoformat(),
            window_hours=24, max_samples=1000,
        )  # fmt: skip
    assert not outputs["quiet"].result.drift and outputs["drifted"].result.drift
    assert outputs["quiet"].extraction.skipped == {"time field 'timestamp' is not an ISO 8601 time": 1}
    assert outputs["quiet"].metrics["series_drift"] == 0.0 and outputs["drifted"].metrics["series_drift"] == 1.0
    tested = pd.read_parquet(tmp_path / "quiet" / "window.parquet")
    assert len(tested) == 3 * DAY_ROWS and {"host", "timestamp", *METRICS} <= set(tested.columns)
    summary = (tmp_path / "drifted" / "summary.md").read_text()
    assert "| series | cpu | level shift (scales)" in summary and "like windows of 24 h" in summary


def test_bonferroni_and_fdr_thresholds_over_the_columns_and_statistics():
    p_values = np.array([0.001, 0.02, 0.5, 0.9])
    assert series.thresholds(p_values, 0.05, "bonferroni").tolist() == [0.0125] * 4
    assert series.thresholds(p_values, 0.05, "fdr").tolist() == [0.025] * 4  # rejects the two below q * rank / n
    assert series.thresholds(np.array([0.9, 0.5]), 0.05, "fdr").tolist() == [0.05, 0.025]  # the ladder by rank
