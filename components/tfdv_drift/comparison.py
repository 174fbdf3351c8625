"""TFDV's drift comparison of a traffic window against the training data.

The window is what the ``drift`` component tested (its ``window_data``: the feature columns, the
predicted label and ``request_time``); the reference is the training split. Both get TFDV statistics
(``tfdv.generate_statistics_from_dataframe``), a schema is inferred from the reference, and every
compared feature gets a drift comparator: the L-infinity distance for categorical features (strings,
and the labels) and the Jensen-Shannon divergence for numeric ones. ``tfdv.validate_statistics`` with
the reference as ``previous_statistics`` then measures each feature, as the ``validate`` component does
for eval against train. The window's predicted labels are compared with the reference's labels.

The result is a small JSON document (:meth:`WindowComparison.to_json`, read by the ``drift_report``
component) plus a Markdown summary. Nothing is written until everything is computed, and each file is
written to a temporary name first.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils.schema_util import is_categorical_feature
from tensorflow_metadata.proto.v0 import schema_pb2

from components.validate.report import measurement_rows
from components.validate.validation import ValidationInputError, infer_schema, read_dataset, unsupported_columns

FORMAT_VERSION = 1
TIME_COLUMN = "request_time"
"""The drift component's column of request times: never compared (TFDV has no statistics for timestamps)."""
STRING_KINDS = frozenset("OSU")


@dataclass(frozen=True)
class FeatureComparison:
    feature: str
    """The reference column (for the labels: the label column)."""
    window_column: str
    measure: str
    """``L-infinity distance`` or ``Jensen-Shannon divergence``."""
    value: float
    threshold: float

    @property
    def drift(self) -> bool:
        return self.value > self.threshold


@dataclass(frozen=True)
class WindowComparison:
    reference_rows: int
    window_rows: int
    categorical_threshold: float
    numeric_threshold: float
    features: tuple[FeatureComparison, ...]
    not_compared: dict[str, str] = field(default_factory=dict)
    """Column -> why it was not compared."""

    @property
    def drift(self) -> bool:
        return any(feature.drift for feature in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [feature.feature for feature in self.features if feature.drift]

    def to_json(self) -> dict[str, Any]:
        """The result document (format_version 1) that the drift_report component reads."""
        return {
            "format_version": FORMAT_VERSION,
            "detector": "tfdv",
            "drift": self.drift,
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "categorical_threshold": self.categorical_threshold,
            "numeric_threshold": self.numeric_threshold,
            "features": [{**asdict(feature), "drift": feature.drift} for feature in self.features],
            "not_compared": self.not_compared,
            "versions": {"tensorflow-data-validation": tfdv.__version__},
        }

    def metrics(self) -> dict[str, float]:
        return {
            "drift": float(self.drift),
            "features_compared": float(len(self.features)),
            "drifted_features": float(len(self.drifted_features)),
            "max_distance": max((feature.value for feature in self.features), default=0.0),
            "reference_rows": float(self.reference_rows),
            "window_rows": float(self.window_rows),
        }


def compare_window(
    reference_path: str | os.PathLike[str],
    window_path: str | os.PathLike[str],
    *,
    columns: list[str] | None = None,
    label_column: str = "",
    prediction_column: str = "prediction",
    categorical_threshold: float = 0.1,
    numeric_threshold: float = 0.1,
) -> WindowComparison:
    """Measure the drift of each compared column of the window against the reference; writes nothing.

    columns: the feature columns to compare; empty or None: every column the two share (except
    request_time). label_column: the reference's labels, compared with the window's prediction_column
    ("" compares no labels).
    """
    for name, threshold in (("categorical_threshold", categorical_threshold), ("numeric_threshold", numeric_threshold)):
        if not threshold > 0:
            raise ValueError(f"{name} must be > 0, got {threshold}")
    reference, window = read_dataset(reference_path), read_dataset(window_path)
    not_compared: dict[str, str] = {}
    if columns:
        for frame, path in ((reference, reference_path), (window, window_path)):
            missing = [column for column in columns if column not in frame.columns]
            if missing:
                raise ValidationInputError(f"dataset file {path} lacks column(s) {missing}; it has {list(frame.columns)}")
        features = list(columns)
    else:
        ignored = {TIME_COLUMN, label_column, prediction_column}
        features = [column for column in reference.columns if column in window.columns and column not in ignored]
    pairs = {feature: feature for feature in features}  # reference column -> window column
    if label_column:
        if label_column not in reference.columns:
            raise ValidationInputError(
                f"dataset file {reference_path} lacks the label column {label_column!r}; it has {list(reference.columns)}"
            )
        if prediction_column not in window.columns or window[prediction_column].isna().all():
            not_compared[label_column] = f"the window has no predictions (column {prediction_column!r})"
        else:
            pairs[label_column] = prediction_column
    if not pairs:
        raise ValidationInputError(
            f"nothing to compare: {reference_path} and {window_path} share no feature column and no labels were given"
        )
    reference_frame, window_frame = _aligned(reference, window, pairs, categorical={label_column})
    for frame, path in ((reference_frame, reference_path), (window_frame, window_path)):
        for column in unsupported_columns(frame):
            not_compared[column] = f"{path}: TFDV has no statistics for its type {frame[column].dtype}"
    compared = [column for column in pairs if column not in not_compared]
    if not compared:
        raise ValidationInputError(f"no column of {list(pairs)} can be compared: {not_compared}")
    reference_statistics = tfdv.generate_statistics_from_dataframe(reference_frame[compared])
    window_statistics = tfdv.generate_statistics_from_dataframe(window_frame[compared])
    schema = infer_schema(reference_statistics)
    _set_drift_comparators(schema, categorical_threshold, numeric_threshold)
    anomalies = tfdv.validate_statistics(window_statistics, schema, previous_statistics=reference_statistics)
    measured = {row.feature: row for row in measurement_rows(anomalies) if row.comparison == "drift"}
    for column in compared:
        if column not in measured:
            not_compared[column] = "TFDV made no drift measurement (no values on one side)"
    return WindowComparison(
        reference_rows=len(reference),
        window_rows=len(window),
        categorical_threshold=categorical_threshold,
        numeric_threshold=numeric_threshold,
        features=tuple(
            FeatureComparison(column, pairs[column], measured[column].measure, measured[column].value,
                              measured[column].threshold)  # fmt: skip
            for column in compared
            if column in measured
        ),
        not_compared=not_compared,
    )


def write_comparison(comparison: WindowComparison, result_path: str | os.PathLike[str],
                     summary_path: str | os.PathLike[str]) -> None:  # fmt: skip
    """The JSON result and the Markdown summary, each written to a temporary name and renamed into place."""
    _write_atomically(Path(result_path), json.dumps(comparison.to_json(), indent=2) + "\n")
    _write_atomically(Path(summary_path), render_markdown(comparison))


def render_markdown(comparison: WindowComparison) -> str:
    verdict = "**Drift detected**" if comparison.drift else "No drift detected"
    lines = [
        "## TFDV drift comparison (window against the training data)",
        "",
        f"{verdict}: {len(comparison.drifted_features)} of {len(comparison.features)} compared feature(s) over "
        f"their threshold (L-infinity {comparison.categorical_threshold:g} for categorical, Jensen-Shannon "
        f"{comparison.numeric_threshold:g} for numeric features). Window rows: {comparison.window_rows}; "
        f"reference rows: {comparison.reference_rows}.",
        "",
        "| feature | window column | measure | value | threshold | drift |",
        "|---|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {_cell(f.feature)} | {_cell(f.window_column)} | {f.measure} | {f.value:.4g} | {f.threshold:.4g} "
        f"| {'**yes**' if f.drift else 'no'} |"
        for f in comparison.features
    ]
    lines += [f"- not compared: {_cell(column)}: {_cell(why)}" for column, why in comparison.not_compared.items()]
    return "\n".join(lines) + "\n"


def _aligned(reference: pd.DataFrame, window: pd.DataFrame, pairs: dict[str, str],
             categorical: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Both sides with the reference's column names; a column that is categorical on either side (or a label)
    becomes strings on both, so 3, 3.0 and "3" agree (the drift component writes categories as strings)."""
    left = pd.DataFrame({column: reference[column] for column in pairs})
    right = pd.DataFrame({column: window[window_column] for column, window_column in pairs.items()})
    for column in pairs:
        kinds = {left[column].dtype.kind, right[column].dtype.kind}
        if column in categorical or (len(kinds) > 1 and kinds & STRING_KINDS):
            left[column] = left[column].map(_category_text).astype(object)
            right[column] = right[column].map(_category_text).astype(object)
    return left, right


def _category_text(value: object) -> str | None:
    """The drift component's spelling of a category (components/drift/features.py category_key); None stays missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _set_drift_comparators(schema: schema_pb2.Schema, categorical_threshold: float, numeric_threshold: float) -> None:
    for feature in schema.feature:
        if is_categorical_feature(feature):
            feature.drift_comparator.infinity_norm.threshold = categorical_threshold
        elif feature.type in (schema_pb2.INT, schema_pb2.FLOAT):
            feature.drift_comparator.jensen_shannon_divergence.threshold = numeric_threshold


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
