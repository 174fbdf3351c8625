"""One hyperparameter search space in Katib's vocabulary, shared by the Katib and the local (Optuna) backends.

Pure Python (no third-party imports), so it loads in both the ``tune`` and the ``train`` image. A search
space is the part of a Katib ``ExperimentSpec`` that says what to search and how::

    {"objective": {"type": "maximize", "objectiveMetricName": "eval_accuracy", "goal": 0.99,
                   "additionalMetricNames": ["eval_loss"]},
     "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "5"}]},
     "parameters": [{"name": "learning_rate", "parameterType": "double",
                     "feasibleSpace": {"min": "1e-5", "max": "1e-3", "distribution": "logUniform"}}],
     "maxTrialCount": 12, "parallelTrialCount": 3, "maxFailedTrialCount": 3,
     "earlyStopping": {"algorithmName": "medianstop",
                       "algorithmSettings": [{"name": "min_trials_required", "value": "3"}]}}

:func:`parse_search_space` enforces Katib's admission-webhook rules for these fields, plus the checks
Katib's suggestion services would only fail on later (numbers that parse, ``min < max``, a step for
every ``double`` of a grid, two continuous parameters for CMA-ES) and the fit with the trainer the trials
run (:data:`TRAINERS`: ``text`` or ``tabular``): parameter names are fields the trainer's ``--config``
takes and the objective is a metric the trainer prints. Every error names its field, e.g.
``parameters[1].feasibleSpace.min``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.train_tabular import hyperparameters as tabular_hyperparameters

PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
OBJECTIVE_TYPES = ("maximize", "minimize")
ALGORITHMS = ("random", "grid", "bayesianoptimization", "tpe", "multivariate-tpe", "cmaes")
EARLY_STOPPING_ALGORITHMS = ("medianstop",)
# Katib's medianstop defaults (pkg/earlystopping/v1beta1/medianstop).
MEDIANSTOP_DEFAULTS = {"min_trials_required": 3, "start_step": 4}

# The text trainer's tunable TrainConfig fields and their JSON types (components/train/text_trainer.py).
TRAINER_PARAMETERS: dict[str, str] = {
    "learning_rate": "float",
    "warmup_ratio": "float",
    "batch_size": "int",
    "epochs": "int",
    "max_steps": "int",
    "max_length": "int",
    "seed": "int",
    "base_model": "str",
}
# Every other TrainConfig field a caller may fix for all trials (the paths and model_dir are set per trial).
TRAINER_SETTINGS: dict[str, str] = {
    **TRAINER_PARAMETERS,
    "text_column": "str",
    "label_column": "str",
    "num_threads": "int",
}
# The metrics the trainer prints each epoch as name=value lines, with the direction that makes them better.
TRAINER_METRICS: dict[str, str] = {
    "eval_accuracy": "max",
    "eval_macro_f1": "max",
    "eval_loss": "min",
    "train_loss": "min",
}


@dataclass(frozen=True)
class Trainer:
    """A trainer a trial runs as ``python -m <module> --config '<JSON>'``, and what that JSON and its output hold."""

    name: str
    module: str
    parameters: Mapping[str, str]
    """The tunable ``--config`` fields and their JSON types (``int``, ``float``, ``str``)."""
    settings: Mapping[str, str]
    """Every field a caller may fix for all trials (the data paths and model_dir are set per trial)."""
    metric_groups: tuple[Mapping[str, str], ...]
    """The metrics it prints, with the direction that makes them better; one group per kind of run (one
    run prints one group)."""
    reports_per_epoch: bool
    """Whether it prints its metrics after every epoch, which medianstop early stopping needs."""

    @property
    def metrics(self) -> dict[str, str]:
        return {name: direction for group in self.metric_groups for name, direction in group.items()}

    def metric_group(self, name: str) -> Mapping[str, str]:
        return next(group for group in self.metric_groups if name in group)


def _tabular_parameter_types() -> dict[str, str]:
    """The tabular hyperparameters of every algorithm and task (components/train_tabular/hyperparameters.py).

    A numeric one that also takes words (``max_features``: ``"sqrt"``, ``gamma``: ``"scale"``) is tuned
    over numbers only; whether a name fits the algorithm and task is checked by :func:`check_trainer_fit`.
    """
    tables = [*tabular_hyperparameters.ALGORITHM_PARAMS.values(), *tabular_hyperparameters.TASK_PARAMS.values()]
    types: dict[str, str] = {}
    for table in tables:
        for name, spec in table.items():
            types[name] = spec.kind.__name__ if isinstance(spec, tabular_hyperparameters.Param) else "str"
    return types


TABULAR_METRICS_BY_TASK: dict[str, dict[str, str]] = {
    "classification": {"eval_macro_f1": "max", "eval_accuracy": "max", "eval_roc_auc": "max"},
    "regression": {"eval_rmse": "min", "eval_mae": "min", "eval_r2": "max"},
}
TRAINERS: dict[str, Trainer] = {
    "text": Trainer(
        "text", "components.train.text_trainer", TRAINER_PARAMETERS, TRAINER_SETTINGS, (TRAINER_METRICS,), True
    ),
    "tabular": Trainer(
        "tabular",
        "components.train_tabular.tabular_trainer",
        _tabular_parameter_types(),
        {
            **_tabular_parameter_types(),
            "task": "str",
            "target_column": "str",
            "feature_columns": "list",
            "algorithm": "str",
            "seed": "int",
            "num_threads": "int",
        },
        tuple(TABULAR_METRICS_BY_TASK.values()),
        False,
    ),
}

METRIC_DIRECTIONS: dict[str, str] = {
    name: direction for trainer in TRAINERS.values() for name, direction in trainer.metrics.items()
}
_TOP_LEVEL_FIELDS = (
    "parameters",
    "objective",
    "algorithm",
    "earlyStopping",
    "maxTrialCount",
    "parallelTrialCount",
    "maxFailedTrialCount",
)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")

Value = int | float | str


class SearchSpaceError(ValueError):
    """An invalid search space; the message lists every problem, each with its field path."""


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter. Bounds and list entries are strings, as in Katib's ``feasibleSpace``."""

    name: str
    parameter_type: str
    min: str | None = None
    max: str | None = None
    step: str | None = None
    values: tuple[str, ...] = ()
    distribution: str | None = None
    trainer_type: str = "float"
    """``"int"``, ``"float"`` or ``"str"``: the JSON type of the trainer's ``--config`` field it sets."""

    @property
    def is_log(self) -> bool:
        return self.distribution in ("logUniform", "logNormal")

    def typed(self, text: str) -> Value:
        """A value as Katib or a list gives it (a string), converted to the trainer field's type."""
        if self.trainer_type == "str":
            return text
        number = float(text)
        if self.trainer_type == "int":
            if not number.is_integer():
                raise ValueError(f"parameter {self.name!r} needs an integer, got {text!r}")
            return int(number)
        return number

    def choices(self) -> list[Value]:
        """The typed list of a ``categorical`` or ``discrete`` parameter."""
        return [self.typed(value) for value in self.values]

    def grid(self) -> list[Value]:
        """Every value a grid search visits: the list, or ``min, min+step, ... <= max``."""
        if self.values:
            return self.choices()
        low, high = float(self.min), float(self.max)  # type: ignore[arg-type]
        step = float(self.step) if self.step else 1.0
        count = math.floor((high - low) / step + 1e-9) + 1
        points = [low + index * step for index in range(count)]
        if self.parameter_type == "int":
            return [int(round(point)) for point in points]
        return [round(point, 12) for point in points]

    def to_katib(self) -> dict[str, Any]:
        space: dict[str, Any] = {}
        for key in ("min", "max", "step", "distribution"):
            if getattr(self, key) is not None:
                space[key] = getattr(self, key)
        if self.values:
            space["list"] = list(self.values)
        return {"name": self.name, "parameterType": self.parameter_type, "feasibleSpace": space}


@dataclass(frozen=True)
class Objective:
    type: str
    objective_metric_name: str
    additional_metric_names: tuple[str, ...] = ()
    goal: float | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (self.objective_metric_name, *self.additional_metric_names)

    def strategies(self) -> dict[str, str]:
        """How a trial's per-epoch values become one value: ``"max"`` or ``"min"``, per metric.

        The objective follows the objective type (as Katib's default does); the other metrics take the
        direction that makes them better, so a maximised accuracy reports the lowest loss seen.
        """
        objective = {self.objective_metric_name: "max" if self.type == "maximize" else "min"}
        return objective | {name: METRIC_DIRECTIONS[name] for name in self.additional_metric_names}

    def is_better(self, value: float, than: float) -> bool:
        return value > than if self.type == "maximize" else value < than

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the goal (never, without a goal)."""
        if self.goal is None:
            return False
        return value >= self.goal if self.type == "maximize" else value <= self.goal

    def to_katib(self) -> dict[str, Any]:
        objective: dict[str, Any] = {"type": self.type}
        if self.goal is not None:
            objective["goal"] = self.goal
        objective["objectiveMetricName"] = self.objective_metric_name
        if self.additional_metric_names:
            objective["additionalMetricNames"] = list(self.additional_metric_names)
        objective["metricStrategies"] = [{"name": name, "value": value} for name, value in self.strategies().items()]
        return objective


@dataclass(frozen=True)
class Algorithm:
    """A suggestion or early-stopping algorithm with Katib's string-valued settings."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()

    def setting(self, name: str) -> str | None:
        return dict(self.settings).get(name)

    def to_katib(self) -> dict[str, Any]:
        algorithm: dict[str, Any] = {"algorithmName": self.name}
        if self.settings:
            algorithm["algorithmSettings"] = [{"name": name, "value": value} for name, value in self.settings]
        return algorithm


@dataclass(frozen=True)
class SearchSpace:
    parameters: tuple[Parameter, ...]
    objective: Objective
    algorithm: Algorithm
    max_trial_count: int
    parallel_trial_count: int
    max_failed_trial_count: int
    early_stopping: Algorithm | None = None
    trainer: str = "text"

    def parameter(self, name: str) -> Parameter:
        return next(parameter for parameter in self.parameters if parameter.name == name)

    def typed(self, assignments: Mapping[str, str]) -> dict[str, Value]:
        """Katib's string assignments as trainer-typed values, in the search space's parameter order."""
        return {p.name: p.typed(assignments[p.name]) for p in self.parameters if p.name in assignments}

    def medianstop(self) -> tuple[int, int]:
        """``(min_trials_required, start_step)`` of the medianstop early stopping."""
        assert self.early_stopping is not None
        return tuple(  # type: ignore[return-value]
            int(self.early_stopping.setting(name) or default) for name, default in MEDIANSTOP_DEFAULTS.items()
        )

    def to_katib_spec(self) -> dict[str, Any]:
        """These fields of a Katib ``ExperimentSpec`` (everything but the trial template)."""
        spec: dict[str, Any] = {
            "objective": self.objective.to_katib(),
            "algorithm": self.algorithm.to_katib(),
        }
        if self.early_stopping:
            spec["earlyStopping"] = self.early_stopping.to_katib()
        spec["parameters"] = [parameter.to_katib() for parameter in self.parameters]
        spec["maxTrialCount"] = self.max_trial_count
        spec["parallelTrialCount"] = self.parallel_trial_count
        spec["maxFailedTrialCount"] = self.max_failed_trial_count
        return spec


def parse_search_space(source: str | Mapping[str, Any], trainer: str = "text") -> SearchSpace:
    """A :class:`SearchSpace` for trials of ``trainer`` (a key of :data:`TRAINERS`) from a JSON object (text)
    or a mapping; raises :class:`SearchSpaceError`.

    Numbers are accepted where Katib wants strings (``"min": 1e-5``) and converted.
    ``parallelTrialCount`` defaults to ``min(3, maxTrialCount)`` (Katib's default is 3) and
    ``maxFailedTrialCount`` to ``maxTrialCount`` (no early failure); ``maxTrialCount`` is required.
    """
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as error:
            raise SearchSpaceError(f"search space is not valid JSON: {error}") from error
    if not isinstance(source, Mapping):
        raise SearchSpaceError(f"search space must be a JSON object, got {type(source).__name__}")
    if trainer not in TRAINERS:
        raise SearchSpaceError(f"trainer {trainer!r} is not one of {', '.join(TRAINERS)}")
    checker = _Checker(TRAINERS[trainer])
    space = checker.search_space(source)
    if checker.problems:
        raise SearchSpaceError("invalid search space:\n" + "\n".join(f"- {p}" for p in checker.problems))
    assert space is not None
    return space


class _Checker:
    """Collects every problem instead of stopping at the first, so one error message lists them all."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def search_space(self, source: Mapping[str, Any]) -> SearchSpace | None:
        for key in source:
            if key not in _TOP_LEVEL_FIELDS:
                self.fail(str(key), f"unknown field; known fields: {', '.join(_TOP_LEVEL_FIELDS)}")
        max_trials = self.count(source, "maxTrialCount", minimum=1, default=None)
        parallel = self.count(source, "parallelTrialCount", minimum=1, default=min(3, max_trials or 3))
        max_failed = self.count(source, "maxFailedTrialCount", minimum=0, default=max_trials or 0)
        if max_trials is not None:
            if parallel is not None and parallel > max_trials:
                self.fail("parallelTrialCount", f"{parallel} must not exceed maxTrialCount ({max_trials})")
            if max_failed is not None and max_failed > max_trials:
                self.fail("maxFailedTrialCount", f"{max_failed} must not exceed maxTrialCount ({max_trials})")
        parameters = self.parameters(source.get("parameters"))
        objective = self.objective(source.get("objective"))
        algorithm = self.algorithm(source.get("algorithm"), "algorithm", ALGORITHMS)
        early_stopping = None
        if source.get("earlyStopping") is not None:
            early_stopping = self.algorithm(source["earlyStopping"], "earlyStopping", EARLY_STOPPING_ALGORITHMS)
            if early_stopping is not None:
                self.medianstop_settings(early_stopping)
            if not self.trainer.reports_per_epoch:
                self.fail(
                    "earlyStopping",
                    f"the {self.trainer.name} trainer reports its metrics once, at the end of a trial: "
                    "medianstop has no intermediate values to compare",
                )
        if parameters and algorithm is not None:
            self.fits_algorithm(parameters, algorithm, max_trials)
        if self.problems or max_trials is None or parallel is None or max_failed is None:
            return None
        assert objective is not None and algorithm is not None
        return SearchSpace(
            tuple(parameters), objective, algorithm, max_trials, parallel, max_failed, early_stopping, self.trainer.name
        )

    def count(self, source: Mapping[str, Any], key: str, *, minimum: int, default: int | None) -> int | None:
        value = source.get(key, default)
        if value is None:
            self.fail(key, "is required")
            return None
        if not _is_int(value):
            self.fail(key, f"must be an integer, got {value!r}")
            return None
        if value < minimum:
            self.fail(key, f"must be at least {minimum}, got {value}")
            return None
        return value

    def parameters(self, source: Any) -> list[Parameter]:
        if not isinstance(source, list) or not source:
            self.fail("parameters", "must be a non-empty list (Katib needs spec.parameters or spec.nasConfig)")
            return []
        parameters: list[Parameter] = []
        seen: set[str] = set()
        for index, item in enumerate(source):
            path = f"parameters[{index}]"
            if not isinstance(item, Mapping):
                self.fail(path, "must be an object with name, parameterType and feasibleSpace")
                continue
            parameter = self.parameter(item, path)
            if parameter is None:
                continue
            if parameter.name in seen:
                self.fail(f"{path}.name", f"{parameter.name!r} is given twice")
                continue
            seen.add(parameter.name)
            parameters.append(parameter)
        return parameters

    def parameter(self, item: Mapping[str, Any], path: str) -> Parameter | None:
        for key in item:
            if key not in ("name", "parameterType", "feasibleSpace"):
                self.fail(f"{path}.{key}", "unknown field; known fields: name, parameterType, feasibleSpace")
        name, kind, space = item.get("name"), item.get("parameterType"), item.get("feasibleSpace")
        problems = len(self.problems)
        if not isinstance(name, str) or not name:
            self.fail(f"{path}.name", "is required")
        elif name not in self.trainer.parameters:
            self.fail(
                f"{path}.name",
                f"{name!r} is not a tunable field of the {self.trainer.name} trainer; "
                f"use one of {', '.join(self.trainer.parameters)}",
            )
        if kind not in PARAMETER_TYPES:
            self.fail(f"{path}.parameterType", f"{kind!r} is not one of {', '.join(PARAMETER_TYPES)}")
        if not isinstance(space, Mapping) or not space:
            self.fail(f"{path}.feasibleSpace", "is required")
            return None
        for key in space:
            if key not in ("min", "max", "step", "list", "distribution"):
                self.fail(
                    f"{path}.feasibleSpace.{key}", "unknown field; known fields: min, max, step, list, distribution"
                )
        if len(self.problems) > problems:
            return None
        fields = {
            key: self.text(space[key], f"{path}.feasibleSpace.{key}") for key in ("min", "max", "step") if key in space
        }
        distribution = space.get("distribution")
        if distribution is not None and distribution not in DISTRIBUTIONS:
            self.fail(
                f"{path}.feasibleSpace.distribution", f"{distribution!r} is not one of {', '.join(DISTRIBUTIONS)}"
            )
        values: tuple[str, ...] = ()
        if kind in ("int", "double"):
            if "list" in space:
                self.fail(f"{path}.feasibleSpace.list", f"is not allowed for parameterType {kind}")
            for key in ("min", "max"):
                if key not in space:
                    self.fail(f"{path}.feasibleSpace.{key}", f"is required for parameterType {kind}")
        else:
            for key in ("min", "max", "step"):
                if key in space:
                    self.fail(f"{path}.feasibleSpace.{key}", f"is not allowed for parameterType {kind}")
            values = self.value_list(space.get("list"), f"{path}.feasibleSpace.list")
        if len(self.problems) > problems:
            return None
        parameter = Parameter(
            name, kind, values=values, distribution=distribution, trainer_type=self.trainer.parameters[name], **fields
        )
        self.fits_trainer(parameter, path)
        return parameter if len(self.problems) == problems else None

    def text(self, value: Any, path: str) -> str | None:
        if isinstance(value, str):
            return value
        if _is_number(value):
            return repr(value)
        self.fail(path, f"must be a string or a number, got {value!r}")
        return None

    def value_list(self, source: Any, path: str) -> tuple[str, ...]:
        if not isinstance(source, list) or not source:
            self.fail(path, "must be a non-empty list")
            return ()
        values = tuple(self.text(value, f"{path}[{index}]") or "" for index, value in enumerate(source))
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            self.fail(path, f"repeats {duplicates}")
        return values

    def fits_trainer(self, p: Parameter, path: str) -> None:
        """Bounds that parse and make a range, and values of the type the trainer field takes."""
        space = f"{path}.feasibleSpace"
        if p.trainer_type == "str":
            if p.parameter_type != "categorical":
                self.fail(
                    f"{path}.parameterType", f"{p.name} is a string field: use categorical, not {p.parameter_type}"
                )
            for index, value in enumerate(p.values):
                # The value is substituted into a JSON string of the trial's command line.
                if not value or any(char in value for char in '"\\') or not value.isprintable():
                    self.fail(
                        f"{space}.list[{index}]",
                        f"{value!r} must be non-empty, printable, without quotes or backslashes",
                    )
            return
        if p.parameter_type == "double" and p.trainer_type == "int":
            self.fail(f"{path}.parameterType", f"{p.name} is an integer field: use int or discrete, not double")
            return
        pattern = _JSON_INTEGER if p.trainer_type == "int" else _JSON_NUMBER
        kind = "an integer" if p.trainer_type == "int" else "a number"
        for index, value in enumerate(p.values):
            # A numeric list value is substituted unquoted into JSON, so it must be a JSON number literal.
            if not pattern.fullmatch(value):
                self.fail(f"{space}.list[{index}]", f"{value!r} must be {kind} (JSON syntax) for {p.name}")
        if p.parameter_type not in ("int", "double"):
            return
        bound_pattern = _JSON_INTEGER if p.parameter_type == "int" else _JSON_NUMBER
        bound_kind = "an integer" if p.parameter_type == "int" else "a number"
        bounds: dict[str, float] = {}
        for key in ("min", "max", "step"):
            text = getattr(p, key)
            if text is None:
                continue
            if not bound_pattern.fullmatch(text):
                self.fail(f"{space}.{key}", f"{text!r} must be {bound_kind}")
            else:
                bounds[key] = float(text)
        if "min" in bounds and "max" in bounds and bounds["min"] >= bounds["max"]:
            self.fail(f"{space}.max", f"{p.max} must be greater than min ({p.min})")
        if "step" in bounds and bounds["step"] <= 0:
            self.fail(f"{space}.step", f"{p.step} must be positive")
        if p.is_log and "min" in bounds and bounds["min"] <= 0:
            self.fail(f"{space}.min", f"{p.min} must be positive for distribution {p.distribution}")

    def objective(self, source: Any) -> Objective | None:
        if not isinstance(source, Mapping):
            self.fail("objective", "is required (type and objectiveMetricName)")
            return None
        known = ("type", "goal", "objectiveMetricName", "additionalMetricNames")
        for key in source:
            if key not in known:
                self.fail(f"objective.{key}", f"unknown field; known fields: {', '.join(known)}")
        kind, name = source.get("type"), source.get("objectiveMetricName")
        problems = len(self.problems)
        if kind not in OBJECTIVE_TYPES:
            self.fail("objective.type", f"{kind!r} is not one of {', '.join(OBJECTIVE_TYPES)}")
        if not isinstance(name, str) or not name:
            self.fail("objective.objectiveMetricName", "is required")
        elif name not in self.trainer.metrics:
            self.fail(
                "objective.objectiveMetricName",
                f"{name!r} is not a metric of the {self.trainer.name} trainer; "
                f"use one of {', '.join(self.trainer.metrics)}",
            )
        goal = source.get("goal")
        if goal is not None and not _is_number(goal):
            self.fail("objective.goal", f"must be a number, got {goal!r}")
        # A run prints one group of metrics (a tabular classifier's, say): the others are never observed.
        group = self.trainer.metric_group(name) if name in self.trainer.metrics else {}
        default_additional = [metric for metric in group if metric.startswith("eval_") and metric != name]
        additional = source.get("additionalMetricNames", default_additional)
        if not isinstance(additional, list) or not all(isinstance(metric, str) for metric in additional):
            self.fail("objective.additionalMetricNames", "must be a list of metric names")
            additional = []
        for index, metric in enumerate(additional):
            if metric == name:
                self.fail(f"objective.additionalMetricNames[{index}]", f"repeats the objective metric {name!r}")
            elif metric not in self.trainer.metrics:
                self.fail(
                    f"objective.additionalMetricNames[{index}]",
                    f"{metric!r} is not a metric of the {self.trainer.name} trainer",
                )
            elif group and metric not in group:
                self.fail(
                    f"objective.additionalMetricNames[{index}]",
                    f"{metric!r} is never printed in the same run as {name!r}; use one of {', '.join(group)}",
                )
            elif additional.index(metric) != index:
                self.fail(f"objective.additionalMetricNames[{index}]", f"{metric!r} is given twice")
        if len(self.problems) > problems:
            return None
        return Objective(kind, name, tuple(additional), None if goal is None else float(goal))

    def algorithm(self, source: Any, path: str, known: Sequence[str]) -> Algorithm | None:
        if not isinstance(source, Mapping):
            self.fail(path, "is required (algorithmName)")
            return None
        for key in source:
            if key not in ("algorithmName", "algorithmSettings"):
                self.fail(f"{path}.{key}", "unknown field; known fields: algorithmName, algorithmSettings")
        name = source.get("algorithmName")
        problems = len(self.problems)
        if name not in known:
            self.fail(f"{path}.algorithmName", f"{name!r} is not one of {', '.join(known)}")
        settings: list[tuple[str, str]] = []
        raw_settings = source.get("algorithmSettings", [])
        if not isinstance(raw_settings, list):
            self.fail(f"{path}.algorithmSettings", "must be a list of {name, value} objects")
            raw_settings = []
        for index, setting in enumerate(raw_settings):
            setting_path = f"{path}.algorithmSettings[{index}]"
            if not isinstance(setting, Mapping) or not isinstance(setting.get("name"), str) or not setting["name"]:
                self.fail(setting_path, "must be an object with a name and a value")
                continue
            value = self.text(setting.get("value"), f"{setting_path}.value")
            if any(setting["name"] == existing for existing, _ in settings):
                self.fail(f"{setting_path}.name", f"{setting['name']!r} is given twice")
            elif value is not None:
                settings.append((setting["name"], value))
        if len(self.problems) > problems:
            return None
        return Algorithm(name, tuple(settings))

    def medianstop_settings(self, early_stopping: Algorithm) -> None:
        for index, (name, value) in enumerate(early_stopping.settings):
            path = f"earlyStopping.algorithmSettings[{index}]"
            if name not in MEDIANSTOP_DEFAULTS:
                self.fail(f"{path}.name", f"{name!r} is not a medianstop setting; use {', '.join(MEDIANSTOP_DEFAULTS)}")
            elif not _JSON_INTEGER.fullmatch(value) or int(value) < 1:
                self.fail(f"{path}.value", f"{name} must be a positive integer, got {value!r}")

    def fits_algorithm(self, parameters: Sequence[Parameter], algorithm: Algorithm, max_trials: int | None) -> None:
        if algorithm.name == "grid":
            for index, p in enumerate(parameters):
                if p.parameter_type == "double" and p.step is None:
                    self.fail(
                        f"parameters[{index}].feasibleSpace.step", "is required for a double parameter of a grid search"
                    )
            if not self.problems and max_trials is not None:
                combinations = math.prod(len(p.grid()) for p in parameters)
                if max_trials > combinations:
                    self.fail("maxTrialCount", f"{max_trials} exceeds the {combinations} points of the grid")
        if algorithm.name == "cmaes" and sum(p.parameter_type in ("int", "double") for p in parameters) < 2:
            self.fail("algorithm.algorithmName", "cmaes needs at least two int or double parameters")


def check_trainer_settings(settings: Mapping[str, Any], trainer: str = "text") -> None:
    """Raise :class:`SearchSpaceError` unless every setting is a ``--config`` field of ``trainer`` given a value
    of its type."""
    known = TRAINERS[trainer].settings
    problems = []
    for name, value in settings.items():
        kind = known.get(name)
        if kind is None:
            problems.append(f"{name}: not a {trainer} trainer setting; known settings: {', '.join(known)}")
        elif trainer == "tabular" and name in TRAINERS[trainer].parameters:
            continue  # a fixed tabular hyperparameter may be a word ("sqrt"): check_trainer_fit resolves it
        elif not _has_type(value, kind):
            problems.append(f"{name}: must be {kind}, got {value!r}")
    if problems:
        raise SearchSpaceError(f"invalid {trainer} trainer settings:\n" + "\n".join(f"- {p}" for p in problems))


TEXT_TRIAL_SETTINGS = (
    "text_column", "label_column", "base_model", "epochs", "batch_size", "learning_rate", "max_length",
    "max_steps", "warmup_ratio", "seed",
)  # fmt: skip
TABULAR_TRIAL_SETTINGS = ("task", "target_column", "feature_columns", "algorithm", "seed")


def trial_settings(trainer: str, arguments: Mapping[str, Any], hyperparameters: str = "") -> dict[str, Any]:
    """What every trial of ``trainer`` is given: its fixed ``--config`` fields, taken from a tune component's
    ``arguments``, and for the tabular trainer the fixed ``hyperparameters`` (a JSON object; a searched
    parameter's trial value replaces a fixed one)."""
    if trainer not in TRAINERS:
        raise SearchSpaceError(f"trainer {trainer!r} is not one of {', '.join(TRAINERS)}")
    names = TABULAR_TRIAL_SETTINGS if trainer == "tabular" else TEXT_TRIAL_SETTINGS
    settings = {name: list(arguments[name]) if name == "feature_columns" else arguments[name] for name in names}
    if not hyperparameters.strip():
        return settings
    if trainer != "tabular":
        raise SearchSpaceError("hyperparameters: fixed hyperparameters are for the tabular trainer; the text "
                               "trainer's are the tune component's own parameters")  # fmt: skip
    try:
        fixed = json.loads(hyperparameters)
    except ValueError as error:
        raise SearchSpaceError(f"hyperparameters: not valid JSON: {error}") from None
    if not isinstance(fixed, dict):
        raise SearchSpaceError(f"hyperparameters: must be a JSON object, got {hyperparameters!r}")
    unknown = sorted(set(fixed) - set(TRAINERS[trainer].parameters))
    if unknown:
        raise SearchSpaceError(
            f"hyperparameters: {', '.join(unknown)} not tabular hyperparameters; known: "
            f"{', '.join(TRAINERS[trainer].parameters)}"
        )
    return {**settings, **fixed}


def fixed_hyperparameters(space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The tabular trainer's hyperparameters fixed in ``settings`` and not searched: they belong in the best
    parameters beside the searched ones, because train_tabular trains with best_parameters alone."""
    if space.trainer != "tabular":
        return {}
    searched = {parameter.name for parameter in space.parameters}
    tunable = TRAINERS["tabular"].parameters
    return {name: value for name, value in settings.items() if name in tunable and name not in searched}


def check_trainer_fit(space: SearchSpace, settings: Mapping[str, Any]) -> None:
    """Raise :class:`SearchSpaceError` where the space cannot work with the fixed settings of its trainer.

    Checks :func:`check_trainer_settings`, and for the tabular trainer that the objective is a metric of the
    task, and that every parameter is a hyperparameter of the algorithm and task whose bounds (or every
    listed value) the trainer accepts, so that no trial fails on them.
    """
    check_trainer_settings(settings, space.trainer)
    if space.trainer != "tabular":
        return
    task = settings.get("task", "classification")
    algorithm = settings.get("algorithm", "xgboost")
    problems = []
    metrics = TABULAR_METRICS_BY_TASK.get(task, {})
    if space.objective.objective_metric_name not in metrics:
        problems.append(
            f"objective.objectiveMetricName: {space.objective.objective_metric_name!r} is not printed for task "
            f"{task!r}; use one of {', '.join(metrics)}"
        )
    fixed = fixed_hyperparameters(space, settings)
    try:
        tabular_hyperparameters.resolve(algorithm, task, fixed)
    except tabular_hyperparameters.TabularError as error:
        problems.append(f"fixed hyperparameters {fixed}: {error}")
    for index, p in enumerate(space.parameters):
        values = [p.typed(text) for text in (p.values or [p.min, p.max])]  # type: ignore[list-item]
        for value in values:
            try:
                tabular_hyperparameters.resolve(algorithm, task, {p.name: value})
            except tabular_hyperparameters.TabularError as error:
                problems.append(f"parameters[{index}] ({p.name}): {error}")
                break
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        raise SearchSpaceError(f"search space does not fit the tabular trainer:\n{listed}")


def _has_type(value: Any, kind: str) -> bool:
    if kind == "list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return {"str": isinstance(value, str), "int": _is_int(value), "float": _is_number(value)}[kind]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
