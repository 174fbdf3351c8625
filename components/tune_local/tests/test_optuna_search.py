"""The local backend: Katib's algorithms as Optuna samplers, medianstop as median pruning, and real training
trials of the tiny model (a few rows, one or two epochs) run as parallel processes."""

import dataclasses
import importlib.util
import json
import typing

import optuna
import pytest
from optuna.pruners import MedianPruner, NopPruner
from optuna.samplers import GridSampler, RandomSampler, TPESampler

from components.train.text_trainer import TrainConfig
from components.tune.results import TuneError
from components.tune.search_space import TRAINER_SETTINGS, parse_search_space
from components.tune_local.optuna_search import (
    distribution_notes,
    pruner_for,
    run_search,
    run_trials,
    run_tune_local,
    sampler_for,
    suggest,
)
from kfp_mlops.paths import PROJECT_ROOT

LEARNING_RATE = {
    "name": "learning_rate",
    "parameterType": "double",
    "feasibleSpace": {"min": "1e-4", "max": "1e-2", "distribution": "logUniform"},
}
BATCH_SIZE = {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["4", "8"]}}
TINY = {"base_model": "tiny", "epochs": 2, "max_length": 16}


def source(**overrides):
    return {
        "objective": {
            "type": "maximize",
            "objectiveMetricName": "eval_accuracy",
            "additionalMetricNames": ["eval_loss"],
        },
        "algorithm": {"algorithmName": "random"},
        "parameters": [LEARNING_RATE, BATCH_SIZE],
        "maxTrialCount": 3,
        "parallelTrialCount": 2,
        **overrides,
    }


def space(**overrides):
    return parse_search_space(source(**overrides))


def base_config(toy_splits, **settings):
    train_path, eval_path = toy_splits
    return {"train_path": str(train_path), "eval_path": str(eval_path), "num_threads": 1, **TINY, **settings}


# --- mapping Katib's vocabulary to Optuna (no training) -----------------------------------------------------


@pytest.mark.parametrize(
    "algorithm, sampler_type, multivariate",
    [("random", RandomSampler, None), ("tpe", TPESampler, False), ("multivariate-tpe", TPESampler, True)],
)
def test_each_algorithm_gets_its_sampler(algorithm, sampler_type, multivariate):
    sampler, notes = sampler_for(space(algorithm={"algorithmName": algorithm}), seed=0)
    assert type(sampler) is sampler_type and notes == []
    if multivariate is not None:
        assert sampler._multivariate is multivariate


def test_grid_gets_a_grid_sampler_over_every_point():
    grid = space(
        algorithm={"algorithmName": "grid"},
        parameters=[{"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}, BATCH_SIZE],
    )
    sampler, _ = sampler_for(grid, seed=0)
    assert isinstance(sampler, GridSampler)
    assert sampler._search_space == {"batch_size": [4, 8], "epochs": [1, 2, 3]}


def test_bayesian_optimization_gets_the_gaussian_process_sampler():
    sampler, notes = sampler_for(
        space(
            algorithm={
                "algorithmName": "bayesianoptimization",
                "algorithmSettings": [{"name": "n_initial_points", "value": "2"}],
            }
        ),
        seed=0,
    )
    # This venv's Optuna has GPSampler; one without it would fall back to TPE with a note.
    assert type(sampler) is optuna.samplers.GPSampler and notes == []
    assert sampler._n_startup_trials == 2


def test_cmaes_gets_cma_es_when_its_package_is_installed():
    cmaes_space = space(
        algorithm={"algorithmName": "cmaes"},
        parameters=[
            LEARNING_RATE,
            {**LEARNING_RATE, "name": "warmup_ratio", "feasibleSpace": {"min": "0", "max": "0.2"}},
        ],
    )
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(TuneError, match="algorithm cmaes needs the cmaes package"):
            sampler_for(cmaes_space, seed=0)
    else:
        assert type(sampler_for(cmaes_space, seed=0)[0]) is optuna.samplers.CmaEsSampler


def test_random_state_overrides_the_seed_and_unused_settings_are_noted():
    settings = [
        {"name": "random_state", "value": "5"},
        {"name": "n_startup_trials", "value": "3"},
        {"name": "gamma", "value": "1"},
    ]
    sampler, notes = sampler_for(space(algorithm={"algorithmName": "tpe", "algorithmSettings": settings}), seed=0)
    assert sampler._n_startup_trials == 3
    assert notes == ["algorithm setting gamma=1 is not used by the local backend"]
    draws = [
        optuna.create_study(sampler=s).ask().suggest_float("x", 0, 1)
        for s in (sampler, sampler_for(space(algorithm={"algorithmName": "tpe"}), seed=5)[0])
    ]
    assert draws[0] == draws[1]


def test_medianstop_becomes_median_pruning_from_its_start_step():
    assert isinstance(pruner_for(space()), NopPruner)
    pruner = pruner_for(
        space(
            earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "2"}]}
        )
    )
    assert isinstance(pruner, MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (3, 2)  # Katib's default min_trials_required


def test_suggested_values_have_the_trainer_field_types():
    mixed = space(
        parameters=[
            {"name": "warmup_ratio", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "1"}},
            {"name": "max_length", "parameterType": "int", "feasibleSpace": {"min": "16", "max": "64", "step": "16"}},
            {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ["tiny", "minilm"]}},
            LEARNING_RATE,
        ]
    )
    trial = optuna.create_study(sampler=RandomSampler(seed=0)).ask()
    values = {p.name: suggest(trial, p) for p in mixed.parameters}
    assert [type(v) for v in values.values()] == [float, int, str, float]
    assert values["max_length"] in (16, 32, 48, 64) and 1e-4 <= values["learning_rate"] <= 1e-2


def test_normal_distributions_are_noted_as_uniform():
    normal = space(
        parameters=[{**LEARNING_RATE, "feasibleSpace": {"min": "1e-4", "max": "1e-2", "distribution": "logNormal"}}]
    )
    assert distribution_notes(normal) == [
        "learning_rate: Optuna has no logNormal distribution; sampled log-uniformly over [1e-4, 1e-2]"
    ]


def test_the_search_space_s_trainer_fields_are_train_config_fields_of_the_same_type():
    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, kind in TRAINER_SETTINGS.items():
        assert name in fields, name
        assert hints[name] is {"int": int, "float": float, "str": str}[kind], name


def test_a_katib_trial_s_config_after_substitution_is_accepted_by_the_trainer():
    """The Katib backend's trial command, with values substituted as Katib does, parses as a TrainConfig."""
    from components.tune.experiment import TrialSettings, build_experiment

    katib_space = parse_search_space((PROJECT_ROOT / "components" / "tune" / "example_search_space.json").read_text())
    experiment = build_experiment(katib_space, "t", TrialSettings("gs://b/train.parquet", "gs://b/eval.parquet", TINY))
    text = json.dumps(experiment["spec"]["trialTemplate"]["trialSpec"])
    for name, value in {"learning_rate": "3.1e-05", "batch_size": "16", "warmup_ratio": "0.05"}.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    command = json.loads(text)["spec"]["template"]["spec"]["containers"][0]["command"]
    config = TrainConfig.from_json(command[4])
    config.check()
    assert (config.learning_rate, config.batch_size, config.warmup_ratio, config.base_model) == (
        3.1e-05,
        16,
        0.05,
        "tiny",
    )


# --- real trials ------------------------------------------------------------------------------------------


def test_a_tiny_search_trains_each_trial_and_writes_the_outputs(toy_splits, tmp_path):
    train_path, eval_path = toy_splits
    html, best = tmp_path / "trials.html", tmp_path / "best_parameters"
    logged = run_tune_local(
        search_space=json.dumps(source(algorithm={"algorithmName": "tpe"})),
        train_path=str(train_path),
        eval_path=str(eval_path),
        settings={**TINY, "learning_rate": 0.5},  # tuned fields override the fixed value
        trials_html_path=str(html),
        best_parameters_path=str(best),
        seed=0,
        timeout_seconds=600,
        threads_per_trial=1,
    )
    parameters = json.loads(best.read_text())
    assert list(parameters) == ["learning_rate", "batch_size"]
    assert 1e-4 <= parameters["learning_rate"] <= 1e-2 and parameters["batch_size"] in (4, 8)
    assert logged["trials_total"] == 3 and logged["trials_succeeded"] == 3
    assert 0 <= logged["eval_accuracy"] <= 1 and logged["eval_loss"] > 0
    assert logged["param_learning_rate"] == parameters["learning_rate"]
    page = html.read_text()
    assert page.count("<td>Succeeded</td>") == 3 and page.count('class="best"') == 1 and "backend: optuna" in page


def test_failed_trials_count_toward_max_failed_trial_count(toy_splits):
    missing_model = "/nonexistent/base-model"
    models = {"name": "base_model", "parameterType": "categorical", "feasibleSpace": {"list": ["tiny", missing_model]}}
    result = run_search(
        space(algorithm={"algorithmName": "grid"}, parameters=[models], maxTrialCount=2, maxFailedTrialCount=1),
        base_config(toy_splits, epochs=1),
        seed=0,
        timeout_seconds=600,
    )
    states = {trial.parameters["base_model"]: trial for trial in result.trials}
    assert states["tiny"].state == "Succeeded" and states[missing_model].state == "Failed"
    assert "exit code 1: error: base_model '/nonexistent/base-model'" in states[missing_model].message
    assert result.best.parameters == {"base_model": "tiny"}
    assert result.summary_metrics()["trials_failed"] == 1

    with pytest.raises(TuneError) as raised:
        run_search(
            space(
                parameters=[{**models, "feasibleSpace": {"list": [missing_model]}}],
                maxTrialCount=1,
                parallelTrialCount=1,
                maxFailedTrialCount=0,
            ),
            base_config(toy_splits, epochs=1),
            seed=0,
            timeout_seconds=600,
        )
    message = str(raised.value)
    assert "1 trials failed, more than maxFailedTrialCount (0)" in message and "trial-0: exit code 1" in message


def test_median_pruning_stops_a_trial_worse_than_the_finished_ones_after_each_epoch(toy_splits, tmp_path):
    pruned_space = space(
        objective={"type": "minimize", "objectiveMetricName": "eval_loss"},
        parameters=[LEARNING_RATE],
        maxTrialCount=1,
        parallelTrialCount=1,
        earlyStopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [{"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "1"}],
        },
    )
    study = optuna.create_study(direction="minimize", sampler=RandomSampler(seed=0), pruner=pruner_for(pruned_space))
    # A finished trial whose loss was 0 at every epoch: any real trial is worse than that median.
    study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0, 2: 0.0, 3: 0.0}))
    with pytest.raises(TuneError, match=r"trial-1 EarlyStopped \(pruned after epoch 1\)"):  # so none succeeded
        run_trials(study, pruned_space, base_config(toy_splits, epochs=3), work_dir=tmp_path, timeout_seconds=600)
    pruned = study.trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert list(pruned.intermediate_values) == [1]  # reported per epoch, and stopped at the first
    assert list(tmp_path.iterdir()) == []  # the trial's folder (model, log) is removed


def test_reaching_the_goal_stops_the_search(toy_splits):
    goal_space = space(
        objective={"type": "maximize", "objectiveMetricName": "eval_accuracy", "goal": 0.0},
        parameters=[LEARNING_RATE],
        maxTrialCount=3,
        parallelTrialCount=1,
    )
    result = run_search(goal_space, base_config(toy_splits, epochs=1), seed=0, timeout_seconds=600)
    assert [(t.name, t.state) for t in result.trials] == [("trial-0", "Succeeded")]  # no second trial started


def test_a_search_past_its_timeout_kills_its_trials_and_raises(toy_splits):
    with pytest.raises(TuneError, match="the search stopped: the search ran past its timeout of 0.2 s"):
        run_search(space(parameters=[LEARNING_RATE]), base_config(toy_splits), seed=0, timeout_seconds=0.2)
