"""Classification and regression metrics in plain numpy: scores, ROC, calibration, slices.

Conventions follow scikit-learn: the confusion matrix has true labels as rows and predicted labels as
columns; a ratio with a zero denominator is 0; macro and weighted averages run over the labels that
occur in the true or the predicted labels (a label with neither has no say).
"""

from __future__ import annotations

from collections import Counter
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


MAX_ROC_POINTS = 201
"""Points of a logged ROC curve; longer curves are thinned evenly (the AUC uses every point)."""


@dataclass(frozen=True)
class RocCurve:
    """An ROC curve, from (0, 0) to (1, 1), with thresholds falling.

    A row is called positive when its score is at least the threshold. The first point's threshold is
    the highest score + 1 (as scikit-learn before 1.3), so every number is finite and JSON-safe.
    """

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]

    @property
    def auc(self) -> float:
        return float(np.trapezoid(self.tpr, self.fpr))

    def thinned(self, max_points: int = MAX_ROC_POINTS) -> RocCurve:
        """At most ``max_points`` points, evenly spread along the curve; the first and last are kept."""
        if len(self.fpr) <= max_points:
            return self
        keep = np.unique(np.linspace(0, len(self.fpr) - 1, max_points).round().astype(int))
        return RocCurve(*([values[index] for index in keep] for values in (self.fpr, self.tpr, self.thresholds)))


def roc_curve(is_positive: np.ndarray, scores: np.ndarray) -> RocCurve | None:
    """The ROC curve of binary truths and scores, without collinear points; None without both classes."""
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    positives = int(is_positive.sum())
    negatives = is_positive.size - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # The last row of each run of equal scores: a threshold there counts the whole run.
    run_ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(is_positive[order])[run_ends]
    false_positives = run_ends + 1 - true_positives
    true_positives = np.r_[0, true_positives]
    false_positives = np.r_[0, false_positives]
    thresholds = np.r_[sorted_scores[0] + 1, sorted_scores[run_ends]]
    corners = np.r_[True, np.diff(false_positives, 2) != 0, True] | np.r_[True, np.diff(true_positives, 2) != 0, True]
    return RocCurve(
        fpr=(false_positives[corners] / negatives).tolist(),
        tpr=(true_positives[corners] / positives).tolist(),
        thresholds=thresholds[corners].tolist(),
    )


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    rows: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True)
class Calibration:
    bins: list[CalibrationBin]
    """The non-empty bins, in order of confidence."""
    ece: float
    """Expected calibration error: the row-weighted mean of |accuracy - mean confidence| over the bins."""
    bin_count: int
    """Bins the confidence range was cut into, empty ones included."""


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int) -> Calibration:
    """Bin rows by confidence into ``bins`` equal-width bins [lower, upper) of [0, 1] (the last includes 1)."""
    if bins < 1:
        raise ValueError(f"calibration bins must be at least 1, got {bins}")
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidence.size == 0:
        raise ValueError("no rows to calibrate")
    if confidence.shape != correct.shape:
        raise ValueError(f"{confidence.size} confidences but {correct.size} correctness flags")
    if not np.all((confidence >= 0) & (confidence <= 1)):
        raise ValueError("confidences must lie in [0, 1]")
    bin_of_row = np.minimum((confidence * bins).astype(int), bins - 1)
    result = []
    ece = 0.0
    for index in np.unique(bin_of_row):
        in_bin = bin_of_row == index
        rows = int(in_bin.sum())
        mean_confidence = float(confidence[in_bin].mean())
        accuracy = float(correct[in_bin].mean())
        ece += rows / confidence.size * abs(accuracy - mean_confidence)
        result.append(CalibrationBin(index / bins, (index + 1) / bins, rows, mean_confidence, accuracy))
    return Calibration(result, float(ece), bins)


@dataclass(frozen=True)
class SliceScores:
    value: str
    rows: int
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class EvaluationResult:
    """Everything measured about one classifier on one labelled test set."""

    scores: ClassificationScores
    """Per-class scores and the confusion matrix; labels are the model's in id order, then unseen test labels."""
    unseen_labels: dict[str, int]
    """Test labels the model cannot predict, with their row counts (all errors)."""
    class_roc_auc: dict[str, float]
    """One-vs-rest ROC-AUC of each model label that has both positive and negative test rows."""
    roc: RocCurve | None
    """The logged curve: see :func:`evaluate_predictions`. None when it is undefined."""
    roc_name: str
    """What ``roc`` plots: ``"class 'x' vs rest"`` or ``"micro-average over all classes"``."""
    calibration: Calibration
    slice_column: str
    slices: list[SliceScores]

    @property
    def roc_auc(self) -> float | None:
        """Macro average of ``class_roc_auc``; None when no class has one."""
        return float(np.mean(list(self.class_roc_auc.values()))) if self.class_roc_auc else None

    @property
    def metrics(self) -> dict[str, float]:
        """Scalars for a KFP Metrics artifact: no NaN (``roc_auc`` is left out when undefined)."""
        metrics: dict[str, float] = {
            "accuracy": self.scores.accuracy,
            "macro_f1": self.scores.macro_f1,
            "weighted_f1": self.scores.weighted_f1,
        }
        if self.roc_auc is not None:
            metrics["roc_auc"] = self.roc_auc
        metrics["ece"] = self.calibration.ece
        metrics["test_rows"] = self.scores.rows
        for row in self.slices:
            prefix = f"slice:{self.slice_column}={row.value}:"
            metrics |= {f"{prefix}accuracy": row.accuracy, f"{prefix}macro_f1": row.macro_f1, f"{prefix}rows": row.rows}
        return metrics


def evaluate_predictions(
    true_labels: Sequence[str],
    model_labels: Sequence[str],
    probabilities: np.ndarray,
    calibration_bins: int = 10,
    roc_positive_class: str = "",
    slice_values: Sequence[str] | None = None,
    slice_column: str = "",
) -> EvaluationResult:
    """Score a classifier's class probabilities (rows: test rows; columns: ``model_labels``) against the truth.

    The predicted label is the most probable one and its probability the confidence for calibration.
    Test labels the model does not know count as errors and as negatives for every class's ROC.
    The ROC curve is the one-vs-rest curve of ``roc_positive_class``; when empty, that of the model's
    second label for a two-class model (the positive class by convention), else the micro-average
    (every row and class pair is one binary decision). ``slice_values`` (one per row) splits the rows
    into slices, each scored on its own.
    """
    labels = list(model_labels)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (len(true_labels), len(labels)):
        raise ValueError(
            f"probabilities have shape {probabilities.shape}; expected ({len(true_labels)}, {len(labels)}): "
            "one row per test row, one column per model label"
        )
    roc_class = roc_target(labels, roc_positive_class)
    predicted = [labels[index] for index in probabilities.argmax(axis=1)]
    known = set(labels)
    unseen_labels = dict(sorted(Counter(label for label in true_labels if label not in known).items()))
    all_labels = [*labels, *unseen_labels]
    column_of = {label: column for column, label in enumerate(labels)}
    true_columns = np.array([column_of.get(label, -1) for label in true_labels], dtype=int)  # -1: unseen label
    one_hot = true_columns[:, None] == np.arange(len(labels))[None, :]

    class_roc_auc = {}
    for column, label in enumerate(labels):
        curve = roc_curve(one_hot[:, column], probabilities[:, column])
        if curve is not None:
            class_roc_auc[label] = curve.auc
    if roc_class is None:
        roc = roc_curve(one_hot.ravel(), probabilities.ravel())
        roc_name = "micro-average over all classes"
    else:
        column = labels.index(roc_class)
        roc = roc_curve(one_hot[:, column], probabilities[:, column])
        roc_name = f"class '{roc_class}' vs rest"

    slices = []
    if slice_values is not None:
        if len(slice_values) != len(true_labels):
            raise ValueError(f"{len(slice_values)} slice values for {len(true_labels)} rows")
        for value in sorted(set(slice_values)):
            rows = [index for index, row_value in enumerate(slice_values) if row_value == value]
            scores = classification_scores([true_labels[i] for i in rows], [predicted[i] for i in rows], all_labels)
            slices.append(SliceScores(value, len(rows), scores.accuracy, scores.macro_f1))

    correct = np.array([truth == guess for truth, guess in zip(true_labels, predicted)], dtype=bool)
    return EvaluationResult(
        scores=classification_scores(true_labels, predicted, all_labels),
        unseen_labels=unseen_labels,
        class_roc_auc=class_roc_auc,
        roc=roc.thinned() if roc is not None else None,
        roc_name=roc_name,
        calibration=calibration(probabilities.max(axis=1), correct, calibration_bins),
        slice_column=slice_column,
        slices=slices,
    )


def roc_target(model_labels: Sequence[str], roc_positive_class: str) -> str | None:
    """The class whose one-vs-rest curve is logged, or None for the micro-average (see :func:`evaluate_predictions`)."""
    if roc_positive_class:
        if roc_positive_class not in model_labels:
            raise ValueError(
                f"roc_positive_class {roc_positive_class!r} is not a model label; they are {list(model_labels)}"
            )
        return roc_positive_class
    return model_labels[1] if len(model_labels) == 2 else None


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """``rmse``, ``mae``, ``r2`` and ``rows``.

    R² follows scikit-learn where the truth is constant: 1 for a perfect fit, else 0.
    """
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(f"y_true has shape {truth.shape} but y_pred {predicted.shape}; both must be 1-D and alike")
    if truth.size == 0:
        raise ValueError("no rows to score")
    for name, values in (("y_true", truth), ("y_pred", predicted)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name} is not finite at rows {bad[:10].tolist()}")
    residuals = truth - predicted
    residual_sum = float((residuals**2).sum())
    total_sum = float(((truth - truth.mean()) ** 2).sum())
    if total_sum > 0:
        r2 = 1 - residual_sum / total_sum
    else:
        r2 = 1.0 if residual_sum == 0 else 0.0
    return {
        "rmse": float(np.sqrt(residual_sum / truth.size)),
        "mae": float(np.abs(residuals).mean()),
        "r2": r2,
        "rows": truth.size,
    }
