"""Evaluate a text classifier (a Hugging Face model dir) on a labelled Parquet test set."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.evaluate.metrics import ClassificationScores, classification_scores
from components.evaluate.predict import load_classifier, predict_labels
from components.evaluate.report import markdown_report
from components.train.labels import label_names


class EvaluateError(ValueError):
    """Bad evaluation input; the message names the file, column or rows."""


@dataclass(frozen=True)
class EvaluationResult:
    metrics: dict[str, float]
    """``accuracy``, ``macro_f1``, ``weighted_f1`` and ``test_rows``."""
    scores: ClassificationScores
    """Per-class scores and the confusion matrix; labels are the model's in id order, then unseen test labels."""
    unseen_labels: dict[str, int]
    """Test labels the model cannot predict, with their row counts."""


def read_labelled_texts(path: str, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """Texts and labels (as strings, as the train component maps them) of one Parquet file."""
    if text_column == label_column:
        raise EvaluateError(f"text_column and label_column are both {text_column!r}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise EvaluateError(f"{path} is not a readable Parquet file: {error}") from error
    for column in (text_column, label_column):
        if column not in schema.names:
            raise EvaluateError(f"{path} has no column {column!r}; its columns are {schema.names}")
    frame = pq.read_table(path, columns=[text_column, label_column]).to_pandas()
    if frame.empty:
        raise EvaluateError(f"{path} has no rows")
    texts = frame[text_column]
    null_rows = texts.index[texts.isna()].tolist()
    if null_rows:
        raise EvaluateError(f"{path} column {text_column!r} is empty at rows {null_rows[:10]}")
    if not pd.api.types.is_string_dtype(texts):
        raise EvaluateError(f"{path} column {text_column!r} has dtype {texts.dtype}; texts must be strings")
    return texts.tolist(), label_names(frame[label_column], f"{path} column {label_column!r}")


def evaluate_classifier(
    model_dir: str,
    test_path: str,
    report_path: str,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
) -> EvaluationResult:
    """Predict every test row, score the predictions, write the Markdown report (last, via a rename)."""
    texts, true_labels = read_labelled_texts(test_path, text_column, label_column)
    classifier = load_classifier(model_dir)
    predicted = predict_labels(classifier, texts, batch_size)
    known = set(classifier.labels)
    unseen = Counter(label for label in true_labels if label not in known)
    unseen_labels = dict(sorted(unseen.items()))
    scores = classification_scores(true_labels, predicted, [*classifier.labels, *unseen_labels])
    metrics = {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "weighted_f1": scores.weighted_f1,
        "test_rows": scores.rows,
    }
    report = Path(report_path)
    report.parent.mkdir(parents=True, exist_ok=True)
    staging = report.with_name(f".{report.name}.tmp")
    staging.write_text(markdown_report(f"Evaluation of {model_dir} on {test_path}", scores, unseen_labels))
    os.replace(staging, report)
    return EvaluationResult(metrics, scores, unseen_labels)
