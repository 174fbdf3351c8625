"""Evaluate a text classifier (a Hugging Face model dir) or a tabular model (train_tabular's) on a labelled test
set, or regression predictions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.evaluate.metrics import EvaluationResult, evaluate_predictions, regression_metrics, roc_target
from components.evaluate.report import html_report, markdown_report, regression_html, regression_markdown
from components.train.labels import label_names

MAX_SLICES = 50
"""More distinct values than this in ``slice_column`` is almost surely the wrong column (an id, a timestamp)."""


class EvaluateError(ValueError):
    """Bad evaluation input; the message names the file, column or rows."""


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # not a pytest test class

    path: str
    texts: list[str]
    labels: list[str]
    """As strings, as the train component maps them (integer ``10`` is ``"10"``)."""
    slice_column: str
    slice_values: list[str] | None
    """The ``slice_column`` value of each row as a string (``"null"`` when missing); None without a slice column."""


def read_test_set(path: str, text_column: str = "text", label_column: str = "label", slice_column: str = "") -> TestSet:
    """Texts, labels and (when ``slice_column`` is set) slice values of one Parquet file."""
    if text_column == label_column:
        raise EvaluateError(f"text_column and label_column are both {text_column!r}")
    columns = _read_columns(path, list(dict.fromkeys(filter(None, [text_column, label_column, slice_column]))))
    texts = columns[text_column]
    null_rows = texts.index[texts.isna()].tolist()
    if null_rows:
        raise EvaluateError(f"{path} column {text_column!r} is empty at rows {null_rows[:10]}")
    if not pd.api.types.is_string_dtype(texts):
        raise EvaluateError(f"{path} column {text_column!r} has dtype {texts.dtype}; texts must be strings")
    labels = label_names(columns[label_column], f"{path} column {label_column!r}")
    slice_values = None
    if slice_column:
        values = columns[slice_column]
        slice_values = ["null" if pd.isna(value) else str(value) for value in values.tolist()]
        distinct = len(set(slice_values))
        if distinct > MAX_SLICES:
            raise EvaluateError(
                f"{path} column {slice_column!r} has {distinct} distinct values; slicing takes at most {MAX_SLICES}"
            )
    return TestSet(path, texts.tolist(), labels, slice_column, slice_values)


def evaluate_model(
    model_dir: str,
    test: TestSet,
    batch_size: int = 64,
    calibration_bins: int = 10,
    roc_positive_class: str = "",
) -> EvaluationResult:
    """Predict the class probabilities of every test row with the model in ``model_dir`` and score them."""
    if calibration_bins < 1:
        raise EvaluateError(f"calibration_bins must be at least 1, got {calibration_bins}")
    # torch and transformers load only for text models: a tabular evaluation never needs them
    from components.evaluate.predict import load_classifier, predict_probabilities

    classifier = load_classifier(model_dir)
    try:
        roc_target(classifier.labels, roc_positive_class)  # fail before the costly predictions
    except ValueError as error:
        raise EvaluateError(f"{model_dir}: {error}") from error
    probabilities = predict_probabilities(classifier, test.texts, batch_size)
    return evaluate_predictions(
        test.labels,
        classifier.labels,
        probabilities,
        calibration_bins=calibration_bins,
        roc_positive_class=roc_positive_class,
        slice_values=test.slice_values,
        slice_column=test.slice_column,
    )


def evaluate_classifier(
    model_dir: str,
    test_path: str,
    report_path: str,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
    html_report_path: str | None = None,
    slice_column: str = "",
    calibration_bins: int = 10,
    roc_positive_class: str = "",
) -> EvaluationResult:
    """Evaluate the model, then write the Markdown (and, when a path is given, HTML) report, each via a rename."""
    test = read_test_set(test_path, text_column, label_column, slice_column)
    result = evaluate_model(model_dir, test, batch_size, calibration_bins, roc_positive_class)
    title = f"Evaluation of {model_dir} on {test_path}"
    if html_report_path:
        write_atomically(html_report_path, html_report(title, result))
    write_atomically(report_path, markdown_report(title, result))
    return result


def read_regression_predictions(path: str, true_column: str, prediction_column: str) -> tuple[np.ndarray, np.ndarray]:
    """The true and predicted values of one Parquet file, as float arrays; both columns must be numeric and finite."""
    if true_column == prediction_column:
        raise EvaluateError(f"the true and the prediction column are both {true_column!r}")
    columns = _read_columns(path, [true_column, prediction_column])
    arrays = []
    for name in (true_column, prediction_column):
        values = columns[name]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            raise EvaluateError(f"{path} column {name!r} has dtype {values.dtype}; regression values must be numbers")
        array = values.to_numpy(dtype=float, na_value=np.nan)
        bad_rows = np.flatnonzero(~np.isfinite(array))
        if bad_rows.size:
            raise EvaluateError(f"{path} column {name!r} is empty or not finite at rows {bad_rows[:10].tolist()}")
        arrays.append(array)
    return arrays[0], arrays[1]


def evaluate_regression(
    predictions_path: str,
    report_path: str,
    html_report_path: str | None = None,
    true_column: str = "y_true",
    prediction_column: str = "y_pred",
) -> dict[str, float]:
    """RMSE, MAE, R² and rows of the predictions in a Parquet file; writes the reports (HTML with a residual plot)."""
    y_true, y_pred = read_regression_predictions(predictions_path, true_column, prediction_column)
    metrics = regression_metrics(y_true, y_pred)
    title = f"Regression evaluation of {predictions_path}"
    if html_report_path:
        write_atomically(html_report_path, regression_html(title, metrics, y_true, y_pred))
    write_atomically(report_path, regression_markdown(title, metrics))
    return metrics


def evaluate_tabular(
    model_dir: str,
    test_path: str,
    report_path: str,
    html_report_path: str | None = None,
    task: str = "classification",
    label_column: str = "label",
    slice_column: str = "",
    calibration_bins: int = 10,
    roc_positive_class: str = "",
) -> EvaluationResult | dict[str, float]:
    """Evaluate a train_tabular model on a labelled Parquet or CSV test set; write the reports.

    A classifier gets the text classifier's evaluation (an EvaluationResult); a regressor RMSE, MAE, R², rows
    and its p10-p90 interval coverage and mean width (a dict), with a residual plot in the HTML report.
    """
    from components.train_tabular import scoring, tabular_model
    from components.train_tabular.hyperparameters import TabularError

    if calibration_bins < 1:
        raise EvaluateError(f"calibration_bins must be at least 1, got {calibration_bins}")
    try:
        model = tabular_model.load(Path(model_dir))
        frame = scoring.read_labelled(test_path, label_column)
    except TabularError as error:
        raise EvaluateError(str(error)) from error
    if model.manifest["task"] != task:
        raise EvaluateError(f"{model_dir} is a tabular {model.manifest['task']} model, but task is {task!r}")
    title = f"Evaluation of {model_dir} on {test_path}"
    try:  # TabularError (features) and evaluate_predictions' own checks are ValueErrors
        if task == "regression":
            evaluation = scoring.regression_evaluation(model, frame, label_column)
        else:
            result = scoring.classification_evaluation(
                model, frame, label_column, calibration_bins=calibration_bins,
                roc_positive_class=roc_positive_class, slice_column=slice_column,
            )  # fmt: skip
    except ValueError as error:
        raise EvaluateError(f"{test_path}: {error}") from error
    if task == "classification":
        if html_report_path:
            write_atomically(html_report_path, html_report(title, result))
        write_atomically(report_path, markdown_report(title, result))
        return result
    if html_report_path:
        write_atomically(
            html_report_path, regression_html(title, evaluation.metrics, evaluation.y_true, evaluation.y_pred)
        )
    write_atomically(report_path, regression_markdown(title, evaluation.metrics))
    return evaluation.metrics


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to a hidden sibling, then rename it into place: a file at ``path`` is always complete."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    staging.write_text(text)
    os.replace(staging, target)


def _read_columns(path: str, columns: list[str]) -> pd.DataFrame:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise EvaluateError(f"{path} is not a readable Parquet file: {error}") from error
    for column in columns:
        if column not in schema.names:
            raise EvaluateError(f"{path} has no column {column!r}; its columns are {schema.names}")
    frame = pq.read_table(path, columns=columns).to_pandas()
    if frame.empty:
        raise EvaluateError(f"{path} has no rows")
    return frame
