"""Tabular and output drift through the alibi-detect backend: false alarms, real and generated shifts, saving."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.drift.detectors import (
    MANIFEST,
    DetectorLoadError,
    DetectorSettings,
    DriftColumns,
    DriftInputError,
    create_detector,
    load_detector,
)
from components.drift.tests.helpers import FALSE_ALARM_TRIALS, false_alarm_tolerance, mixed_table, nab_series

MIXED = DriftColumns(numeric=("amount", "latency", "items"), categorical=("channel", "country"), label="label")
NAB_COLUMNS = DriftColumns(numeric=("value",), categorical=("hour",))
MACHINE_TEMPERATURE = "realKnownCause/machine_temperature_system_failure.csv"


def as_window(frame: pd.DataFrame) -> pd.DataFrame:
    """Labelled rows as a window whose predictions are the labels (a perfect model)."""
    return frame.rename(columns={"label": "prediction"})


def fitted(columns: DriftColumns, reference: pd.DataFrame, **settings) -> object:
    detector = create_detector(columns, DetectorSettings(**settings))
    detector.fit(reference)
    return detector


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_windows_from_the_reference_distribution_raise_few_false_alarms(correction):
    rng = np.random.default_rng(1)
    detector = fitted(MIXED, mixed_table(rng, 2000), correction=correction)
    alarms = sum(detector.predict(as_window(mixed_table(rng, 200))).drift for _ in range(FALSE_ALARM_TRIALS))
    # The tabular and the output test each run at p_val / 2, so a window is flagged with chance <= p_val.
    assert alarms <= false_alarm_tolerance(0.05), f"{alarms} of {FALSE_ALARM_TRIALS} undrifted windows flagged"


def test_held_out_nab_rows_raise_few_false_alarms():
    series, anomalies = nab_series(MACHINE_TEMPERATURE)
    normal = series[series["timestamp"] < anomalies[0][0]].sample(frac=1.0, random_state=0)
    reference, held_out = normal.iloc[:1000], normal.iloc[1000:]
    detector = fitted(NAB_COLUMNS, reference)
    windows = (held_out.sample(100, random_state=trial) for trial in range(FALSE_ALARM_TRIALS))
    alarms = sum(detector.predict(window).drift for window in windows)
    assert alarms <= false_alarm_tolerance(0.05), f"{alarms} of {FALSE_ALARM_TRIALS} held-out windows flagged"


@pytest.mark.parametrize(
    ("name", "anomaly"),
    [
        (MACHINE_TEMPERATURE, 1),  # the temperature falls before the failure
        (MACHINE_TEMPERATURE, 3),
        ("realKnownCause/ambient_temperature_system_failure.csv", 0),
        ("realKnownCause/nyc_taxi.csv", 2),  # Christmas
        ("realKnownCause/cpu_utilization_asg_misconfiguration.csv", 0),
    ],
)
def test_covariate_shift_in_nab_anomaly_windows_is_detected_on_the_value(name, anomaly):
    series, anomalies = nab_series(name)
    reference = series[series["timestamp"] < anomalies[0][0]].sample(1000, random_state=0)
    start, end = anomalies[anomaly]
    window = series[(series["timestamp"] >= start) & (series["timestamp"] <= end)].sample(100, random_state=0)
    result = fitted(NAB_COLUMNS, reference).predict(window)
    assert result.drift
    assert result.drifted_features == ["value"]


@pytest.mark.parametrize(
    ("shift", "feature"),
    [
        ({"amount": 0.4}, "amount"),
        ({"latency": 1.3}, "latency"),
        ({"channel": 0.15}, "channel"),
        ({"label": 0.1}, "prediction"),
    ],
)
def test_generated_shifts_are_detected_and_named(shift, feature):
    rng = np.random.default_rng(2)
    detector = fitted(MIXED, mixed_table(rng, 2000))
    result = detector.predict(as_window(mixed_table(rng, 500, **shift)))
    assert result.drift
    assert result.drifted_features == [feature]


def test_a_category_the_reference_never_had_is_counted_as_unseen():
    rng = np.random.default_rng(3)
    detector = fitted(MIXED, mixed_table(rng, 2000))
    window = as_window(mixed_table(rng, 300))
    window.loc[:39, "country"] = "pt"
    result = detector.predict(window)
    country = next(feature for feature in result.features if feature.feature == "country")
    assert result.drift and country.drift and country.test == "Chi2"
    assert country.distribution.categories[-1] == "(unseen)"
    assert country.distribution.window[-1] == 40


def test_each_feature_reports_its_test_statistic_threshold_and_plot_data():
    rng = np.random.default_rng(4)
    result = fitted(MIXED, mixed_table(rng, 1000)).predict(as_window(mixed_table(rng, 200, amount=1.0)))
    by_name = {feature.feature: feature for feature in result.features}
    assert [by_name[name].test for name in ("amount", "latency", "items", "channel", "country", "prediction")] == [
        "KS", "KS", "KS", "Chi2", "Chi2", "Chi2"
    ]  # fmt: skip
    amount = by_name["amount"]
    assert amount.statistic > 0.2 and amount.p_value < amount.threshold
    assert amount.threshold == pytest.approx(0.05 / 2 / 5)  # Bonferroni over 2 tests, then over 5 columns
    assert sum(amount.distribution.reference) == 1000 and sum(amount.distribution.window) == 200
    assert [test.name for test in result.tests] == ["tabular", "output"]


def test_fdr_holds_features_to_the_benjamini_hochberg_line():
    rng = np.random.default_rng(5)
    detector = fitted(MIXED, mixed_table(rng, 2000), correction="fdr")
    result = detector.predict(as_window(mixed_table(rng, 500, amount=0.5, latency=1.3)))
    tabular = result.tests[0]
    flagged = sorted(feature.feature for feature in tabular.features if feature.drift)
    assert flagged == ["amount", "latency"]
    # Both rejected at the threshold of the larger rejected p-value's rung: q * 2 / 5.
    assert [feature.threshold for feature in tabular.features] == pytest.approx([0.025 * 2 / 5] * 5)


def test_saved_detector_loads_and_answers_the_same(tmp_path):
    rng = np.random.default_rng(6)
    detector = fitted(MIXED, mixed_table(rng, 1000))
    detector.save(tmp_path / "detector")
    window = as_window(mixed_table(rng, 300, channel=0.1))
    before, after = detector.predict(window), load_detector(tmp_path / "detector").predict(window)
    assert [(f.feature, f.p_value, f.statistic) for f in after.features] == [
        (f.feature, f.p_value, f.statistic) for f in before.features
    ]
    manifest = json.loads((tmp_path / "detector" / MANIFEST).read_text())
    assert manifest["backend"] == "alibi-detect"
    assert manifest["versions"]["alibi-detect"] == "0.13.0"
    assert set(manifest["versions"]) >= {"torch", "numpy", "scipy", "python"}
    assert manifest["categories"]["channel"] == ["app", "store", "web"]
    assert manifest["tests"] == {
        "tabular": {"level": 0.025, "directory": "tabular"},
        "output": {"level": 0.025, "directory": "output"},
    }
    files = sorted(str(path.relative_to(tmp_path / "detector")) for path in (tmp_path / "detector").rglob("*.*"))
    assert files == [
        "detector.json", "output/config.toml", "output/x_ref.npy", "tabular/config.toml", "tabular/x_ref.npy"
    ]  # fmt: skip


def test_loading_refuses_pickle_files_and_names_missing_parts(tmp_path):
    detector = fitted(MIXED, mixed_table(np.random.default_rng(7), 100))
    detector.save(tmp_path / "detector")
    (tmp_path / "detector" / "tabular" / "meta.dill").write_bytes(b"\x80\x04N.")
    with pytest.raises(DetectorLoadError, match=r"tabular/meta\.dill.*never loaded"):
        load_detector(tmp_path / "detector")
    (tmp_path / "detector" / "tabular" / "meta.dill").unlink()
    (tmp_path / "detector" / "output" / "config.toml").unlink()
    with pytest.raises(DetectorLoadError, match=r"output/config\.toml is missing"):
        load_detector(tmp_path / "detector")
    with pytest.raises(DetectorLoadError, match=f"{MANIFEST} is missing"):
        load_detector(tmp_path)
    manifest = json.loads((tmp_path / "detector" / MANIFEST).read_text())
    (tmp_path / "detector" / MANIFEST).write_text(json.dumps({**manifest, "backend": "evidently"}))
    with pytest.raises(DetectorLoadError, match="unknown drift backend 'evidently'"):
        load_detector(tmp_path / "detector")


def test_bad_data_is_refused_naming_column_and_rows():
    rng = np.random.default_rng(8)
    reference = mixed_table(rng, 100)
    with pytest.raises(DriftInputError, match=r"lacks column\(s\) \['label'\]"):
        fitted(MIXED, reference.drop(columns="label"))
    bad = reference.astype({"amount": object})
    bad.loc[[3, 7], "amount"] = "n/a"
    with pytest.raises(DriftInputError, match=r"'amount' of the reference data .* rows \[3, 7\] hold non-numbers"):
        fitted(MIXED, bad)
    bad = reference.copy()
    bad.loc[5, "latency"] = np.nan
    with pytest.raises(DriftInputError, match=r"'latency' of the reference data has nulls in rows \[5\]"):
        fitted(MIXED, bad)
    with pytest.raises(DriftInputError, match="'flag' of the reference data is boolean"):
        fitted(DriftColumns(numeric=("flag",)), pd.DataFrame({"flag": [True, False] * 20}))
    with pytest.raises(DriftInputError, match="label column 'label' .* has 1 distinct value"):
        fitted(MIXED, reference.assign(label="ok"))
    detector = fitted(MIXED, reference)
    with pytest.raises(DriftInputError, match="the window is empty"):
        detector.predict(as_window(reference.iloc[:0]))
    with pytest.raises(DriftInputError, match=r"the window lacks column\(s\) \['country'\]"):
        detector.predict(as_window(reference).drop(columns="country"))


def test_a_window_without_predictions_skips_only_the_output_test():
    rng = np.random.default_rng(9)
    result = fitted(MIXED, mixed_table(rng, 500)).predict(mixed_table(rng, 100).drop(columns="label"))
    assert [test.name for test in result.tests] == ["tabular"]
    assert "no predictions" in result.not_run["output"]


def test_settings_and_columns_are_checked_before_fitting():
    with pytest.raises(DriftInputError, match="p_val must be in"):
        create_detector(MIXED, DetectorSettings(p_val=1.5))
    with pytest.raises(DriftInputError, match="correction must be one of"):
        create_detector(MIXED, DetectorSettings(correction="holm"))
    with pytest.raises(DriftInputError, match="no columns to watch"):
        create_detector(DriftColumns(label="label"), DetectorSettings())
    with pytest.raises(DriftInputError, match="text column 'text' needs an encoder"):
        create_detector(DriftColumns(text="text"), DetectorSettings())
    with pytest.raises(DriftInputError, match=r"\['amount'\] are listed more than once"):
        create_detector(DriftColumns(numeric=("amount",), categorical=("amount",)), DetectorSettings())

