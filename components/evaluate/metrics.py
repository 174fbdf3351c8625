"""Classification metrics from true and predicted label names, in plain numpy.

Conventions follow scikit-learn: the confusion matrix has true labels as rows and predicted labels as
columns; a ratio with a zero denominator is 0; macro and weighted averages run over the labels that
occur in the true or the predicted labels (a label with neither has no say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationScores:
    labels: list[str]
    """Row and column order of ``confusion_matrix`` and the order of ``per_class``."""
    confusion_matrix: list[list[int]]
    """``confusion_matrix[i][j]``: rows whose true label is ``labels[i]`` and predicted label ``labels[j]``."""
    per_class: list[ClassScores]
    accuracy: float
    macro_f1: float
    weighted_f1: float
    rows: int


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows are true labels, columns predicted labels, both in ``labels`` order."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    index = {label: position for position, label in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError(f"labels are not distinct: {list(labels)}")
    missing = sorted((set(y_true) | set(y_pred)) - index.keys())
    if missing:
        raise ValueError(f"labels {missing} occur in the data but not in {list(labels)}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[label] for label in y_true], [index[label] for label in y_pred]), 1)
    return matrix


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> ClassificationScores:
    """Accuracy, macro and weighted F1, per-class precision/recall/F1/support and the confusion matrix."""
    if not y_true:
        raise ValueError("no rows to score")
    matrix = confusion_matrix(y_true, y_pred, labels)
    true_positives = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    return ClassificationScores(
        labels=list(labels),
        confusion_matrix=matrix.tolist(),
        per_class=[
            ClassScores(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        ],
        accuracy=float(true_positives.sum() / len(y_true)),
        macro_f1=float(f1[present].mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        rows=len(y_true),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)
