from __future__ import annotations

import random
import re
from pathlib import Path

import pandas as pd
import pytest

from components.evaluate.evaluate import EvaluateError, evaluate_classifier, read_labelled_texts
from components.evaluate.metrics import classification_scores
from components.evaluate.predict import ModelDirError, load_classifier, predict_labels
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
    assert predict_labels(classifier, texts, batch_size=2) == ["pos", "neg", "pos", "neg", "pos"]
    assert predict_labels(classifier, texts, batch_size=64) == predict_labels(classifier, texts, batch_size=1)
    assert predict_labels(classifier, [], batch_size=4) == []


def test_end_to_end_with_unseen_test_labels(model_dir: Path, tmp_path: Path) -> None:
    test = toy_frame(20, seed=3)
    test.loc[[0, 1], "label"] = "neutral"  # texts still read as neg/pos, the model cannot say "neutral"
    test.loc[2, "label"] = "mixed"
    test.to_parquet(tmp_path / "test.parquet")
    report_path = tmp_path / "out" / "report.md"

    result = evaluate_classifier(str(model_dir), str(tmp_path / "test.parquet"), str(report_path), batch_size=4)

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
        "test_rows": 20,
    }

    report = report_path.read_text()
    assert "3 of 20 test rows have labels the model was not trained on: 'mixed' (1 rows), 'neutral' (2 rows)" in report
    assert f"| accuracy | {17 / 20:.4f} |" in report
    assert "| true \\ predicted | neg | pos | mixed | neutral |" in report
    assert re.search(r"^\| neutral \| 1 \| 1 \| 0 \| 0 \|$", report, re.MULTILINE)
    assert not list(report_path.parent.glob(".*tmp"))


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
        read_labelled_texts(str(path), "text", "label")
    with pytest.raises(EvaluateError, match=r"has no column 'target'"):
        read_labelled_texts(str(path), "sentence", "target")


def test_bad_test_files_are_named(tmp_path: Path) -> None:
    nulls = tmp_path / "nulls.parquet"
    pd.DataFrame({"text": ["good", None], "label": ["pos", "neg"]}).to_parquet(nulls)
    with pytest.raises(EvaluateError, match=r"nulls.parquet column 'text' is empty at rows \[1\]"):
        read_labelled_texts(str(nulls), "text", "label")
    with pytest.raises(EvaluateError, match=r"missing.parquet is not a readable Parquet file"):
        read_labelled_texts(str(tmp_path / "missing.parquet"), "text", "label")


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
