"""What a tuning run gives back, the same for both backends: the best parameters (JSON), summary metrics and
an HTML table of the trials. Pure Python, shared by the ``tune`` (Katib) and ``tune_local`` (Optuna) components.

Trial states use Katib's words: ``Succeeded``, ``Failed``, ``EarlyStopped``, ``Killed``,
``MetricsUnavailable`` (and ``Running`` / ``Pending`` for a Katib trial still going).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from components.tune.search_space import SearchSpace, Value

SUCCEEDED = "Succeeded"
FAILED = "Failed"
EARLY_STOPPED = "EarlyStopped"
KILLED = "Killed"
METRICS_UNAVAILABLE = "MetricsUnavailable"


class TuneError(RuntimeError):
    """A tuning run that gave no usable result: too many failed trials, a timeout, or no trial succeeding."""


@dataclass(frozen=True)
class TrialRecord:
    name: str
    state: str
    parameters: Mapping[str, Value]
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Each metric reduced over the trial's epochs by its strategy (see ``Objective.strategies``)."""
    message: str = ""


@dataclass(frozen=True)
class TuneResult:
    backend: str
    """``"katib"`` or ``"optuna"``."""
    space: SearchSpace
    best: TrialRecord
    trials: Sequence[TrialRecord]
    notes: Sequence[str] = ()
    """How the run departed from the search space as written (e.g. a sampler stand-in), shown on the page."""

    @property
    def best_parameters(self) -> dict[str, Value]:
        return dict(self.best.parameters)

    def count(self, state: str) -> int:
        return sum(trial.state == state for trial in self.trials)

    def summary_metrics(self) -> dict[str, float]:
        """The best trial's metrics, trial counts by state, and each numeric best parameter as ``param_<name>``."""
        metrics = {
            name: float(self.best.metrics[name])
            for name in self.space.objective.metric_names
            if name in self.best.metrics
        }
        metrics["trials_total"] = float(len(self.trials))
        for state in (SUCCEEDED, FAILED, EARLY_STOPPED, KILLED):
            metrics[f"trials_{_snake(state)}"] = float(self.count(state))
        for name, value in self.best.parameters.items():
            if not isinstance(value, str):
                metrics[f"param_{name}"] = float(value)
        return metrics


def best_trial(space: SearchSpace, trials: Sequence[TrialRecord]) -> TrialRecord:
    """The succeeded trial with the best objective value (the first of equals); :class:`TuneError` if none."""
    objective = space.objective
    scored = [t for t in trials if t.state == SUCCEEDED and objective.objective_metric_name in t.metrics]
    if not scored:
        raise TuneError(f"no trial succeeded with a value of {objective.objective_metric_name}: {_states(trials)}")
    best = scored[0]
    for trial in scored[1:]:
        if objective.is_better(
            trial.metrics[objective.objective_metric_name], best.metrics[objective.objective_metric_name]
        ):
            best = trial
    return best


def trials_page(result: TuneResult) -> str:
    """One self-contained HTML page: the search setup, then one row per trial, the best one marked."""
    space = result.space
    objective = space.objective
    parameters = [parameter.name for parameter in space.parameters]
    metrics = list(objective.metric_names)
    strategies = objective.strategies()
    header = "".join(f"<th>{escape(name)}</th>" for name in ["trial", "state", *parameters])
    header += "".join(f"<th>{escape(name)} ({strategies[name]})</th>" for name in metrics) + "<th>message</th>"
    rows = []
    for trial in result.trials:
        cells = [trial.name, trial.state, *(_format(trial.parameters.get(name)) for name in parameters)]
        cells += [_format(trial.metrics.get(name)) for name in metrics]
        row = (
            "".join(f"<td>{escape(cell)}</td>" for cell in cells) + f'<td class="message">{escape(trial.message)}</td>'
        )
        marker = ' class="best"' if trial.name == result.best.name else ""
        rows.append(f"<tr{marker}>{row}</tr>")
    goal = "" if objective.goal is None else f", goal {objective.goal:g}"
    setup = [
        f"backend: {result.backend}",
        f"algorithm: {space.algorithm.name}",
        f"objective: {objective.type} {objective.objective_metric_name}{goal}",
        f"trials: {len(result.trials)} of at most {space.max_trial_count}, {space.parallel_trial_count} at a time, "
        f"at most {space.max_failed_trial_count} failed",
        "early stopping: " + (space.early_stopping.name if space.early_stopping else "none"),
        f"best: {result.best.name} {json.dumps(result.best_parameters)}",
    ]
    items = "".join(f"<li>{escape(line)}</li>" for line in [*setup, *(f"note: {note}" for note in result.notes)])
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Hyperparameter search</title><style>'
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}td.message{text-align:left;max-width:40em}"
        "tr.best{background:#e6f4ea;font-weight:bold}</style></head><body>"
        f"<h1>Hyperparameter search: {escape(objective.objective_metric_name)}</h1><ul>{items}</ul>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


def write_outputs(
    result: TuneResult, trials_html_path: str, best_parameters_path: str, fixed: Mapping[str, Value] | None = None
) -> dict[str, float]:
    """Write the trials page, then the best parameters (last: a best-parameters file means a finished run),
    preceded by the ``fixed`` hyperparameters every trial had (see search_space.fixed_hyperparameters).

    Returns the summary metrics for the caller to log on its ``Metrics`` artifact.
    """
    _write_text(Path(trials_html_path), trials_page(result))
    _write_text(Path(best_parameters_path), json.dumps({**(fixed or {}), **result.best_parameters}))
    return result.summary_metrics()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def _format(value: Value | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _snake(state: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() and index else char.lower() for index, char in enumerate(state))


def _states(trials: Sequence[TrialRecord]) -> str:
    if not trials:
        return "no trials ran"
    return "; ".join(f"{t.name} {t.state}" + (f" ({t.message})" if t.message else "") for t in trials)
