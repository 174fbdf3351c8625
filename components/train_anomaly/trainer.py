"""Fit an anomaly detector per host and metric on host metrics, choose the alert threshold, save the model.

Input rows: a timestamp column, a host column, one numeric column per metric (every numeric column but the
label when none are named) and, in the eval split, an optional 0/1 label column. Each host's train rows, in
time order, fit its learned detectors (Isolation Forest, autoencoder) and warm up every detector; the eval rows
continue the same streams, and the model keeps where each stream stood after them, so a served model or the
gate's test rows (which come after eval in a time split) continue from there.

Threshold (``threshold_method``):

- ``eval_f1``: the threshold with the best per-event F1 on the labelled eval rows (see
  :func:`components.anomaly.metrics.best_f1_threshold`); if eval holds no labelled anomaly, or no threshold
  detects one, falls back to
- ``quantile``: the ``threshold_quantile`` of the train and eval rows' scores, at least 0.5.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.anomaly.learned import fit_window_model
from components.anomaly.metrics import best_f1_threshold, event_metrics, quantile_threshold
from components.anomaly.model import AnomalyModel, AnomalyModelError
from components.anomaly.scorer import DetectorSpec
from components.anomaly.scoring import host_groups, labels_of, read_table
from components.anomaly.surprise import DetectorError

THRESHOLD_METHODS = ("eval_f1", "quantile")


class TrainAnomalyError(ValueError):
    """Bad training input or settings; the message names the file, column or setting."""


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    model_metadata: dict[str, Any]


def metric_columns_of(frame: pd.DataFrame, exclude: set[str]) -> list[str]:
    """Every numeric (not boolean) column of ``frame`` outside ``exclude``, in file order."""
    return [c for c in frame.columns if c not in exclude and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]  # fmt: skip


def parse_hyperparameters(hyperparameters: str) -> dict[str, Any]:
    if not hyperparameters.strip():
        return {}
    try:
        parsed = json.loads(hyperparameters)
    except ValueError as error:
        raise TrainAnomalyError(f"hyperparameters is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise TrainAnomalyError(f"hyperparameters must be a JSON object, got {hyperparameters!r}")
    return parsed


def train_anomaly_model(
    train_path: str,
    eval_path: str,
    model_dir: str,
    *,
    detector: str = "ensemble",
    hyperparameters: str = "",
    timestamp_column: str = "timestamp",
    host_column: str = "host",
    metric_columns: list[str] | None = None,
    label_column: str = "anomaly",
    threshold_method: str = "eval_f1",
    threshold_quantile: float = 0.999,
) -> TrainResult:
    if threshold_method not in THRESHOLD_METHODS:
        raise TrainAnomalyError(f"threshold_method must be one of {list(THRESHOLD_METHODS)}, got {threshold_method!r}")
    if not 0 < threshold_quantile < 1:
        raise TrainAnomalyError(f"threshold_quantile must be in (0, 1), got {threshold_quantile}")
    try:
        spec = DetectorSpec.from_parameters(detector, parse_hyperparameters(hyperparameters))
        train = read_table(train_path, "train data")
        evaluation = read_table(eval_path, "eval data")
        metrics = list(metric_columns or metric_columns_of(train, {timestamp_column, host_column, label_column}))
        if not metrics:
            raise TrainAnomalyError(f"train data {train_path}: no numeric metric columns; it has {list(train.columns)}")
        model = AnomalyModel(spec, 0.5, timestamp_column, host_column, tuple(metrics), streams={})
        started = time.perf_counter()
        train_rows = model.checked_rows(train, f"train data {train_path}")
        model.fitted = _fit_learned(spec, train_rows, host_column, metrics) if spec.learned else {}
        train_scored = model.score_frame(train_rows, f"train data {train_path}", advance=True)
        eval_scored = model.score_frame(evaluation, f"eval data {eval_path}", advance=True)
        train_seconds = time.perf_counter() - started
        eval_groups = (
            host_groups(eval_scored, host_column, label_column, f"eval data {eval_path}")
            if label_column and label_column in eval_scored.rows.columns else None
        )  # fmt: skip
        if label_column and threshold_method == "eval_f1" and eval_groups is None:
            raise TrainAnomalyError(
                f"eval data {eval_path}: no label column {label_column!r} for threshold_method 'eval_f1'; "
                f"it has {list(evaluation.columns)} (or use threshold_method 'quantile', or label_column '')"
            )
        best = best_f1_threshold(eval_groups) if threshold_method == "eval_f1" and eval_groups else None
        if best is not None:
            model.threshold, method = best[0], "eval_f1"
        else:
            all_scores = np.concatenate([train_scored.score, eval_scored.score])
            model.threshold = quantile_threshold(all_scores, threshold_quantile)
            fallback = " (no threshold detects a labelled anomaly of eval)" if threshold_method == "eval_f1" else ""
            method = f"quantile {threshold_quantile}{fallback}"
    except (DetectorError, AnomalyModelError) as error:
        raise TrainAnomalyError(str(error)) from error

    quality = event_metrics(eval_groups, model.threshold) if eval_groups else {}
    metrics_out = {
        **quality,
        "threshold": model.threshold,
        "train_seconds": train_seconds,
        "train_rows": float(len(train_scored.rows)),
        "eval_rows": float(len(eval_scored.rows)),
        "hosts": float(len(model.streams)),
        "series": float(len(model.streams) * len(metrics)),
    }
    model.info = {
        "threshold_method": method,
        "label_column": label_column,
        "training": {"train_rows": len(train_scored.rows), "eval_rows": len(eval_scored.rows), "seconds": round(train_seconds, 3)},
        "eval_metrics": quality,
    }
    model.save(model_dir)
    metadata = {
        "framework": "kfp-mlops-anomaly",
        "family": "anomaly",
        "detector": spec.kind,
        "parameters": json.dumps(spec.parameters()),
        "threshold": model.threshold,
        "threshold_method": method,
        "metrics": metrics,
        "hosts": len(model.streams),
    }
    return TrainResult(metrics_out, metadata)


def _fit_learned(spec: DetectorSpec, rows: pd.DataFrame, host_column: str, metrics: list[str]) -> dict[tuple[str, str], Any]:
    fitted = {}
    for host, group in rows.groupby(host_column, sort=False):
        for metric in metrics:
            try:
                fitted[(str(host), metric)] = fit_window_model(spec, group[metric].to_numpy())
            except DetectorError as error:
                raise TrainAnomalyError(f"host {host!r}, metric {metric!r}: {error}") from error
    return fitted
