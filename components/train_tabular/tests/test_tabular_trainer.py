import json
import os
import re
import shutil

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from components.train_tabular import hyperparameters, tabular_model
from components.train_tabular.hyperparameters import TabularError
from components.train_tabular.tabular_trainer import read_table, train_tabular_model
from kfp_mlops import demo_tasks

ALGORITHMS = ["xgboost", "random_forest", "svm", "linear"]
SMALL = {
    "xgboost": {"n_estimators": 40, "max_depth": 4},
    "random_forest": {"n_estimators": 40},
    "svm": {},
    "linear": {},
}


def train(paths, out, algorithm, task, target, features=None, extra=None, seed=0):
    return train_tabular_model(
        *paths, out, task=task, target_column=target, feature_columns=features, algorithm=algorithm,
        hyperparameters={**SMALL[algorithm], **(extra or {})}, seed=seed, num_threads=1,
    )


def assert_reloads_identically(result, model_dir, eval_path):
    frame = read_table(eval_path)
    reloaded = tabular_model.load(model_dir)
    assert np.array_equal(reloaded.predict(frame), result.model.predict(frame))
    if result.model.manifest["task"] == "classification":
        assert np.array_equal(reloaded.predict_proba(frame), result.model.predict_proba(frame))
    else:
        assert np.array_equal(reloaded.predict_interval(frame), result.model.predict_interval(frame))
    return reloaded


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_classifier_beats_majority_class_on_breast_cancer(algorithm, breast_cancer_files, tmp_path, capsys):
    result = train(breast_cancer_files, tmp_path / "model", algorithm, "classification", "diagnosis")
    metrics = result.metrics
    assert metrics["eval_accuracy"] > metrics["baseline_accuracy"] + 0.25  # majority class: ~0.63
    assert metrics["eval_macro_f1"] > 0.9 and metrics["eval_roc_auc"] > 0.95
    reloaded = assert_reloads_identically(result, tmp_path / "model", breast_cancer_files[1])
    assert reloaded.classes == ["benign", "malignant"]
    line = re.escape(f"eval_accuracy={metrics['eval_accuracy']:.6g}")
    assert any(re.fullmatch(rf"\S+Z {line}", printed) for printed in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_regressor_beats_mean_predictor_on_diabetes_with_intervals(algorithm, diabetes_files, tmp_path):
    result = train(diabetes_files, tmp_path / "model", algorithm, "regression", "progression")
    metrics = result.metrics
    assert metrics["eval_rmse"] < 0.9 * metrics["baseline_rmse"]
    assert metrics["eval_mae"] < metrics["baseline_mae"] and metrics["eval_r2"] > 0.25
    assert 0.5 < metrics["eval_interval_coverage"] < 0.98  # nominal p10-p90: 0.8
    reloaded = assert_reloads_identically(result, tmp_path / "model", diabetes_files[1])
    bounds = reloaded.predict_interval(read_table(diabetes_files[1]))
    assert (bounds[:, 0] <= bounds[:, 1]).all()
    assert {"name": "sex", "type": "categorical"} in reloaded.manifest["features"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_demo_tasks_priority_and_duration(algorithm, demo_files, tmp_path):
    priority = train(demo_files, tmp_path / "priority", algorithm, "classification", "priority", demo_tasks.FEATURES)
    assert priority.metrics["eval_macro_f1"] > priority.metrics["baseline_macro_f1"] + 0.1
    assert priority.metrics["eval_roc_auc"] > 0.58
    assert priority.model_metadata["labels"] == ["critical", "high", "low", "medium"]
    duration = train(
        demo_files, tmp_path / "duration", algorithm, "regression", "duration_s", demo_tasks.FEATURES,
        {"target_transform": "log1p"},
    )
    assert duration.metrics["eval_r2"] > 0.3
    assert duration.metrics["eval_mae"] < 0.7 * duration.metrics["baseline_mae"]
    assert_reloads_identically(duration, tmp_path / "duration", demo_files[1])


def test_balanced_class_weights_find_the_rare_class(demo_files, tmp_path):
    features = demo_tasks.FEATURES
    balanced = train(demo_files, tmp_path / "balanced", "linear", "classification", "outcome", features)
    unweighted = {"class_weight": "none"}
    plain = train(demo_files, tmp_path / "plain", "linear", "classification", "outcome", features, unweighted)
    assert balanced.metrics["eval_macro_f1"] > plain.metrics["eval_macro_f1"] + 0.03
    frame = read_table(demo_files[1])
    assert (balanced.model.predict(frame) == "failed").sum() > (plain.model.predict(frame) == "failed").sum()


def test_manifest_describes_the_model_and_its_files(demo_files, tmp_path):
    result = train(demo_files, tmp_path / "model", "xgboost", "regression", "duration_s")  # default features
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest == result.manifest
    assert (manifest["family"], manifest["task"]) == ("tabular", "regression")  # how servers and gates tell kinds apart
    assert {"task_id", "submit_time"} <= set(manifest["dropped_columns"])  # identifiers: mostly distinct values
    assert {"name": "requested_memory_gb", "type": "numeric"} in manifest["features"]
    assert {"name": "queue", "type": "categorical"} in manifest["features"]
    assert manifest["framework"] == "xgboost" and manifest["versions"]["xgboost"]
    assert set(manifest["files"]) == {"preprocessor", "estimator", "interval"}
    for entry in manifest["files"].values():
        assert tabular_model.sha256(tmp_path / "model" / entry["path"]) == entry["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial directory left behind


def test_same_seed_same_model(breast_cancer_files, tmp_path):
    frame = read_table(breast_cancer_files[1])
    first, again, other = (
        train(breast_cancer_files, tmp_path / name, "random_forest", "classification", "diagnosis", seed=seed)
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    )
    assert np.array_equal(first.model.predict_proba(frame), again.model.predict_proba(frame))
    assert not np.array_equal(first.model.predict_proba(frame), other.model.predict_proba(frame))


@pytest.fixture(scope="module")
def sklearn_model_dir(diabetes_files, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("saved") / "model"
    train(diabetes_files, model_dir, "linear", "regression", "progression")
    return model_dir


def _replace_estimator(model_dir, obj, update_manifest: bool):
    manifest_path = model_dir / "model.json"
    manifest = json.loads(manifest_path.read_text())
    path = model_dir / manifest["files"]["estimator"]["path"]
    sio.dump(obj, path)
    if update_manifest:
        manifest["files"]["estimator"]["sha256"] = tabular_model.sha256(path)
        manifest_path.write_text(json.dumps(manifest))


def test_loading_refuses_an_untrusted_type(sklearn_model_dir, tmp_path):
    model_dir = shutil.copytree(sklearn_model_dir, tmp_path / "model")
    _replace_estimator(model_dir, FunctionTransformer(func=os.system), update_manifest=True)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException, match="posix.system"):
        tabular_model.load(model_dir)


def test_loading_refuses_a_changed_file(sklearn_model_dir, tmp_path):
    model_dir = shutil.copytree(sklearn_model_dir, tmp_path / "model")
    _replace_estimator(model_dir, FunctionTransformer(), update_manifest=False)
    with pytest.raises(TabularError, match="estimator.skops.*sha256"):
        tabular_model.load(model_dir)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target_column": "nope"}, r"train.csv: missing target column 'nope'"),
        ({"algorithm": "lightgbm"}, r"unknown algorithm 'lightgbm'"),
        ({"task": "ranking"}, r"unknown task 'ranking'"),
        ({"hyperparameters": '{"max_dept": 3}'}, r"unknown field\(s\) \['max_dept'\]"),
        ({"algorithm": "xgboost", "hyperparameters": '{"max_depth": 0}'}, r"'max_depth' must be in \[1"),
        ({"algorithm": "xgboost", "hyperparameters": '{"learning_rate": "fast"}'}, r"'learning_rate' must be a float"),
        ({"hyperparameters": '{"class_weight": "auto"}'}, r"'class_weight' must be one of"),
        ({"hyperparameters": "[1, 2]"}, r"hyperparameters must be a JSON object"),
        ({"hyperparameters": "{oops"}, r"hyperparameters is not valid JSON"),
        ({"feature_columns": ["queue", "gpu_count"]}, r"missing feature column\(s\) \['gpu_count'\]"),
        ({"feature_columns": ["queue", "priority"]}, r"must not include the target column 'priority'"),
        (
            {"task": "regression", "target_column": "queue", "feature_columns": ["task_type"]},
            r"target column 'queue' must be numeric",
        ),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(overrides, message, demo_files, tmp_path):
    arguments = dict(task="classification", target_column="priority", feature_columns=demo_tasks.FEATURES,
                     algorithm="linear", hyperparameters="", num_threads=1)
    with pytest.raises(TabularError, match=message):
        train_tabular_model(*demo_files, tmp_path / "model", **{**arguments, **overrides})
    assert list(tmp_path.iterdir()) == []


def test_eval_labels_unknown_to_train_are_named(demo_files, tmp_path):
    frame = read_table(demo_files[1])
    frame.loc[3, "priority"] = "urgent"
    frame.to_csv(tmp_path / "eval.csv", index=False)
    with pytest.raises(TabularError, match=r"eval.csv: labels \['urgent'\] of column 'priority'"):
        train_tabular_model(demo_files[0], tmp_path / "eval.csv", tmp_path / "model", algorithm="linear",
                            feature_columns=demo_tasks.FEATURES, num_threads=1)
    assert not (tmp_path / "model").exists()


def test_tuned_parameters_are_typed_and_task_specific():
    resolved = hyperparameters.resolve("random_forest", "classification", '{"n_estimators": 300.0, "max_depth": null}')
    assert resolved["n_estimators"] == 300 and isinstance(resolved["n_estimators"], int)
    assert resolved["max_depth"] is None and resolved["class_weight"] == "balanced"
    with pytest.raises(TabularError, match=r"unknown field\(s\) \['epsilon'\]"):
        hyperparameters.resolve("svm", "classification", {"epsilon": 0.2})
    with pytest.raises(TabularError, match=r"'n_estimators' must be an integer"):
        hyperparameters.resolve("xgboost", "regression", {"n_estimators": 10.5})
