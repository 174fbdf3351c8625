"""Tuning the tabular trainer: its search space vocabulary, the fit with the fixed settings, and Katib
Experiments whose trials run ``components.train_tabular.tabular_trainer`` (API schema and webhook rules)."""

import json

import pytest

from components.train_tabular import hyperparameters
from components.tune.experiment import TrialSettings, build_experiment
from components.tune.search_space import (
    TRAINERS,
    SearchSpaceError,
    check_trainer_fit,
    check_trainer_settings,
    parse_search_space,
)
from components.tune.tests import katib_schema
from components.tune.webhook import webhook_violations
from kfp_mlops.paths import PROJECT_ROOT

TABULAR_EXAMPLE = PROJECT_ROOT / "components" / "tune" / "example_tabular_search_space.json"
CLASSIFIER = {"task": "classification", "target_column": "diagnosis", "algorithm": "xgboost", "seed": 3}
REGRESSION_SPACE = {
    "objective": {"type": "minimize", "objectiveMetricName": "eval_rmse"},
    "algorithm": {"algorithmName": "grid"},
    "parameters": [
        {"name": "n_estimators", "parameterType": "int", "feasibleSpace": {"min": "50", "max": "150", "step": "50"}},
        {"name": "max_features", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "1", "step": "0.5"}},
        {"name": "target_transform", "parameterType": "categorical", "feasibleSpace": {"list": ["none", "log1p"]}},
    ],
    "maxTrialCount": 12,
}
REGRESSOR = {"task": "regression", "target_column": "progression", "algorithm": "random_forest"}
needs_swagger = pytest.mark.skipif(
    not katib_schema.KATIB_SWAGGER.exists(),
    reason=f"needs Katib's swagger.json at {katib_schema.KATIB_SWAGGER} (present in CI)",
)


def test_the_example_is_one_line_and_parses_for_the_tabular_trainer_only():
    text = TABULAR_EXAMPLE.read_text()
    assert text.count("\n") == 1  # a pipeline parameter default must fit on one line
    space = parse_search_space(text, "tabular")
    assert space.trainer == "tabular"
    assert space.objective.additional_metric_names == ("eval_accuracy", "eval_roc_auc")
    assert [p.trainer_type for p in space.parameters] == ["int", "float", "int", "float"]
    check_trainer_fit(space, CLASSIFIER)
    with pytest.raises(SearchSpaceError, match=r"parameters\[0\].name: 'max_depth' is not a tunable field of the text"):
        parse_search_space(text)


def test_tabular_parameter_types_follow_the_trainer_s_hyperparameter_table():
    parameters = TRAINERS["tabular"].parameters
    for table in (*hyperparameters.ALGORITHM_PARAMS.values(), *hyperparameters.TASK_PARAMS.values()):
        for name, spec in table.items():
            expected = spec.kind.__name__ if isinstance(spec, hyperparameters.Param) else "str"
            assert parameters[name] == expected, name


def test_tabular_vocabulary_errors_name_their_fields():
    source = json.loads(TABULAR_EXAMPLE.read_text())
    source["objective"] = {"type": "maximize", "objectiveMetricName": "eval_loss", "additionalMetricNames": []}
    source["parameters"][0] = {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}
    source["earlyStopping"] = {"algorithmName": "medianstop"}
    with pytest.raises(SearchSpaceError) as raised:
        parse_search_space(source, "tabular")
    message = str(raised.value)
    assert "parameters[0].name: 'epochs' is not a tunable field of the tabular trainer" in message
    assert "objective.objectiveMetricName: 'eval_loss' is not a metric of the tabular trainer" in message
    assert "earlyStopping: the tabular trainer reports its metrics once" in message
    objective = {**REGRESSION_SPACE["objective"], "additionalMetricNames": ["eval_r2", "eval_accuracy"]}
    never_printed = r"additionalMetricNames\[1\]: 'eval_accuracy' is never printed in the same run as 'eval_rmse'"
    with pytest.raises(SearchSpaceError, match=never_printed):
        parse_search_space({**REGRESSION_SPACE, "objective": objective}, "tabular")
    with pytest.raises(SearchSpaceError, match="trainer 'image' is not one of text, tabular"):
        parse_search_space(REGRESSION_SPACE, "image")


def test_the_space_must_fit_the_task_the_algorithm_and_the_ranges_of_the_trainer():
    space = parse_search_space(TABULAR_EXAMPLE.read_text(), "tabular")
    with pytest.raises(SearchSpaceError) as raised:
        check_trainer_fit(space, {**CLASSIFIER, "task": "regression", "algorithm": "random_forest"})
    message = str(raised.value)
    assert "'eval_macro_f1' is not printed for task 'regression'; use one of eval_rmse, eval_mae, eval_r2" in message
    assert "parameters[1] (learning_rate): hyperparameters: unknown field(s) ['learning_rate']" in message
    too_deep = json.loads(TABULAR_EXAMPLE.read_text())
    too_deep["parameters"][0]["feasibleSpace"]["max"] = "40"
    out_of_range = r"parameters\[0\] \(max_depth\): hyperparameter 'max_depth' must be in \[1, 32\], got 40"
    with pytest.raises(SearchSpaceError, match=out_of_range):
        check_trainer_fit(parse_search_space(too_deep, "tabular"), CLASSIFIER)
    with pytest.raises(SearchSpaceError, match="epochs: not a tabular trainer setting"):
        check_trainer_settings({"epochs": 3}, "tabular")
    with pytest.raises(SearchSpaceError, match="feature_columns: must be list"):
        check_trainer_settings({"feature_columns": "a,b"}, "tabular")


def tabular_experiments():
    classification = parse_search_space(TABULAR_EXAMPLE.read_text(), "tabular")
    regression = parse_search_space(REGRESSION_SPACE, "tabular")
    trial = TrialSettings("gs://bucket/train.parquet", "gs://bucket/eval.parquet", image="registry.example.com/t:1")
    return {
        "classification": build_experiment(
            classification, "tabular-tune", TrialSettings(**{**vars(trial), "settings": CLASSIFIER}), seed=1
        ),
        "regression": build_experiment(
            regression, "tabular-tune", TrialSettings(**{**vars(trial), "settings": REGRESSOR}), namespace="a", seed=1
        ),
    }


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_tabular_experiments_pass_the_webhook_rules(task):
    assert webhook_violations(tabular_experiments()[task]) == []


@needs_swagger
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_tabular_experiments_pass_katib_s_api_schema(task):
    assert katib_schema.errors(tabular_experiments()[task]) == []

