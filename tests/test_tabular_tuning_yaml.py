"""The compiled tabular pipelines tune through the shared branches: Katib, Optuna or none, each training with
the right hyperparameters, and their default search spaces fit their task and default algorithm."""

import json

import pytest
import yaml

from components.tune.search_space import check_trainer_fit, parse_search_space
from kfp_mlops.paths import COMPILED_DIR

PIPELINES = {"tabular_classification": "classification", "tabular_regression": "regression"}


def branch_tasks(spec):
    """{branch condition: {task name: task}} of the condition group that holds the tune branches."""
    groups = [c for name, c in spec["components"].items() if name.startswith("comp-condition-branches")]
    (group,) = [
        g for g in groups if any("tune_backend" in str(t.get("triggerPolicy")) for t in g["dag"]["tasks"].values())
    ]
    return {
        task["triggerPolicy"]["condition"]: spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
        for task in group["dag"]["tasks"].values()
    }


@pytest.mark.parametrize("name", PIPELINES)
def test_each_tune_backend_trains_with_its_hyperparameters(name):
    spec, *_ = yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text())
    branches = list(branch_tasks(spec).items())
    assert [condition.count("!(") for condition, _ in branches] == [0, 1, 2]  # If, Elif, Else
    assert "== 'katib'" in branches[0][0] and "== 'optuna'" in branches[1][0]
    for (_, tasks), tuner in zip(branches, ("tune", "tune-local", None)):
        (release,) = [task for task_name, task in tasks.items() if task_name.startswith("tabular-train-release")]
        hyperparameters = release["inputs"]["parameters"]["hyperparameters"]
        if tuner is None:
            assert hyperparameters == {"componentInputParameter": "pipelinechannel--hyperparameters"}
            continue
        best_parameters = {"outputParameterKey": "best_parameters", "producerTask": tuner}
        assert hyperparameters["taskOutputParameter"] == best_parameters
        assert tasks[tuner]["inputs"]["parameters"]["trainer"] == {"runtimeValue": {"constant": "tabular"}}
        # the pipeline's hyperparameters are fixed in every trial and come back inside best_parameters
        fixed = tasks[tuner]["inputs"]["parameters"]["hyperparameters"]
        assert fixed == {"componentInputParameter": "pipelinechannel--hyperparameters"}
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["tune_backend"]["defaultValue"] == "none"


@pytest.mark.parametrize("name, task", PIPELINES.items())
def test_the_default_search_space_fits_the_task_and_default_algorithm(name, task):
    spec, *_ = yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text())
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    space = parse_search_space(defaults["search_space"]["defaultValue"], "tabular")
    settings = {"task": task, "algorithm": defaults["algorithm"]["defaultValue"]}
    fixed = defaults.get("hyperparameters", {}).get("defaultValue") or "{}"
    check_trainer_fit(space, {**settings, **json.loads(fixed)})
