from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluate.evaluate import (
    MAX_SLICES,
    EvaluateError,
    evaluate_classifier,
    evaluate_regression,
    read_test_set,
)
from components.evaluate.metrics import classification_scores
from components.evaluate.predict import ModelDirError, load_classifier, predict_probabilities
from components.train.text_trainer import TrainConfig, train_text_classifier

POSITIVE = ["good", "great", "nice", "lovely", "excellent"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "horrible"]


def toy_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = ["pos" if index % 2 else "neg" for index in range(rows)]
    texts = [" ".join(rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=rng.randint(2, 6))) for label in labels]
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT trained by the train component on a separable toy set: it classifies it perfectly."""
    folder = tmp_path_factory.mktemp("model")
    toy_frame(48, seed=1).to_parquet(folder / "train.parquet")
    toy_frame(16, seed=2).to_parquet(folder / "eval.parquet")
    config = TrainConfig(
        train_path=str(folder / "train.parquet"),
        eval_path=str(folder / "eval.parquet"),
        model_dir=str(folder / "model"),
        base_model="tiny",
        epochs=4,
        batch_size=8,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        max_length=16,
        num_threads=1,
    )
    assert train_text_classifier(config).metrics["eval_accuracy"] == 1.0
    return Path(config.model_dir)


def test_predictions_keep_input_order_across_length_sorted_batches(model_dir: Path) -> None:
    classifier = load_classifier(model_dir)
    assert classifier.labels == ("neg", "pos")
    assert classifier.max_length == 16
    texts = ["good", "awful terrible bad poor horrible bad", "nice lovely", "bad", "great great great excellent good"]
    probabilities = predict_probabilities(classifier, texts, batch_size=2)
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert [classifier.labels[index] for index in probabilities.argmax(axis=1)] == ["pos", "neg", "pos", "neg", "pos"]
    np.testing.assert_allclose(
        predict_probabilities(classifier, texts, batch_size=64),
        predict_probabilities(classifier, texts, batch_size=1),
        atol=1e-5,
    )
    assert predict_probabilities(classifier, [], batch_size=4).shape == (0, 2)


def test_end_to_end_with_unseen_test_labels(model_dir: Path, tmp_path: Path) -> None:
    test = toy_frame(20, seed=3)
    test.loc[[0, 1], "label"] = "neutral"  # texts still read as neg/pos, the model cannot say "neutral"
    test.loc[2, "label"] = "mixed"
    test.to_parquet(tmp_path / "test.parquet")
    report_path = tmp_path / "out" / "report.md"

    html_path = tmp_path / "out" / "report.html"
    result = evaluate_classifier(
        str(model_dir), str(tmp_path / "test.parquet"), str(report_path), batch_size=4, html_report_path=str(html_path)
    )

    # The model is perfect on neg/pos, so exactly the 3 unseen-label rows are errors.
    assert result.metrics["test_rows"] == 20
    assert result.metrics["accuracy"] == pytest.approx(17 / 20)
    assert result.unseen_labels == {"mixed": 1, "neutral": 2}
    assert result.scores.labels == ["neg", "pos", "mixed", "neutral"]
    predicted = [
        label if label in ("neg", "pos") else ("pos" if index % 2 else "neg")
        for index, label in enumerate(test["label"])
    ]
    expected = classification_scores(test["label"].tolist(), predicted, result.scores.labels)
    assert result.scores == expected
    assert result.metrics == {
        "accuracy": expected.accuracy,
        "macro_f1": expected.macro_f1,
        "weighted_f1": expected.weighted_f1,
        "roc_auc": result.roc_auc,
        "ece": result.calibration.ece,
        "test_rows": 20,
    }
    assert result.roc_name == "class 'pos' vs rest"
    assert 0.5 < result.roc_auc <= 1.0

    report = report_path.read_text()
    assert "3 of 20 test rows have labels the model was not trained on: 'mixed' (1 rows), 'neutral' (2 rows)" in report
    assert f"| accuracy | {17 / 20:.4f} |" in report
    assert "| true \\\\ predicted | neg | pos | mixed | neutral |" in report
    assert re.search(r"^\| neutral \| 1 \| 1 \| 0 \| 0 \|$", report, re.MULTILINE)
    assert not list(report_path.parent.glob(".*tmp"))
    page = html_path.read_text()
    assert page.count("<svg") == 3 and "<script" not in page


def test_a_perfect_model_has_auc_1_and_ece_of_its_underconfidence(model_dir: Path, tmp_path: Path) -> None:
    test = toy_frame(12, seed=5).assign(source=["web", "mail", "chat"] * 4)
    test.to_parquet(tmp_path / "test.parquet")
    result = evaluate_classifier(
        str(model_dir),
        str(tmp_path / "test.parquet"),
        str(tmp_path / "report.md"),
        slice_column="source",
        calibration_bins=5,
    )
    assert result.scores.accuracy == 1.0
    assert result.roc_auc == 1.0
    assert (result.roc.fpr[-2:], result.roc.tpr[-2:]) == ([0.0, 1.0], [1.0, 1.0])
    probabilities = predict_probabilities(load_classifier(model_dir), test["text"].tolist(), batch_size=64)
    assert result.calibration.ece == pytest.approx(1 - probabilities.max(axis=1).mean(), abs=1e-6)
    assert result.calibration.bin_count == 5
    assert [(row.value, row.rows, row.accuracy) for row in result.slices] == [
        ("chat", 4, 1.0),
        ("mail", 4, 1.0),
        ("web", 4, 1.0),
    ]
    assert result.metrics["slice:source=mail:rows"] == 4
    assert "## Slices by source" in (tmp_path / "report.md").read_text()


def test_an_unknown_roc_class_fails_before_predicting(model_dir: Path, tmp_path: Path) -> None:
    toy_frame(4, seed=6).to_parquet(tmp_path / "test.parquet")
    with pytest.raises(
        EvaluateError, match=r"roc_positive_class 'maybe' is not a model label; they are \['neg', 'pos'\]"
    ):
        evaluate_classifier(
            str(model_dir), str(tmp_path / "test.parquet"), str(tmp_path / "report.md"), roc_positive_class="maybe"
        )
    assert not (tmp_path / "report.md").exists()


def test_integer_labels_match_the_models_string_labels(tmp_path: Path) -> None:
    frame = toy_frame(32, seed=4).assign(label=lambda f: (f["label"] == "pos").astype(int) * 10)
    frame.to_parquet(tmp_path / "train.parquet")
    config = TrainConfig(
        train_path=str(tmp_path / "train.parquet"),
        eval_path=str(tmp_path / "train.parquet"),
        model_dir=str(tmp_path / "model"),
        base_model="tiny",
        max_steps=1,
        num_threads=1,
    )
    train_text_classifier(config)
    result = evaluate_classifier(config.model_dir, config.train_path, str(tmp_path / "report.md"))
    assert result.scores.labels == ["0", "10"]
    assert result.unseen_labels == {}


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    path = tmp_path / "test.parquet"
    pd.DataFrame({"sentence": ["good"], "label": ["pos"]}).to_parquet(path)
    with pytest.raises(
        EvaluateError, match=rf"{re.escape(str(path))} has no column 'text'; its columns are \['sentence', 'label'\]"
    ):
        read_test_set(str(path), "text", "label")
    with pytest.raises(EvaluateError, match=r"has no column 'target'"):
        read_test_set(str(path), "sentence", "target")
    with pytest.raises(EvaluateError, match=r"has no column 'lang'"):
        read_test_set(str(path), "sentence", "label", slice_column="lang")


def test_bad_test_files_are_named(tmp_path: Path) -> None:
    nulls = tmp_path / "nulls.parquet"
    pd.DataFrame({"text": ["good", None], "label": ["pos", "neg"]}).to_parquet(nulls)
    with pytest.raises(EvaluateError, match=r"nulls.parquet column 'text' is empty at rows \[1\]"):
        read_test_set(str(nulls), "text", "label")
    with pytest.raises(EvaluateError, match=r"missing.parquet is not a readable Parquet file"):
        read_test_set(str(tmp_path / "missing.parquet"), "text", "label")


def test_slice_values_are_strings_and_id_like_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "test.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"], "tier": [1.0, None, 2.0]}).to_parquet(path)
    assert read_test_set(str(path), slice_column="tier").slice_values == ["1.0", "null", "2.0"]
    assert read_test_set(str(path)).slice_values is None
    rows = MAX_SLICES + 1
    pd.DataFrame({"text": ["a"] * rows, "label": ["x"] * rows, "id": range(rows)}).to_parquet(path)
    with pytest.raises(
        EvaluateError, match=rf"column 'id' has {rows} distinct values; slicing takes at most {MAX_SLICES}"
    ):
        read_test_set(str(path), slice_column="id")


def test_bad_model_dirs_are_named(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match=rf"{re.escape(str(tmp_path))} is not a Hugging Face model directory"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ModelDirError, match=r"has no .safetensors weights"):
        load_classifier(tmp_path)


def test_report_is_not_written_when_evaluation_fails(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "test.parquet"
    pd.DataFrame({"text": ["good"]}).to_parquet(path)
    with pytest.raises(EvaluateError):
        evaluate_classifier(str(model_dir), str(path), str(tmp_path / "report.md"))
    assert not (tmp_path / "report.md").exists()


def test_regression_predictions_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.parquet"
    pd.DataFrame({"y_true": [1, 2, 3, 4], "y_pred": [1.5, 2.0, 2.0, 4.5]}).to_parquet(path)
    metrics = evaluate_regression(str(path), str(tmp_path / "report.md"), str(tmp_path / "report.html"))
    assert metrics == {"rmse": pytest.approx(np.sqrt(1.5 / 4)), "mae": 0.5, "r2": pytest.approx(1 - 1.5 / 5), "rows": 4}
    assert "| MAE | 0.5000 |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").read_text().count('class="point"') == 4


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ({"y_true": [1.0], "prediction": [1.0]}, r"has no column 'y_pred'; its columns are \['y_true', 'prediction'\]"),
        ({"y_true": ["1"], "y_pred": [1.0]}, r"column 'y_true' has dtype .*; regression values must be numbers"),
        (
            {"y_true": [1.0, 2.0, 3.0], "y_pred": [1.0, None, float("inf")]},
            r"column 'y_pred' is empty or not finite at rows \[1, 2\]",
        ),
        ({"y_true": [True], "y_pred": [1.0]}, r"column 'y_true' has dtype bool"),
    ],
)
def test_bad_regression_files_are_named_and_write_nothing(tmp_path: Path, frame: dict, error: str) -> None:
    path = tmp_path / "predictions.parquet"
    pd.DataFrame(frame).to_parquet(path)
    with pytest.raises(EvaluateError, match=re.escape(str(path)) + " " + error):
        evaluate_regression(str(path), str(tmp_path / "report.md"), str(tmp_path / "report.html"))
    assert not list(tmp_path.glob("report*"))
