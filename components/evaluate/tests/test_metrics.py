from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn import metrics as sk

from components.evaluate.metrics import classification_scores, confusion_matrix


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
