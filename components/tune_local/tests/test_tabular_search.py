"""Tuning the tabular trainer with the local backend: real trials of
``python -m components.train_tabular.tabular_trainer`` on scikit-learn's breast cancer data."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from components.train_tabular import hyperparameters
from components.train_tabular.tabular_trainer import config_arguments
from components.tune.experiment import TrialSettings, build_experiment
from components.tune.results import SUCCEEDED
from components.tune.search_space import SearchSpaceError, parse_search_space, trial_settings
from components.tune_local.optuna_search import run_tune_local

SPACE = {
    "objective": {"type": "maximize", "objectiveMetricName": "eval_macro_f1"},
    "algorithm": {"algorithmName": "grid"},
    "parameters": [
        {"name": "max_depth", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "4"]}},
        {"name": "n_estimators", "parameterType": "discrete", "feasibleSpace": {"list": ["2", "30"]}},
    ],
    "maxTrialCount": 4,
    "parallelTrialCount": 2,
}
SETTINGS = {"task": "classification", "target_column": "diagnosis", "feature_columns": [], "algorithm": "random_forest",
            "seed": 0}


@pytest.fixture(scope="module")
def breast_cancer_splits(tmp_path_factory):
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    order = np.random.default_rng(0).permutation(len(frame))
    folder = tmp_path_factory.mktemp("breast_cancer")
    paths = folder / "train.parquet", folder / "eval.parquet"
    frame.iloc[order[:400]].to_parquet(paths[0])
    frame.iloc[order[400:]].to_parquet(paths[1])
    return paths


def tune_tabular(splits, out, settings, space=SPACE) -> dict[str, float]:
    """run_tune_local on the breast cancer splits; trials.html and best_parameters go to ``out``."""
    return run_tune_local(
        search_space=json.dumps(space),
        train_path=str(splits[0]),
        eval_path=str(splits[1]),
        settings=settings,
        trials_html_path=str(out / "trials.html"),
        best_parameters_path=str(out / "best_parameters"),
        seed=0,
        timeout_seconds=600,
        threads_per_trial=1,
        trainer="tabular",
    )


def test_a_grid_over_the_forest_runs_the_tabular_trainer_for_every_trial(breast_cancer_splits, tmp_path, capfd):
    html, best = tmp_path / "trials.html", tmp_path / "best_parameters"
    logged = tune_tabular(breast_cancer_splits, tmp_path, SETTINGS)
    assert logged["trials_succeeded"] == 4 and logged["trials_failed"] == 0
    # Two stumps cannot match thirty depth-4 trees on this data (macro F1 ~0.9 against ~0.95).
    assert json.loads(best.read_text()) == {"max_depth": 4, "n_estimators": 30}
    assert logged["eval_macro_f1"] > 0.93 and 0 < logged["eval_roc_auc"] <= 1  # the tabular trainer's metrics
    lines = capfd.readouterr().out.splitlines()
    started = [json.loads(line.split(" started: ")[1]) for line in lines if " started: " in line]
    assert sorted((p["max_depth"], p["n_estimators"]) for p in started) == [(1, 2), (1, 30), (4, 2), (4, 30)]
    # Each trial reported what only the tabular trainer prints: eval_roc_auc.
    finished = [json.loads(line.split(f" {SUCCEEDED}: ")[1]) for line in lines if f" {SUCCEEDED}: " in line]
    assert len(finished) == 4 and all("eval_roc_auc" in metrics for metrics in finished)
    assert "eval_roc_auc" in html.read_text()


def test_a_failing_tabular_setting_is_refused_before_any_trial(breast_cancer_splits, tmp_path):
    with pytest.raises(SearchSpaceError, match=r"parameters\[0\] \(max_depth\).*'linear'"):
        tune_tabular(breast_cancer_splits, tmp_path, {**SETTINGS, "algorithm": "linear"})
    assert not (tmp_path / "best_parameters").exists()


def test_a_katib_tabular_trial_s_config_after_substitution_is_accepted_by_the_tabular_trainer():
    """The Katib backend's trial command, with values substituted as Katib does (numbers bare, categorical
    values quoted), parses as the tabular trainer's config."""
    space = parse_search_space(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "eval_rmse"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "n_estimators", "parameterType": "int", "feasibleSpace": {"min": "50", "max": "150"}},
                {"name": "max_features", "parameterType": "double", "feasibleSpace": {"min": "0.3", "max": "1"}},
                {"name": "target_transform", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["none", "log1p"]}},
            ],
            "maxTrialCount": 6,
        },
        "tabular",
    )
    settings = {"task": "regression", "target_column": "progression", "algorithm": "random_forest", "max_depth": 3}
    experiment = build_experiment(space, "t", TrialSettings("gs://b/train.parquet", "gs://b/eval.parquet", settings))
    text = json.dumps(experiment["spec"]["trialTemplate"]["trialSpec"])
    for name, value in {"n_estimators": "100", "max_features": "0.5", "target_transform": "log1p"}.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    command = json.loads(text)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:4] == ["python", "-m", "components.train_tabular.tabular_trainer", "--config"]
    arguments = config_arguments(command[4])
    assert arguments["hyperparameters"] == {  # the searched values and the fixed max_depth
        "n_estimators": 100, "max_features": 0.5, "target_transform": "log1p", "max_depth": 3,
    }  # fmt: skip
    assert (arguments["task"], arguments["algorithm"], arguments["train_path"]) == (
        "regression", "random_forest", "gs://b/train.parquet",
    )
    resolved = hyperparameters.resolve(arguments["algorithm"], arguments["task"], arguments["hyperparameters"])
    assert (resolved["n_estimators"], resolved["target_transform"]) == (100, "log1p")


def test_fixed_hyperparameters_are_part_of_the_best_parameters(breast_cancer_splits, tmp_path):
    """The pipeline's hyperparameters stay fixed while others are searched (each trial's config holds them, as
    the Katib test above shows for that backend), and train_tabular, which trains with best_parameters alone,
    gets them too."""
    space = {**SPACE, "parameters": SPACE["parameters"][1:], "maxTrialCount": 2}  # n_estimators only
    fixed = '{"max_depth": 1, "max_features": "log2"}'
    tune_tabular(breast_cancer_splits, tmp_path, trial_settings("tabular", SETTINGS, fixed), space)
    assert json.loads((tmp_path / "best_parameters").read_text()) == {"max_depth": 1, "max_features": "log2", "n_estimators": 30}


def test_fixed_hyperparameters_the_trainer_would_refuse_fail_before_any_trial(breast_cancer_splits, tmp_path):
    with pytest.raises(SearchSpaceError, match=r"fixed hyperparameters \{'max_features': 'most'\}"):
        tune_tabular(breast_cancer_splits, tmp_path, trial_settings("tabular", SETTINGS, '{"max_features": "most"}'))
    assert not (tmp_path / "best_parameters").exists()
