"""Drift of live traffic: read a time window of payloads, test it with a fitted detector, write the reports.

``run_drift`` loads the detector first and reads and tests the window before writing anything; each
output is written to a temporary sibling and renamed into place, so a failed run leaves no output that
looks complete.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.drift import features
from components.drift.detectors import DriftColumns, DriftInputError, DriftResult, load_detector, read_manifest
from components.drift.payloads import TIME_COLUMN, Extraction, TimeWindow, read_window
from components.drift.report import ReportContext, render_html, render_markdown


@dataclass(frozen=True)
class DriftRun:
    result: DriftResult
    window: TimeWindow
    extraction: Extraction
    metrics: dict[str, float]


def run_drift(
    detector_dir: str,
    payloads: str,
    report_path: str,
    summary_path: str,
    window_data_path: str,
    *,
    payload_format: str = "kserve",
    window_end: str = "",
    window_hours: float = 24.0,
    inference_service: str = "",
    time_column: str = "",
    max_samples: int = 1000,
    min_samples: int = 100,
    seed: int = 0,
    device: str = "",
) -> DriftRun:
    """Test the last ``window_hours`` before ``window_end`` of ``payloads`` against the detector."""
    if min_samples < 2 or max_samples < min_samples:
        raise DriftInputError(f"need 2 <= min_samples <= max_samples, got {min_samples} and {max_samples}")
    started = time.perf_counter()
    manifest = read_manifest(detector_dir)
    detector = load_detector(detector_dir, device=device)
    window = TimeWindow.ending(window_end, window_hours)
    extraction = read_window(
        payloads, window, detector.columns, payload_format=payload_format, inference_service=inference_service,
        time_column=time_column,
    )  # fmt: skip
    frame = extraction.frame
    if len(frame) < min_samples:
        skipped = "; ".join(f"{count} × {reason}" for reason, count in extraction.skipped.most_common(3))
        raise DriftInputError(
            f"the window {window} of {payloads} has {len(frame)} readable instances (from {extraction.source_rows} "
            f"logged rows in {extraction.files} file(s)); min_samples is {min_samples}"
            + (f". Skipped: {skipped}" if skipped else "")
        )
    if len(frame) > max_samples:
        frame = frame.sample(n=max_samples, random_state=seed).sort_index()
    frame = frame.reset_index(drop=True)
    result = detector.predict(frame)
    whole_table = payload_format == "table" and not time_column
    context = ReportContext(
        window="every row of the table (no time column)" if whole_table else str(window),
        source=payloads,
        backend=manifest["backend"],
        versions=manifest.get("versions", {}),
        source_rows=extraction.source_rows,
        instances=len(extraction.frame),
        seconds=time.perf_counter() - started,
        skipped=extraction.skipped,
        examples=extraction.examples,
        without_prediction=extraction.without_prediction,
    )
    _write_parquet(_window_data(frame, detector.columns), window_data_path)
    _write_text(render_html(result, context), report_path)
    _write_text(render_markdown(result, context), summary_path)
    return DriftRun(result=result, window=window, extraction=extraction, metrics=drift_metrics(result, extraction))


def drift_metrics(result: DriftResult, extraction: Extraction) -> dict[str, float]:
    tested = result.features
    metrics = {
        "drift": float(result.drift),
        "window_rows": float(result.window_rows),
        "readable_instances": float(len(extraction.frame)),
        "logged_rows": float(extraction.source_rows),
        "skipped": float(sum(extraction.skipped.values())),
        "reference_rows": float(result.reference_rows),
        "features_tested": float(len(tested)),
        "drifted_features": float(len(result.drifted_features)),
        "min_p_value": min((feature.p_value for feature in tested), default=1.0),
    }
    for test in result.tests:
        metrics[f"{test.name}_drift"] = float(test.drift)
        metrics[f"{test.name}_min_p_value"] = min(feature.p_value for feature in test.features)
        if test.name == "text":
            metrics["text_mmd2"] = test.features[0].statistic
    return metrics


def _window_data(frame: pd.DataFrame, columns: DriftColumns) -> pd.DataFrame:
    """The tested rows, with categories, groups and predictions as their category keys (JSON gives mixed types)."""
    keyed = (*columns.categorical, *((columns.group,) if columns.group else ()), columns.prediction)
    as_keys = {column: [_key_or_null(value) for value in frame[column]] for column in keyed}
    return frame.assign(**as_keys).astype({TIME_COLUMN: "datetime64[us, UTC]"})


def _key_or_null(value: object) -> str | None:
    key = features.category_key(value)
    return None if key == features.MISSING else key


def _write_parquet(frame: pd.DataFrame, path: str) -> None:
    partial = _partial_path(path)
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)


def _write_text(text: str, path: str) -> None:
    partial = _partial_path(path)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _partial_path(path: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.partial")
