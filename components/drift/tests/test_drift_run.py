"""run_drift end to end: a fitted detector, a payload log written like the serving sink's, the outputs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from components.drift.detectors import DetectorSettings, DriftColumns, DriftInputError
from components.drift.drift import run_drift
from components.drift.tests.helpers import mixed_table, payload_row, v1_text_exchange, write_payload_log
from components.fit_drift_detector.fit import fit_drift_detector

MIXED = DriftColumns(numeric=("amount", "latency", "items"), categorical=("channel", "country"), label="label")
END = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def tabular_detector(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("tabular")
    mixed_table(np.random.default_rng(0), 2000).to_parquet(directory / "reference.parquet")
    fit_drift_detector(str(directory / "reference.parquet"), str(directory / "detector"), MIXED, DetectorSettings())
    return str(directory / "detector")


def log_traffic(root, frame: pd.DataFrame, per_request: int = 4) -> None:
    """The frame as V1 requests of ``per_request`` instances over the 20 hours before END."""
    rows = []
    for start in range(0, len(frame), per_request):
        chunk = frame.iloc[start : start + per_request]
        instances = chunk.drop(columns="label").to_dict(orient="records")
        moment = END - timedelta(hours=20) + timedelta(seconds=60 * start)
        rows.append(payload_row(moment, {"instances": instances}, {"predictions": chunk["label"].tolist()}))
    write_payload_log(root, rows)


def run(detector: str, payloads, out, **options):
    return run_drift(
        detector, str(payloads), str(out / "report.html"), str(out / "summary.md"), str(out / "window.parquet"),
        window_end=END.isoformat(), **options,
    )  # fmt: skip


def test_shifted_traffic_is_reported_as_drift_with_every_output(tabular_detector, tmp_path):
    log_traffic(tmp_path / "log", mixed_table(np.random.default_rng(1), 600, amount=0.5, channel=0.2))
    result = run(tabular_detector, tmp_path / "log", tmp_path, max_samples=500)
    assert result.result.drift and sorted(result.result.drifted_features) == ["amount", "channel"]
    assert result.metrics["drift"] == 1.0 and result.metrics["window_rows"] == 500
    assert result.metrics["readable_instances"] == 600 and result.metrics["logged_rows"] == 150
    assert result.metrics["drifted_features"] == 2 and result.metrics["tabular_drift"] == 1.0
    html = (tmp_path / "report.html").read_text()
    assert "Drift detected" in html and html.count("<svg") == 6  # 5 columns + the predictions
    assert "<script" not in html and not re.search(r"(src|href)=", html)  # offline: nothing to fetch
    summary = (tmp_path / "summary.md").read_text()
    assert "**Drift detected**" in summary and "| tabular | amount | KS distance" in summary
    window = pd.read_parquet(tmp_path / "window.parquet")
    assert len(window) == 500
    assert list(window.columns) == [*MIXED.tabular, "prediction", "request_time"]
    assert window["request_time"].dt.tz is not None


def test_undrifted_traffic_is_not_flagged_and_the_sample_is_seeded(tabular_detector, tmp_path):
    log_traffic(tmp_path / "log", mixed_table(np.random.default_rng(2), 400))
    first = run(tabular_detector, tmp_path / "log", tmp_path / "a", max_samples=300)
    second = run(tabular_detector, tmp_path / "log", tmp_path / "b", max_samples=300)
    assert not first.result.drift and first.metrics["drift"] == 0.0
    assert "No drift detected" in (tmp_path / "a" / "report.html").read_text()
    tested = [pd.read_parquet(tmp_path / run_dir / "window.parquet") for run_dir in ("a", "b")]
    pd.testing.assert_frame_equal(*tested)


def test_a_flat_table_without_a_time_column_is_tested_whole(tabular_detector, tmp_path):
    table = mixed_table(np.random.default_rng(4), 300, latency=1.5).rename(columns={"label": "prediction"})
    table.loc[:9, "prediction"] = None
    table.to_parquet(tmp_path / "scored.parquet")
    result = run(tabular_detector, tmp_path / "scored.parquet", tmp_path, payload_format="table")
    assert result.result.drifted_features == ["latency"]
    assert result.result.tests[-1].window_rows == 290  # the output test uses the rows with a prediction
    assert "every row of the table" in (tmp_path / "summary.md").read_text()
    window = pd.read_parquet(tmp_path / "window.parquet")
    assert window["prediction"].isna().sum() == 10 and window["request_time"].isna().all()


def test_too_few_instances_fail_and_write_nothing(tabular_detector, tmp_path):
    log_traffic(tmp_path / "log", mixed_table(np.random.default_rng(3), 40))
    expected = r"has 40 readable instances \(from 10 logged rows in 1 file\(s\)\); min_samples is 100"
    with pytest.raises(DriftInputError, match=expected):
        run(tabular_detector, tmp_path / "log", tmp_path / "out")
    with pytest.raises(DriftInputError, match="need 2 <= min_samples <= max_samples"):
        run(tabular_detector, tmp_path / "log", tmp_path / "out", min_samples=500, max_samples=100)
    assert not (tmp_path / "out").exists()


def test_text_traffic_as_the_text_server_logs_it(tmp_path, tiny_encoder, banking77_train):
    reference = banking77_train.iloc[:300]
    reference.to_parquet(tmp_path / "reference.parquet")
    fit_drift_detector(
        str(tmp_path / "reference.parquet"), str(tmp_path / "detector"), DriftColumns(text="text", label="label"),
        DetectorSettings(encoder_dir=str(tiny_encoder), n_permutations=50),
    )  # fmt: skip
    traffic = banking77_train.iloc[300:420]
    rows = []
    for start in range(0, len(traffic), 3):
        chunk = traffic.iloc[start : start + 3]
        rows.append(payload_row(END - timedelta(minutes=start + 1), *v1_text_exchange(chunk["text"], chunk["label"])))
    rows.append(payload_row(END - timedelta(minutes=1), None, raw_request=b"\x00binary"))
    write_payload_log(tmp_path / "log", rows)
    result = run(str(tmp_path / "detector"), tmp_path / "log", tmp_path, min_samples=50, window_hours=6)
    assert [test.name for test in result.result.tests] == ["text", "output"]
    assert result.metrics["readable_instances"] == 120 and result.metrics["skipped"] == 1
    assert "text_mmd2" in result.metrics
    html = (tmp_path / "report.html").read_text()
    assert "PC1" in html and "request body is not JSON" in html
