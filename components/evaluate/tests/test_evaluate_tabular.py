"""evaluate on train_tabular models: scikit-learn's breast cancer (classification) and diabetes (regression) data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from components.evaluate.evaluate import EvaluateError, evaluate_tabular
from components.train_tabular.tabular_trainer import train_tabular_model


def split(frame: pd.DataFrame, folder: Path) -> tuple[Path, Path, Path]:
    """Seeded 60/20/20 train/eval/test Parquet files."""
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cuts = [0, int(len(frame) * 0.6), int(len(frame) * 0.8), len(frame)]
    paths = []
    for name, start, end in zip(("train", "eval", "test"), cuts, cuts[1:]):
        paths.append(folder / f"{name}.parquet")
        shuffled.iloc[start:end].to_parquet(paths[-1])
    return tuple(paths)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("breast_cancer")
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    frame["size"] = pd.cut(frame["mean area"], [0, 500, 1000, 10_000], labels=["small", "medium", "large"]).astype(str)
    train, evaluation, test = split(frame, folder)
    train_tabular_model(train, evaluation, folder / "model", task="classification", target_column="diagnosis",
                        algorithm="linear", num_threads=1)  # fmt: skip
    return folder / "model", test


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("diabetes")
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    train, evaluation, test = split(frame, folder)
    train_tabular_model(train, evaluation, folder / "model", task="regression", target_column="progression",
                        algorithm="random_forest", hyperparameters={"n_estimators": 30}, num_threads=1)  # fmt: skip
    return folder / "model", test


def test_a_tabular_classifier_gets_the_text_classifiers_evaluation(classifier, tmp_path: Path) -> None:
    model_dir, test = classifier
    result = evaluate_tabular(str(model_dir), str(test), str(tmp_path / "report.md"), str(tmp_path / "report.html"),
                              task="classification", label_column="diagnosis", slice_column="size")  # fmt: skip
    assert result.scores.labels == ["benign", "malignant"] and result.metrics["accuracy"] > 0.9
    assert result.metrics["roc_auc"] > 0.95 and 0 <= result.metrics["ece"] < 0.2
    assert sum(map(sum, result.scores.confusion_matrix)) == result.metrics["test_rows"] == 114
    assert result.roc is not None and result.roc_name == "class 'malignant' vs rest"
    assert {row.value for row in result.slices} <= {"small", "medium", "large"}
    markdown = (tmp_path / "report.md").read_text()
    assert "## Confusion matrix" in markdown and "## Slices by size" in markdown
    assert "<svg" in (tmp_path / "report.html").read_text()


def test_a_tabular_regressor_reports_interval_coverage_and_residuals(regressor, tmp_path: Path) -> None:
    model_dir, test = regressor
    metrics = evaluate_tabular(str(model_dir), str(test), str(tmp_path / "report.md"), str(tmp_path / "report.html"),
                               task="regression", label_column="progression")  # fmt: skip
    assert set(metrics) == {"rmse", "mae", "r2", "rows", "interval_coverage", "interval_width"}
    assert metrics["r2"] > 0.2 and metrics["rows"] == 89 and 0.4 < metrics["interval_coverage"] < 1.0
    assert metrics["interval_width"] > 0
    assert "p10-p90 interval coverage" in (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "Residuals" in html and "<svg" in html


def test_the_task_must_be_the_models(regressor, tmp_path: Path) -> None:
    model_dir, test = regressor
    with pytest.raises(EvaluateError, match="is a tabular regression model, but task is 'classification'"):
        evaluate_tabular(str(model_dir), str(test), str(tmp_path / "report.md"), label_column="progression")
    assert not (tmp_path / "report.md").exists()


def test_a_test_set_without_the_target_is_named_and_writes_nothing(classifier, tmp_path: Path) -> None:
    model_dir, test = classifier
    pd.read_parquet(test).drop(columns="diagnosis").to_parquet(tmp_path / "test.parquet")
    with pytest.raises(EvaluateError, match="missing target column 'diagnosis'"):
        evaluate_tabular(str(model_dir), str(tmp_path / "test.parquet"), str(tmp_path / "report.md"),
                         label_column="diagnosis")  # fmt: skip
    assert not (tmp_path / "report.md").exists()
