"""scoring.py: the metrics the gate compares, on scikit-learn's breast cancer and diabetes data (no download)."""

import shutil

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from components.train_tabular import tabular_model
from components.train_tabular.hyperparameters import TabularError
from components.train_tabular.scoring import is_tabular_model, score_tabular_model
from components.train_tabular.tabular_trainer import read_table, train_tabular_model


@pytest.fixture(scope="module")
def classifier_dir(breast_cancer_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("scoring") / "classifier"
    train_tabular_model(*breast_cancer_files, out, task="classification", target_column="diagnosis",
                        algorithm="linear", num_threads=1)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def regressor_dir(diabetes_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("scoring") / "regressor"
    train_tabular_model(*diabetes_files, out, task="regression", target_column="progression", algorithm="xgboost",
                        hyperparameters={"n_estimators": 30, "max_depth": 3}, num_threads=1)  # fmt: skip
    return out


def test_classification_scores_agree_with_scikit_learn(classifier_dir, breast_cancer_files):
    scores = score_tabular_model(classifier_dir, breast_cancer_files[1], "diagnosis")
    frame = read_table(breast_cancer_files[1])
    model = tabular_model.load(classifier_dir)
    truth, predicted = frame["diagnosis"], model.predict(frame)
    assert scores["accuracy"] == pytest.approx(accuracy_score(truth, predicted)) and scores["accuracy"] > 0.9
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert scores["weighted_f1"] == pytest.approx(f1_score(truth, predicted, average="weighted"))
    # two classes: each class's one-vs-rest AUC is the binary AUC, so their mean is too
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(truth == "malignant", model.predict_proba(frame)[:, 1]))
    assert scores["test_rows"] == len(frame)


def test_regression_scores_agree_with_scikit_learn_and_cover_the_interval(regressor_dir, diabetes_files):
    scores = score_tabular_model(regressor_dir, diabetes_files[1], "progression")
    frame = read_table(diabetes_files[1])
    model = tabular_model.load(regressor_dir)
    truth, predicted = frame["progression"], model.predict(frame)
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)))
    assert scores["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert scores["r2"] == pytest.approx(r2_score(truth, predicted)) and scores["r2"] > 0.2
    bounds = model.predict_interval(frame)
    inside = ((truth >= bounds[:, 0]) & (truth <= bounds[:, 1])).mean()
    assert scores["interval_coverage"] == pytest.approx(inside) and 0.4 < inside < 1.0


def test_unknown_test_labels_count_as_errors(classifier_dir, breast_cancer_files, tmp_path):
    frame = read_table(breast_cancer_files[1])
    frame.loc[:9, "diagnosis"] = "unknown"
    frame.to_parquet(tmp_path / "test.parquet")
    scores = score_tabular_model(classifier_dir, tmp_path / "test.parquet", "diagnosis")
    correct = tabular_model.load(classifier_dir).predict(frame) == frame["diagnosis"]
    assert not correct[:10].any() and scores["accuracy"] == pytest.approx(correct.mean())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda frame: frame.drop(columns="diagnosis"), "missing target column 'diagnosis'"),
        (lambda frame: frame.assign(diagnosis=[None] * 3 + list(frame["diagnosis"][3:])),
         "target column 'diagnosis' is empty in rows [0, 1, 2]"),
        (lambda frame: frame.drop(columns="mean radius"), "missing feature column(s) ['mean radius']"),
    ],
    ids=["no target", "empty targets", "no feature"],
)
def test_bad_test_sets_are_named(change, problem, classifier_dir, breast_cancer_files, tmp_path):
    change(read_table(breast_cancer_files[1])).to_parquet(tmp_path / "test.parquet")
    with pytest.raises(TabularError) as raised:
        score_tabular_model(classifier_dir, tmp_path / "test.parquet", "diagnosis")
    assert problem in str(raised.value)


def test_only_a_tabular_manifest_is_a_tabular_model(classifier_dir, tmp_path):
    assert is_tabular_model(classifier_dir)
    other = shutil.copytree(classifier_dir, tmp_path / "other")
    (other / "model.json").write_text('{"family": "anomaly"}')
    assert not is_tabular_model(other) and not is_tabular_model(tmp_path / "absent")
