"""The search space: Katib's vocabulary parsed, checked field by field, and fitted to the text trainer."""

import copy
import json

import pytest

from components.tune.search_space import (
    TABULAR_TRIAL_SETTINGS,
    TEXT_TRIAL_SETTINGS,
    SearchSpaceError,
    check_trainer_settings,
    parse_search_space,
    trial_settings,
)
from kfp_mlops.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "components" / "tune" / "example_search_space.json"


def minimal(**overrides):
    space = {
        "objective": {"type": "minimize", "objectiveMetricName": "eval_loss"},
        "algorithm": {"algorithmName": "random"},
        "parameters": [
            {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-3"}}
        ],
        "maxTrialCount": 4,
    }
    space.update(overrides)
    return space


def with_parameter(parameter, **overrides):
    return minimal(parameters=[parameter], **overrides)


def test_the_example_parses_and_round_trips_through_katib_fields():
    space = parse_search_space(EXAMPLE.read_text())
    assert [p.name for p in space.parameters] == ["learning_rate", "batch_size", "warmup_ratio"]
    assert (space.max_trial_count, space.parallel_trial_count, space.max_failed_trial_count) == (12, 3, 3)
    assert space.objective.goal == 0.99 and space.early_stopping.name == "medianstop"
    assert space.medianstop() == (3, 2)
    spec = space.to_katib_spec()
    spec["objective"].pop("metricStrategies")  # an output of the objective, not a search-space field
    assert parse_search_space(spec) == space


def test_numbers_become_katib_strings_and_counts_get_defaults():
    space = parse_search_space(
        with_parameter(
            {"name": "batch_size", "parameterType": "int", "feasibleSpace": {"min": 8, "max": 64, "step": 8}},
            maxTrialCount=2,
        )
    )
    feasible = space.to_katib_spec()["parameters"][0]["feasibleSpace"]
    assert feasible == {"min": "8", "max": "64", "step": "8"}
    assert space.parallel_trial_count == 2  # Katib's default of 3, capped by maxTrialCount
    assert space.max_failed_trial_count == 2
    assert space.objective.additional_metric_names == ("eval_accuracy", "eval_macro_f1")


def test_values_are_typed_like_the_trainer_fields_they_set():
    space = parse_search_space(
        minimal(
            parameters=[
                {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}},
                {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-3"}},
                {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ["tiny", "minilm"]}},
                {"name": "warmup_ratio", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "1"}},
            ]
        )
    )
    typed = space.typed({"batch_size": "32", "learning_rate": "3e-05", "base_model": "tiny", "warmup_ratio": "1"})
    assert typed == {"batch_size": 32, "learning_rate": 3e-05, "base_model": "tiny", "warmup_ratio": 1.0}
    assert [type(value) for value in typed.values()] == [int, float, str, float]
    with pytest.raises(ValueError, match="integer"):
        space.parameter("batch_size").typed("16.5")


def test_grid_points_cover_the_range_with_the_step():
    space = parse_search_space(
        minimal(
            algorithm={"algorithmName": "grid"},
            parameters=[
                {"name": "batch_size", "parameterType": "int", "feasibleSpace": {"min": "8", "max": "32", "step": "8"}},
                {
                    "name": "warmup_ratio",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0", "max": "0.2", "step": "0.1"},
                },
                {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ["tiny", "minilm"]}},
            ],
        )
    )
    assert [p.grid() for p in space.parameters] == [[8, 16, 24, 32], [0.0, 0.1, 0.2], ["tiny", "minilm"]]


def test_objective_strategies_follow_the_objective_then_each_metric_direction():
    objective = parse_search_space(
        minimal(
            objective={
                "type": "maximize",
                "objectiveMetricName": "eval_accuracy",
                "goal": 0.9,
                "additionalMetricNames": ["eval_loss", "eval_macro_f1"],
            }
        )
    ).objective
    assert objective.strategies() == {"eval_accuracy": "max", "eval_loss": "min", "eval_macro_f1": "max"}
    assert objective.is_better(0.8, than=0.7) and not objective.is_better(0.7, than=0.8)
    assert objective.reached(0.9) and not objective.reached(0.89)
    loss = parse_search_space(minimal()).objective
    assert loss.strategies()["eval_loss"] == "min" and loss.is_better(0.1, than=0.2) and not loss.reached(0.0)


BAD = {
    "unknown top-level field": ({**minimal(), "maxTrials": 3}, "maxTrials: unknown field"),
    "maxTrialCount missing": (
        {k: v for k, v in minimal().items() if k != "maxTrialCount"},
        "maxTrialCount: is required",
    ),
    "maxTrialCount zero": (minimal(maxTrialCount=0), "maxTrialCount: must be at least 1"),
    "maxTrialCount not an int": (minimal(maxTrialCount="4"), "maxTrialCount: must be an integer"),
    "parallel above max": (minimal(parallelTrialCount=5), "parallelTrialCount: 5 must not exceed maxTrialCount"),
    "parallel zero": (minimal(parallelTrialCount=0), "parallelTrialCount: must be at least 1"),
    "max failed above max": (minimal(maxFailedTrialCount=5), "maxFailedTrialCount: 5 must not exceed"),
    "max failed negative": (minimal(maxFailedTrialCount=-1), "maxFailedTrialCount: must be at least 0"),
    "no parameters": (minimal(parameters=[]), "parameters: must be a non-empty list"),
    "parameter not a trainer field": (
        with_parameter({"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}),
        "parameters[0].name: 'dropout' is not a tunable field of the text trainer",
    ),
    "unknown parameter type": (
        with_parameter({"name": "epochs", "parameterType": "integer", "feasibleSpace": {"min": "1", "max": "3"}}),
        "parameters[0].parameterType: 'integer' is not one of",
    ),
    "no feasible space": (
        with_parameter({"name": "epochs", "parameterType": "int"}),
        "parameters[0].feasibleSpace: is required",
    ),
    "empty feasible space": (
        with_parameter({"name": "epochs", "parameterType": "int", "feasibleSpace": {}}),
        "parameters[0].feasibleSpace: is required",
    ),
    "unknown distribution": (
        with_parameter(
            {
                "name": "learning_rate",
                "parameterType": "double",
                "feasibleSpace": {"min": "1e-5", "max": "1e-3", "distribution": "loguniform"},
            }
        ),
        "parameters[0].feasibleSpace.distribution: 'loguniform' is not one of",
    ),
    "int with a list": (
        with_parameter(
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3", "list": ["1"]}}
        ),
        "parameters[0].feasibleSpace.list: is not allowed for parameterType int",
    ),
    "double without max": (
        with_parameter({"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5"}}),
        "parameters[0].feasibleSpace.max: is required for parameterType double",
    ),
    "categorical with min": (
        with_parameter(
            {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"min": "1", "list": ["tiny"]}}
        ),
        "parameters[0].feasibleSpace.min: is not allowed for parameterType categorical",
    ),
    "discrete without a list": (
        with_parameter({"name": "epochs", "parameterType": "discrete", "feasibleSpace": {"step": "1"}}),
        "parameters[0].feasibleSpace.step: is not allowed for parameterType discrete",
    ),
    "categorical with an empty list": (
        with_parameter({"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": []}}),
        "parameters[0].feasibleSpace.list: must be a non-empty list",
    ),
    "repeated list value": (
        with_parameter({"name": "epochs", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "1"]}}),
        "parameters[0].feasibleSpace.list: repeats ['1']",
    ),
    "min not below max": (
        with_parameter({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "3", "max": "3"}}),
        "parameters[0].feasibleSpace.max: 3 must be greater than min (3)",
    ),
    "min not a number": (
        with_parameter(
            {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "tiny", "max": "1"}}
        ),
        "parameters[0].feasibleSpace.min: 'tiny' must be a number",
    ),
    "int bound not an integer": (
        with_parameter({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1.5", "max": "3"}}),
        "parameters[0].feasibleSpace.min: '1.5' must be an integer",
    ),
    "negative step": (
        with_parameter(
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3", "step": "-1"}}
        ),
        "parameters[0].feasibleSpace.step: -1 must be positive",
    ),
    "log distribution from zero": (
        with_parameter(
            {
                "name": "learning_rate",
                "parameterType": "double",
                "feasibleSpace": {"min": "0", "max": "1e-3", "distribution": "logUniform"},
            }
        ),
        "parameters[0].feasibleSpace.min: 0 must be positive for distribution logUniform",
    ),
    "double for an integer field": (
        with_parameter({"name": "batch_size", "parameterType": "double", "feasibleSpace": {"min": "8", "max": "64"}}),
        "parameters[0].parameterType: batch_size is an integer field",
    ),
    "fractional discrete value for an integer field": (
        with_parameter({"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "16.5"]}}),
        "parameters[0].feasibleSpace.list[1]: '16.5' must be an integer",
    ),
    "number that is not JSON": (
        with_parameter({"name": "learning_rate", "parameterType": "discrete", "feasibleSpace": {"list": [".5"]}}),
        "parameters[0].feasibleSpace.list[0]: '.5' must be a number (JSON syntax)",
    ),
    "string field as discrete": (
        with_parameter({"name": "base_model", "parameterType": "discrete", "feasibleSpace": {"list": ["1"]}}),
        "parameters[0].parameterType: base_model is a string field: use categorical",
    ),
    "quote in a categorical value": (
        with_parameter({"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ['ti"ny']}}),
        "parameters[0].feasibleSpace.list[0]: 'ti\"ny' must be non-empty, printable, without quotes",
    ),
    "repeated parameter": (
        minimal(parameters=[minimal()["parameters"][0]] * 2),
        "parameters[1].name: 'learning_rate' is given twice",
    ),
    "parameter not an object": (minimal(parameters=["learning_rate"]), "parameters[0]: must be an object"),
    "misspelt feasible space field": (
        with_parameter({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "maximum": "3"}}),
        "parameters[0].feasibleSpace.maximum: unknown field",
    ),
    "no objective": ({k: v for k, v in minimal().items() if k != "objective"}, "objective: is required"),
    "objective type": (minimal(objective={"type": "max", "objectiveMetricName": "eval_loss"}), "objective.type: 'max'"),
    "no objective metric": (minimal(objective={"type": "minimize"}), "objective.objectiveMetricName: is required"),
    "objective metric the trainer does not print": (
        minimal(objective={"type": "maximize", "objectiveMetricName": "accuracy"}),
        "objective.objectiveMetricName: 'accuracy' is not a metric of the text trainer",
    ),
    "additional metric repeats the objective": (
        minimal(
            objective={"type": "minimize", "objectiveMetricName": "eval_loss", "additionalMetricNames": ["eval_loss"]}
        ),
        "objective.additionalMetricNames[0]: repeats the objective metric 'eval_loss'",
    ),
    "goal not a number": (
        minimal(objective={"type": "minimize", "objectiveMetricName": "eval_loss", "goal": "low"}),
        "objective.goal: must be a number",
    ),
    "no algorithm": ({k: v for k, v in minimal().items() if k != "algorithm"}, "algorithm: is required"),
    "unknown algorithm": (
        minimal(algorithm={"algorithmName": "hyperband"}),
        "algorithm.algorithmName: 'hyperband' is not one of",
    ),
    "setting without a name": (
        minimal(algorithm={"algorithmName": "tpe", "algorithmSettings": [{"value": "1"}]}),
        "algorithm.algorithmSettings[0]: must be an object with a name and a value",
    ),
    "unknown early stopping": (
        minimal(earlyStopping={"algorithmName": "hyperband"}),
        "earlyStopping.algorithmName: 'hyperband'",
    ),
    "unknown medianstop setting": (
        minimal(
            earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials", "value": "3"}]}
        ),
        "earlyStopping.algorithmSettings[0].name: 'min_trials' is not a medianstop setting",
    ),
    "medianstop setting not positive": (
        minimal(
            earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "0"}]}
        ),
        "earlyStopping.algorithmSettings[0].value: start_step must be a positive integer",
    ),
    "grid double without step": (
        minimal(algorithm={"algorithmName": "grid"}),
        "parameters[0].feasibleSpace.step: is required",
    ),
    "grid smaller than maxTrialCount": (
        with_parameter(
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
            algorithm={"algorithmName": "grid"},
        ),
        "maxTrialCount: 4 exceeds the 3 points of the grid",
    ),
    "cmaes with one continuous parameter": (minimal(algorithm={"algorithmName": "cmaes"}), "cmaes needs at least two"),
}


@pytest.mark.parametrize("source, message", BAD.values(), ids=BAD.keys())
def test_each_invalid_field_is_named_in_the_error(source, message):
    with pytest.raises(SearchSpaceError) as raised:
        parse_search_space(source)
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once():
    source = minimal(maxTrialCount=0, objective={"type": "best"}, algorithm={"algorithmName": "anneal"})
    with pytest.raises(SearchSpaceError) as raised:
        parse_search_space(json.dumps(source))
    lines = str(raised.value).splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == [
        "- maxTrialCount",
        "- objective.type",
        "- objective.objectiveMetricName",
        "- algorithm.algorithmName",
    ]


@pytest.mark.parametrize("text, message", [("{", "not valid JSON"), ("[1]", "must be a JSON object")])
def test_text_that_is_no_json_object_is_refused(text, message):
    with pytest.raises(SearchSpaceError, match=message):
        parse_search_space(text)


def test_parsing_does_not_change_the_caller_s_mapping():
    source = minimal()
    kept = copy.deepcopy(source)
    parse_search_space(source)
    assert source == kept


def test_trainer_settings_are_known_fields_of_the_right_type():
    check_trainer_settings({"base_model": "tiny", "epochs": 2, "learning_rate": 1, "text_column": "body"})
    with pytest.raises(SearchSpaceError) as raised:
        check_trainer_settings({"epochs": 2.5, "dropout": 0.1, "seed": True})
    message = str(raised.value)
    assert "epochs: must be int, got 2.5" in message
    assert "dropout: not a text trainer setting" in message
    assert "seed: must be int, got True" in message


def test_trial_settings_pick_the_trainer_s_fields_and_fixed_tabular_hyperparameters():
    arguments = {"task": "regression", "target_column": "y", "feature_columns": ("a", "b"), "algorithm": "xgboost",
                 "seed": 1, "text_column": "text", "epochs": 3}  # fmt: skip
    assert trial_settings("tabular", arguments, '{"max_depth": 4, "target_transform": "log1p"}') == {
        "task": "regression", "target_column": "y", "feature_columns": ["a", "b"], "algorithm": "xgboost", "seed": 1,
        "max_depth": 4, "target_transform": "log1p",
    }  # fmt: skip
    assert trial_settings("tabular", arguments) == {
        "task": "regression", "target_column": "y", "feature_columns": ["a", "b"], "algorithm": "xgboost", "seed": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("trainer", "hyperparameters", "message"),
    [
        ("tabular", "{max_depth: 4}", "hyperparameters: not valid JSON"),
        ("tabular", "[4]", "hyperparameters: must be a JSON object"),
        ("tabular", '{"depth": 4}', "hyperparameters: depth not tabular hyperparameters"),
        ("text", '{"learning_rate": 0.1}', "fixed hyperparameters are for the tabular trainer"),
        ("forest", "", "trainer 'forest' is not one of"),
    ],
)
def test_trial_settings_refuse_bad_fixed_hyperparameters(trainer, hyperparameters, message):
    arguments = dict.fromkeys(TEXT_TRIAL_SETTINGS + TABULAR_TRIAL_SETTINGS, "x") | {"feature_columns": []}
    with pytest.raises(SearchSpaceError, match=message):
        trial_settings(trainer, arguments, hyperparameters)
