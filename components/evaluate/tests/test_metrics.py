from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn import metrics as sk

from components.evaluate.metrics import (
    MAX_ROC_POINTS,
    calibration,
    classification_scores,
    confusion_matrix,
    evaluate_predictions,
    regression_metrics,
    roc_curve,
)


def test_hand_computed_example() -> None:
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    scores = classification_scores(y_true, y_pred, ["a", "b", "c"])
    assert scores.confusion_matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert [(row.label, row.support) for row in scores.per_class] == [("a", 3), ("b", 2), ("c", 1)]
    assert [row.precision for row in scores.per_class] == pytest.approx([1.0, 0.5, 0.5])
    assert [row.recall for row in scores.per_class] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [row.f1 for row in scores.per_class] == pytest.approx([0.8, 0.5, 2 / 3])
    assert scores.accuracy == pytest.approx(4 / 6)
    assert scores.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores.weighted_f1 == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3 * 1) / 6)
    assert scores.rows == 6


def test_rows_are_true_labels_and_columns_predicted_labels() -> None:
    matrix = confusion_matrix(["cat", "cat", "dog"], ["dog", "dog", "dog"], ["cat", "dog"])
    assert matrix.tolist() == [[0, 2], [0, 1]]  # both cats were called dogs: row cat, column dog


def test_label_without_rows_or_predictions_is_left_out_of_averages() -> None:
    scores = classification_scores(["a", "b"], ["a", "a"], ["a", "b", "never"])
    never = scores.per_class[2]
    assert (never.precision, never.recall, never.f1, never.support) == (0.0, 0.0, 0.0, 0)
    # a: precision 1/2, recall 1, F1 2/3; b: never predicted, F1 0; "never" has no say.
    assert scores.macro_f1 == pytest.approx((2 / 3 + 0) / 2)
    assert scores.confusion_matrix == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed: int) -> None:
    rng = random.Random(seed)
    labels = ["business", "sports", "tech", "world", "rare"]
    y_true = rng.choices(labels[:4], k=200)
    y_pred = [label if rng.random() < 0.6 else rng.choice(labels) for label in y_true]
    scores = classification_scores(y_true, y_pred, labels)

    assert scores.accuracy == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert scores.macro_f1 == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert scores.weighted_f1 == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    np.testing.assert_array_equal(scores.confusion_matrix, sk.confusion_matrix(y_true, y_pred, labels=labels))
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert [row.precision for row in scores.per_class] == pytest.approx(precision.tolist())
    assert [row.recall for row in scores.per_class] == pytest.approx(recall.tolist())
    assert [row.f1 for row in scores.per_class] == pytest.approx(f1.tolist())
    assert [row.support for row in scores.per_class] == support.tolist()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        confusion_matrix(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match=r"labels \['z'\] occur in the data but not in \['a', 'b'\]"):
        confusion_matrix(["a", "z"], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="not distinct"):
        confusion_matrix(["a"], ["a"], ["a", "a"])
    with pytest.raises(ValueError, match="no rows"):
        classification_scores([], [], ["a"])


def random_probabilities(rows: int, classes: int, seed: int) -> np.ndarray:
    """Rows drawn from a pool of 8 distributions, so that many scores tie, which ROC code must handle."""
    rng = np.random.default_rng(seed)
    pool = rng.dirichlet(np.ones(classes), size=8)
    return pool[rng.integers(0, len(pool), size=rows)]


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_curve_agrees_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    is_positive = rng.random(150) < 0.4
    scores = np.round(np.clip(is_positive * 0.2 + rng.random(150), 0, 1), 1)
    curve = roc_curve(is_positive, scores)
    fpr, tpr, thresholds = sk.roc_curve(is_positive, scores, drop_intermediate=True)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_allclose(curve.thresholds[1:], thresholds[1:])
    assert curve.thresholds[0] == scores.max() + 1  # scikit-learn has inf there, which JSON cannot hold
    assert curve.auc == pytest.approx(sk.roc_auc_score(is_positive, scores))


def test_roc_curve_needs_both_classes_and_thins_long_curves() -> None:
    assert roc_curve(np.array([True, True]), np.array([0.2, 0.9])) is None
    assert roc_curve(np.array([False, False]), np.array([0.2, 0.9])) is None
    rng = np.random.default_rng(3)
    curve = roc_curve(rng.random(5000) < 0.5, rng.random(5000))
    thinned = curve.thinned()
    assert len(curve.fpr) > MAX_ROC_POINTS >= len(thinned.fpr) > MAX_ROC_POINTS - 5
    assert (thinned.fpr[0], thinned.tpr[0], thinned.fpr[-1], thinned.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thinned.auc == pytest.approx(curve.auc, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_vs_rest_and_micro_roc_auc_agree_with_scikit_learn(seed: int) -> None:
    labels = ["a", "b", "c"]
    probabilities = random_probabilities(60, 3, seed)
    rng = random.Random(seed)
    y_true = [labels[int(np.argmax(row))] if rng.random() < 0.6 else rng.choice(labels) for row in probabilities]
    result = evaluate_predictions(y_true, labels, probabilities)

    assert result.roc_auc == pytest.approx(
        sk.roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro", labels=labels)
    )
    one_hot = np.array([[label == name for name in labels] for label in y_true])
    assert result.roc_name == "micro-average over all classes"
    assert result.roc.auc == pytest.approx(sk.roc_auc_score(one_hot, probabilities, average="micro"))
    assert result.metrics["roc_auc"] == result.roc_auc


def test_two_class_roc_is_the_second_labels_curve_unless_another_is_chosen() -> None:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    y_true = ["neg", "pos", "pos", "neg"]
    result = evaluate_predictions(y_true, ["neg", "pos"], probabilities)
    assert result.roc_name == "class 'pos' vs rest"
    assert result.roc.auc == pytest.approx(sk.roc_auc_score([0, 1, 1, 0], probabilities[:, 1]))
    assert result.roc_auc == pytest.approx(result.roc.auc)  # both one-vs-rest AUCs agree for two classes
    chosen = evaluate_predictions(y_true, ["neg", "pos"], probabilities, roc_positive_class="neg")
    assert chosen.roc_name == "class 'neg' vs rest"
    assert chosen.roc.tpr != result.roc.tpr
    with pytest.raises(ValueError, match=r"roc_positive_class 'maybe' is not a model label; they are \['neg', 'pos'\]"):
        evaluate_predictions(y_true, ["neg", "pos"], probabilities, roc_positive_class="maybe")


def test_unseen_labels_are_errors_and_negatives_and_absent_classes_have_no_auc() -> None:
    labels = ["a", "b", "c"]
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    y_true = ["a", "b", "new", "new"]  # no "c" rows: c has no AUC and no say in the macro average
    result = evaluate_predictions(y_true, labels, probabilities)
    assert result.unseen_labels == {"new": 2}
    assert result.scores.labels == ["a", "b", "c", "new"]
    assert result.scores.accuracy == 0.5
    assert set(result.class_roc_auc) == {"a", "b"}
    # a: positive 0.8 vs negatives 0.2, 0.6, 0.1 -> 1.0; b: positive 0.7 vs 0.1, 0.3, 0.8 -> 2/3.
    assert result.class_roc_auc == pytest.approx({"a": 1.0, "b": 2 / 3})
    assert result.roc_auc == pytest.approx(5 / 6)


def test_calibration_hand_computed() -> None:
    confidence = np.array([0.05, 0.15, 0.55, 0.55, 0.95, 1.0])
    correct = np.array([False, True, True, False, True, True])
    result = calibration(confidence, correct, bins=2)
    assert [(row.lower, row.upper, row.rows) for row in result.bins] == [(0.0, 0.5, 2), (0.5, 1.0, 4)]
    assert result.bins[1].mean_confidence == pytest.approx(0.7625)
    assert result.bins[1].accuracy == 0.75
    # bin 1: |0.5 - 0.1| = 0.4 over 2 rows; bin 2: |0.75 - 0.7625| = 0.0125 over 4 rows.
    assert result.ece == pytest.approx((2 * 0.4 + 4 * 0.0125) / 6)
    ten = calibration(confidence, correct, bins=10)
    assert ten.bin_count == 10
    assert [row.lower for row in ten.bins] == pytest.approx([0.0, 0.1, 0.5, 0.9])  # empty bins left out
    assert ten.bins[-1].rows == 2  # 1.0 falls in the last bin
    with pytest.raises(ValueError, match="bins must be at least 1"):
        calibration(confidence, correct, bins=0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        calibration(np.array([1.5]), np.array([True]), bins=2)


def test_ece_of_a_perfect_classifier_is_its_underconfidence() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    result = evaluate_predictions(["a", "b", "b"], ["a", "b"], probabilities, calibration_bins=1)
    assert result.calibration.ece == pytest.approx(1 - (0.9 + 0.8 + 0.7) / 3)
    assert result.metrics["ece"] == result.calibration.ece


def test_slices_are_scored_on_their_own_rows() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    result = evaluate_predictions(
        ["a", "b", "a", "b"], ["a", "b"], probabilities, slice_values=["en", "en", "de", "de"], slice_column="lang"
    )
    assert [(row.value, row.rows, row.accuracy) for row in result.slices] == [("de", 2, 0.0), ("en", 2, 1.0)]
    assert result.metrics["slice:lang=en:accuracy"] == 1.0
    assert result.metrics["slice:lang=de:macro_f1"] == 0.0
    assert result.metrics["slice:lang=de:rows"] == 2
    assert evaluate_predictions(["a"], ["a", "b"], np.array([[0.6, 0.4]])).slices == []


def test_probabilities_must_match_rows_and_labels() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\); expected \(2, 2\)"):
        evaluate_predictions(["a", "b"], ["a", "b"], np.ones((2, 3)) / 3)


def test_regression_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=50)
    y_pred = y_true + rng.normal(scale=0.3, size=50)
    metrics = regression_metrics(y_true, y_pred)
    assert metrics["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y_true, y_pred)))
    assert metrics["mae"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred))
    assert metrics["r2"] == pytest.approx(sk.r2_score(y_true, y_pred))
    assert metrics["rows"] == 50
    # residuals -2 and 0; the truth's mean is 1.5, so the total sum of squares is 0.5.
    hand = regression_metrics([1.0, 2.0], [3.0, 2.0])
    assert hand == {"rmse": pytest.approx(np.sqrt(2)), "mae": 1.0, "r2": pytest.approx(1 - 4 / 0.5), "rows": 2}


def test_regression_metrics_of_a_constant_truth_and_bad_input() -> None:
    assert regression_metrics([2.0, 2.0], [2.0, 2.0])["r2"] == sk.r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert regression_metrics([2.0, 2.0], [1.0, 2.0])["r2"] == sk.r2_score([2.0, 2.0], [1.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match=r"y_pred is not finite at rows \[1\]"):
        regression_metrics([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"shape \(2,\) but y_pred \(3,\)"):
        regression_metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="no rows"):
        regression_metrics([], [])
