"""Score a tabular model directory on a labelled test set: what the gate and the evaluate component measure.

Classification is scored by ``components/evaluate``'s own code (:func:`evaluate_predictions`: confusion
matrix, per-class scores, one-vs-rest ROC-AUC, calibration, slices), so a tabular classifier's numbers mean
what a text classifier's do; test labels the model does not know count as errors. Regression gets RMSE, MAE,
R² (:func:`components.evaluate.metrics.regression_metrics`) and how often the truth falls inside the model's
p10-p90 prediction interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.evaluate.metrics import EvaluationResult, evaluate_predictions, regression_metrics
from components.train_tabular import tabular_model
from components.train_tabular.hyperparameters import TabularError
from components.train_tabular.tabular_model import TabularModel
from components.train_tabular.tabular_trainer import read_table


@dataclass(frozen=True)
class RegressionEvaluation:
    metrics: dict[str, float]
    """rmse, mae, r2, rows, interval_coverage (share of rows within p10-p90) and interval_width (mean)."""
    y_true: np.ndarray
    y_pred: np.ndarray


def is_tabular_model(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds a ``model.json`` with ``"family": "tabular"``."""
    manifest = Path(model_dir) / tabular_model.MANIFEST
    try:
        return json.loads(manifest.read_text()).get("family") == tabular_model.FAMILY
    except (OSError, ValueError, AttributeError):
        return False


def score_tabular_model(model_dir: str | Path, test_path: str | Path, target_column: str) -> dict[str, float]:
    """Classification: accuracy, macro_f1, weighted_f1, roc_auc (left out when undefined), ece, test_rows.
    Regression: rmse, mae, r2, rows, interval_coverage, interval_width. Lower is better for rmse and mae."""
    model = tabular_model.load(Path(model_dir))
    frame = read_labelled(test_path, target_column)
    if model.manifest["task"] == "classification":
        return classification_evaluation(model, frame, target_column).metrics
    return regression_evaluation(model, frame, target_column).metrics


def read_labelled(path: str | Path, target_column: str) -> pd.DataFrame:
    """A Parquet or CSV test set with a target in every row; raise TabularError naming the column or rows."""
    frame = read_table(path)
    if target_column not in frame.columns:
        raise TabularError(f"{path}: missing target column {target_column!r}; it has {list(frame.columns)}")
    empty = frame.index[frame[target_column].isna()]
    if len(empty):
        raise TabularError(f"{path}: target column {target_column!r} is empty in rows {list(empty[:10])}")
    return frame


def classification_evaluation(
    model: TabularModel,
    frame: pd.DataFrame,
    target_column: str,
    *,
    calibration_bins: int = 10,
    roc_positive_class: str = "",
    slice_column: str = "",
) -> EvaluationResult:
    """The classifier's probabilities on ``frame`` scored against its ``target_column`` (labels as train maps them)."""
    labels = frame[target_column].map(label_text).tolist()
    slice_values = None
    if slice_column:
        if slice_column not in frame.columns:
            raise TabularError(f"no slice column {slice_column!r}; the test set has {list(frame.columns)}")
        slice_values = ["null" if pd.isna(value) else str(value) for value in frame[slice_column]]
    return evaluate_predictions(
        labels,
        model.classes,
        model.predict_proba(frame),
        calibration_bins=calibration_bins,
        roc_positive_class=roc_positive_class,
        slice_values=slice_values,
        slice_column=slice_column,
    )


def regression_evaluation(model: TabularModel, frame: pd.DataFrame, target_column: str) -> RegressionEvaluation:
    truth = pd.to_numeric(frame[target_column], errors="coerce")
    bad = frame.index[truth.isna()]
    if len(bad):
        raise TabularError(f"target column {target_column!r} must be numeric; rows {list(bad[:10])} are not")
    y_true = truth.to_numpy(dtype=float)
    y_pred = np.asarray(model.predict(frame), dtype=float)
    bounds = model.predict_interval(frame)
    metrics = {
        **regression_metrics(y_true, y_pred),
        "interval_coverage": float(np.mean((y_true >= bounds[:, 0]) & (y_true <= bounds[:, 1]))),
        "interval_width": float(np.mean(bounds[:, 1] - bounds[:, 0])),
    }
    return RegressionEvaluation(metrics, y_true, y_pred)


def label_text(value: object) -> str:
    """A label as train_tabular names classes: integral floats as integers (``1.0`` is ``"1"``)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
