"""The hyperparameters each algorithm accepts, their defaults and ranges, and their validation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


class TabularError(ValueError):
    """Bad input to the tabular trainer: the message names the file, column, row or field."""


@dataclass(frozen=True)
class Param:
    kind: type  # int or float
    default: Any
    low: float | None = None
    high: float | None = None
    low_exclusive: bool = False
    also: tuple = ()  # non-numeric values also allowed, e.g. None or "sqrt"

    def check(self, name: str, value: Any) -> Any:
        if value in self.also and not isinstance(value, bool):
            return value
        allowed = f"; or one of {list(self.also)}" if self.also else ""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TabularError(f"hyperparameter {name!r} must be a {self.kind.__name__}{allowed}, got {value!r}")
        if self.kind is int:
            if not float(value).is_integer():
                raise TabularError(f"hyperparameter {name!r} must be an integer, got {value!r}")
            value = int(value)
        value = self.kind(value)
        too_low = self.low is not None and (value <= self.low if self.low_exclusive else value < self.low)
        if not math.isfinite(value) or too_low or (self.high is not None and value > self.high):
            low = "-inf" if self.low is None else self.low
            bracket = "(" if self.low_exclusive else "["
            interval = f"{bracket}{low}, {self.high or 'inf'}]"
            raise TabularError(f"hyperparameter {name!r} must be in {interval}, got {value!r}")
        return value


@dataclass(frozen=True)
class Choice:
    default: str
    choices: tuple[str, ...]

    def check(self, name: str, value: Any) -> str:
        if value not in self.choices:
            raise TabularError(f"hyperparameter {name!r} must be one of {list(self.choices)}, got {value!r}")
        return value


ALGORITHM_PARAMS: dict[str, dict[str, Param | Choice]] = {
    "xgboost": {
        "n_estimators": Param(int, 200, low=1, high=10000),
        "max_depth": Param(int, 6, low=1, high=32),
        "learning_rate": Param(float, 0.1, low=0, high=1, low_exclusive=True),
        "subsample": Param(float, 1.0, low=0, high=1, low_exclusive=True),
        "colsample_bytree": Param(float, 1.0, low=0, high=1, low_exclusive=True),
        "min_child_weight": Param(float, 1.0, low=0),
        "reg_lambda": Param(float, 1.0, low=0),
    },
    "random_forest": {
        "n_estimators": Param(int, 200, low=1, high=10000),
        "max_depth": Param(int, None, low=1, also=(None,)),
        "min_samples_leaf": Param(int, 1, low=1),
        "max_features": Param(float, "sqrt", low=0, high=1, low_exclusive=True, also=("sqrt", "log2")),
    },
    "svm": {
        "C": Param(float, 1.0, low=0, low_exclusive=True),
        "gamma": Param(float, "scale", low=0, low_exclusive=True, also=("scale", "auto")),
        "epsilon": Param(float, 0.1, low=0),  # regression only
    },
    "linear": {
        "C": Param(float, 1.0, low=0, low_exclusive=True),  # classification: inverse L2 strength
        "alpha": Param(float, 1.0, low=0),  # regression: L2 strength
    },
}
TASK_PARAMS: dict[str, dict[str, Param | Choice]] = {
    "classification": {"class_weight": Choice("balanced", ("balanced", "none"))},
    "regression": {"target_transform": Choice("none", ("none", "log1p"))},
}
ONLY_FOR = {("svm", "epsilon"): "regression", ("linear", "C"): "classification", ("linear", "alpha"): "regression"}


def resolve(algorithm: str, task: str, hyperparameters: str | dict | None) -> dict[str, Any]:
    """Defaults of ``algorithm`` for ``task`` overridden by a JSON object; raise TabularError naming a bad field."""
    if algorithm not in ALGORITHM_PARAMS:
        raise TabularError(f"unknown algorithm {algorithm!r}; known: {sorted(ALGORITHM_PARAMS)}")
    if task not in TASK_PARAMS:
        raise TabularError(f"unknown task {task!r}; known: {sorted(TASK_PARAMS)}")
    specs = {
        name: spec
        for name, spec in {**ALGORITHM_PARAMS[algorithm], **TASK_PARAMS[task]}.items()
        if ONLY_FOR.get((algorithm, name), task) == task
    }
    overrides = _parse(hyperparameters)
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise TabularError(
            f"hyperparameters: unknown field(s) {unknown} for algorithm {algorithm!r} and task {task!r}; "
            f"known: {sorted(specs)}"
        )
    return {
        name: spec.check(name, overrides[name]) if name in overrides else spec.default for name, spec in specs.items()
    }


def _parse(hyperparameters: str | dict | None) -> dict[str, Any]:
    if not hyperparameters:
        return {}
    if isinstance(hyperparameters, dict):
        return hyperparameters
    try:
        parsed = json.loads(hyperparameters)
    except json.JSONDecodeError as error:
        raise TabularError(f"hyperparameters is not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise TabularError(f"hyperparameters must be a JSON object, got {type(parsed).__name__}")
    return parsed
