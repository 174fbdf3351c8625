"""fit_drift_detector's logic: reference Parquet + columns -> a complete detector directory, or nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.anomaly.demo import demo_host_metrics
from components.drift.detectors import MANIFEST, DetectorSettings, DriftColumns, DriftInputError, load_detector
from components.drift.tests.helpers import banking77, build_tiny_encoder, mixed_table
from components.fit_drift_detector.fit import fit_drift_detector

MIXED = DriftColumns(numeric=("amount", "latency", "items"), categorical=("channel", "country"), label="label")


@pytest.fixture
def reference_path(tmp_path):
    path = tmp_path / "reference.parquet"
    mixed_table(np.random.default_rng(0), 3000).to_parquet(path)
    return path


def test_fit_writes_a_complete_detector_from_a_seeded_sample(reference_path, tmp_path):
    target = tmp_path / "detector"
    metadata = fit_drift_detector(str(reference_path), str(target), MIXED, DetectorSettings(), max_reference_rows=1000)
    assert metadata["framework"] == "alibi-detect" and metadata["tests"] == ["output", "tabular"]
    assert metadata["reference_rows"] == 1000 and metadata["versions"]["alibi-detect"] == "0.13.0"
    assert json.loads((target / MANIFEST).read_text())["columns"]["categorical"] == ["channel", "country"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no staging left
    again = tmp_path / "again"
    fit_drift_detector(str(reference_path), str(again), MIXED, DetectorSettings(), max_reference_rows=1000)
    x_ref = np.load(target / "tabular" / "x_ref.npy", allow_pickle=False)
    np.testing.assert_array_equal(x_ref, np.load(again / "tabular" / "x_ref.npy", allow_pickle=False))
    assert load_detector(target).predict(mixed_table(np.random.default_rng(1), 200, amount=1.0)).drift


def test_an_existing_empty_directory_is_filled(reference_path, tmp_path):
    (tmp_path / "detector").mkdir()
    fit_drift_detector(str(reference_path), str(tmp_path / "detector"), MIXED, DetectorSettings())
    assert (tmp_path / "detector" / MANIFEST).is_file()


def test_failures_name_the_problem_and_leave_no_directory(reference_path, tmp_path):
    target = tmp_path / "detector"
    with pytest.raises(DriftInputError, match=r"reference data .*missing\.parquet does not exist"):
        fit_drift_detector(str(tmp_path / "missing.parquet"), str(target), MIXED, DetectorSettings())
    (tmp_path / "broken.parquet").write_text("text, not parquet")
    with pytest.raises(DriftInputError, match=r"cannot read the reference data .*broken\.parquet as Parquet"):
        fit_drift_detector(str(tmp_path / "broken.parquet"), str(target), MIXED, DetectorSettings())
    with pytest.raises(DriftInputError, match=r"lacks column\(s\) \['region'\]"):
        fit_drift_detector(str(reference_path), str(target), DriftColumns(categorical=("region",)), DetectorSettings())
    with pytest.raises(DriftInputError, match="encoder directory .* is not a Hugging Face model directory"):
        fit_drift_detector(
            str(reference_path), str(target), DriftColumns(text="channel"), DetectorSettings(encoder_dir=str(tmp_path))
        )
    with pytest.raises(DriftInputError, match="max_reference_rows must be at least 20"):
        fit_drift_detector(str(reference_path), str(target), MIXED, DetectorSettings(), max_reference_rows=5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.parquet", "reference.parquet"]
    target.mkdir()
    (target / "model.safetensors").write_text("someone else's")
    with pytest.raises(DriftInputError, match="already exists and is not empty"):
        fit_drift_detector(str(reference_path), str(target), MIXED, DetectorSettings())


def test_text_detector_carries_its_encoder(tmp_path):
    frame = banking77("test").iloc[:120]
    frame.to_parquet(tmp_path / "reference.parquet")
    encoder = build_tiny_encoder(tmp_path / "encoder", frame["text"].tolist())
    columns = DriftColumns(text="text", label="label")
    metadata = fit_drift_detector(
        str(tmp_path / "reference.parquet"), str(tmp_path / "detector"), columns,
        DetectorSettings(encoder_dir=str(encoder), n_permutations=20),
    )  # fmt: skip
    assert metadata["tests"] == ["output", "text"]
    assert (tmp_path / "detector" / "encoder" / "model.safetensors").is_file()
    result = load_detector(tmp_path / "detector").predict(frame.iloc[:30].rename(columns={"label": "prediction"}))
    assert [feature.feature for feature in result.features] == ["text", "prediction"]


def test_time_series_detector_keeps_its_reference_rows_for_the_series_test(tmp_path):
    metrics = demo_host_metrics(hosts=2, steps=4 * 288, seed=3)  # four days of 5-minute points
    metrics.to_parquet(tmp_path / "metrics.parquet")
    columns = DriftColumns(numeric=("cpu", "latency_ms"), time="timestamp", group="host")
    metadata = fit_drift_detector(
        str(tmp_path / "metrics.parquet"), str(tmp_path / "detector"), columns, DetectorSettings(),
        max_reference_rows=2000,
    )  # fmt: skip
    assert metadata["tests"] == ["series"] and metadata["reference_rows"] == 2000
    assert metadata["columns"]["time"] == "timestamp" and metadata["columns"]["group"] == "host"
    with np.load(tmp_path / "detector" / "series" / "reference.npz", allow_pickle=False) as arrays:
        assert arrays["values"].shape == (2000, 2) and np.all(np.diff(arrays["times"]) >= 0)  # by time
    last_day = metrics[metrics["timestamp"] >= metrics["timestamp"].max() - pd.Timedelta(hours=12)]
    assert [test.name for test in load_detector(tmp_path / "detector").predict(last_day).tests] == ["series"]
    two_days = metrics[metrics["timestamp"] < metrics["timestamp"].min() + pd.Timedelta(days=2)]
    two_days.to_parquet(tmp_path / "two.parquet")
    with pytest.raises(DriftInputError, match=r"column 'timestamp' of the reference data spans 2\.00 days"):
        fit_drift_detector(str(tmp_path / "two.parquet"), str(tmp_path / "short"), columns, DetectorSettings())
    assert not (tmp_path / "short").exists()
