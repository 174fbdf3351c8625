"""Run a search in this container with Optuna: the same search space, trainer and outputs as the Katib backend.

Every trial is a real training run: ``python -m components.train.text_trainer --config '<JSON>'`` (or
``components.train_tabular.tabular_trainer`` for the tabular trainer) in its own process, exactly the
command a Katib trial runs. Up to ``parallelTrialCount`` of them run at once.
The main process suggests the values (Optuna's ask/tell). It reads each trial's ``name=value`` lines
as they are printed, the way Katib's StdOut collector does. The objective of every epoch is an
intermediate value, so median pruning can stop a trial between epochs (Katib's medianstop). A
trial's metrics are reduced over its epochs by the metric strategies, as Katib does.

Katib's algorithms map to samplers: random -> RandomSampler, grid -> GridSampler, tpe -> TPESampler,
multivariate-tpe -> TPESampler(multivariate=True), cmaes -> CmaEsSampler (needs the ``cmaes``
package), bayesianoptimization -> GPSampler (TPESampler where Optuna has no GPSampler). Optuna has
no normal distributions: ``normal`` and ``logNormal`` are sampled uniformly and log-uniformly over
[min, max]. Every such departure is listed in the result's notes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from components.tune.metric_lines import METRIC_LINE
from components.tune.results import (
    EARLY_STOPPED,
    FAILED,
    KILLED,
    SUCCEEDED,
    TrialRecord,
    TuneError,
    TuneResult,
    best_trial,
    write_outputs,
)
from components.tune.search_space import (
    TRAINERS,
    Parameter,
    SearchSpace,
    Value,
    check_trainer_fit,
    fixed_hyperparameters,
    parse_search_space,
)

# Katib algorithm settings the local samplers honour: setting -> (sampler argument, type).
_SAMPLER_SETTINGS: dict[str, dict[str, tuple[str, Callable[[str], Any]]]] = {
    "tpe": {"n_startup_trials": ("n_startup_trials", int), "n_ei_candidates": ("n_ei_candidates", int)},
    "multivariate-tpe": {"n_startup_trials": ("n_startup_trials", int), "n_ei_candidates": ("n_ei_candidates", int)},
    "bayesianoptimization": {"n_initial_points": ("n_startup_trials", int)},
    "cmaes": {"sigma": ("sigma0", float)},
    "random": {},
    "grid": {},
}


class _GridSampler(GridSampler):
    """A GridSampler for ask-and-tell: Optuna's stops the study once the grid is used up, which it allows only
    inside ``study.optimize``. Here ``maxTrialCount``, at most the grid's size, ends the search."""

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState, values: Any) -> None:
        pass


def sampler_for(space: SearchSpace, seed: int) -> tuple[BaseSampler, list[str]]:
    """The Optuna sampler for the space's algorithm, and notes on what differs from Katib's service.

    A ``random_state`` algorithm setting overrides ``seed``. Raises :class:`TuneError` for cmaes when the
    ``cmaes`` package is missing, rather than failing at the first trial.
    """
    algorithm = space.algorithm
    honoured = _SAMPLER_SETTINGS[algorithm.name]
    options: dict[str, Any] = {}
    notes = []
    for name, value in algorithm.settings:
        if name == "random_state":
            seed = int(value)
        elif name in honoured:
            argument, convert = honoured[name]
            options[argument] = convert(value)
        else:
            notes.append(f"algorithm setting {name}={value} is not used by the local backend")
    if algorithm.name == "random":
        return RandomSampler(seed=seed), notes
    if algorithm.name == "grid":
        return _GridSampler({p.name: p.grid() for p in space.parameters}, seed=seed), notes
    if algorithm.name in ("tpe", "multivariate-tpe"):
        return TPESampler(seed=seed, multivariate=algorithm.name == "multivariate-tpe", **options), notes
    if algorithm.name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise TuneError("algorithm cmaes needs the cmaes package, which is not installed in this image")
        return CmaEsSampler(seed=seed, **options), notes
    gp_sampler = getattr(optuna.samplers, "GPSampler", None)
    if gp_sampler is None:
        notes.append(f"optuna {optuna.__version__} has no GPSampler: bayesianoptimization runs as TPE")
        return TPESampler(seed=seed, **options), notes
    return gp_sampler(seed=seed, **options), notes


def pruner_for(space: SearchSpace) -> BasePruner:
    """Median pruning for medianstop: from ``min_trials_required`` finished trials, at epoch ``start_step`` on."""
    if space.early_stopping is None:
        return NopPruner()
    min_trials_required, start_step = space.medianstop()
    return MedianPruner(n_startup_trials=min_trials_required, n_warmup_steps=start_step)


def distribution_notes(space: SearchSpace) -> list[str]:
    notes = []
    for p in space.parameters:
        if p.distribution in ("normal", "logNormal"):
            kind = "log-uniformly" if p.is_log else "uniformly"
            notes.append(
                f"{p.name}: Optuna has no {p.distribution} distribution; sampled {kind} over [{p.min}, {p.max}]"
            )
        if p.is_log and p.step and float(p.step) != 1:
            notes.append(f"{p.name}: step {p.step} is not used with a {p.distribution} distribution")
    return notes


def suggest(trial: optuna.Trial, p: Parameter) -> Value:
    """The trial's value for ``p``, of the type of the trainer field it sets."""
    if p.values:
        value: Value = trial.suggest_categorical(p.name, p.choices())
    elif p.parameter_type == "int":
        step = 1 if p.is_log or not p.step else int(p.step)
        value = trial.suggest_int(p.name, int(p.min), int(p.max), step=step, log=p.is_log)  # type: ignore[arg-type]
    else:
        step_value = None if p.is_log or not p.step else float(p.step)
        value = trial.suggest_float(p.name, float(p.min), float(p.max), step=step_value, log=p.is_log)  # type: ignore[arg-type]
    return {"int": int, "float": float, "str": str}[p.trainer_type](value)


@dataclass
class _Running:
    trial: optuna.Trial
    name: str
    parameters: dict[str, Value]
    process: subprocess.Popen[str]
    log: IO[str]
    folder: Path
    values: dict[str, list[float]] = field(default_factory=dict)
    epoch: int = 0
    pruned: bool = False
    killed: bool = False

    def kill(self) -> None:
        """The whole process group: the trainer may have started workers (torchrun) that hold its stdout."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_trials(
    study: optuna.Study,
    space: SearchSpace,
    base_config: Mapping[str, Any],
    *,
    work_dir: Path,
    timeout_seconds: float,
    notes: list[str] | None = None,
) -> TuneResult:
    """Run up to ``maxTrialCount`` trials of ``study``, ``parallelTrialCount`` at a time, and return the result.

    ``base_config`` holds the TrainConfig fields every trial shares (with the data paths); each trial adds
    its suggested values and its own ``model_dir`` under ``work_dir`` (deleted when it ends). The run
    stops early when the objective reaches its goal (running trials are killed). It raises
    :class:`TuneError` when more trials fail than ``maxFailedTrialCount``, when ``timeout_seconds`` pass
    before the last trial ends, or when no trial succeeds.
    """
    objective = space.objective
    strategies = objective.strategies()
    events: queue.Queue[tuple[int, str | None]] = queue.Queue()
    running: dict[int, _Running] = {}
    records: dict[int, TrialRecord] = {}
    deadline = time.monotonic() + timeout_seconds
    launched = 0
    stop: str | None = None  # why no more trials start
    stop_is_error = False

    def launch() -> None:
        trial = study.ask()
        parameters = {p.name: suggest(trial, p) for p in space.parameters}
        folder = work_dir / f"trial-{trial.number}"
        folder.mkdir(parents=True)
        config = {**base_config, **parameters, "model_dir": str(folder / "model")}
        log = (folder / "stderr.log").open("w+")
        process = subprocess.Popen(
            [sys.executable, "-m", TRAINERS[space.trainer].module, "--config", json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group, so that a kill reaches its workers too
        )
        running[trial.number] = _Running(trial, f"trial-{trial.number}", parameters, process, log, folder)
        threading.Thread(target=_read_lines, args=(trial.number, process.stdout, events), daemon=True).start()
        print(f"trial-{trial.number} started: {json.dumps(parameters)}", flush=True)

    def on_line(run: _Running, line: str) -> None:
        match = METRIC_LINE.fullmatch(line.strip())
        if match is None or not match.group(2) or run.pruned or run.killed:
            return
        name, value = match.group(1), float(match.group(2))
        if name == "epoch":
            run.epoch = int(value)
        elif name in strategies:
            run.values.setdefault(name, []).append(value)
            if name == objective.objective_metric_name:
                run.trial.report(value, step=run.epoch)
                if run.trial.should_prune():
                    run.pruned = True
                    run.kill()

    def on_exit(run: _Running) -> TrialRecord:
        return_code = run.process.wait()
        metrics = {name: (max if strategies[name] == "max" else min)(values) for name, values in run.values.items()}
        value = metrics.get(objective.objective_metric_name)
        if run.pruned:
            study.tell(run.trial, state=TrialState.PRUNED)
            record = TrialRecord(run.name, EARLY_STOPPED, run.parameters, metrics, f"pruned after epoch {run.epoch}")
        elif run.killed:
            study.tell(run.trial, state=TrialState.FAIL)
            record = TrialRecord(run.name, KILLED, run.parameters, metrics, f"killed: {stop}")
        elif return_code == 0 and value is not None:
            study.tell(run.trial, value)
            record = TrialRecord(run.name, SUCCEEDED, run.parameters, metrics)
        else:
            study.tell(run.trial, state=TrialState.FAIL)
            reason = _last_line(run.log) if return_code else f"printed no {objective.objective_metric_name}"
            record = TrialRecord(run.name, FAILED, run.parameters, metrics, f"exit code {return_code}: {reason}")
        run.log.close()
        shutil.rmtree(run.folder, ignore_errors=True)
        print(f"{record.name} {record.state}: {json.dumps(record.metrics)} {record.message}".rstrip(), flush=True)
        return record

    def stop_all(reason: str, *, error: bool) -> None:
        nonlocal stop, stop_is_error
        if stop is None:
            stop, stop_is_error = reason, error
        for run in running.values():
            if not run.pruned and not run.killed:
                run.killed = True
                run.kill()

    try:
        while True:
            while stop is None and len(running) < space.parallel_trial_count and launched < space.max_trial_count:
                launch()
                launched += 1
            if not running:
                break
            try:
                # Once stopping, the killed trials' pipes close at once: wait for them without a deadline.
                number, line = events.get(timeout=None if stop else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                stop_all(f"the search ran past its timeout of {timeout_seconds:g} s", error=True)
                continue
            if line is not None:
                on_line(running[number], line)
                continue
            record = records[number] = on_exit(running.pop(number))
            failures = sum(r.state == FAILED for r in records.values())
            if record.state == FAILED and failures > space.max_failed_trial_count:
                limit = space.max_failed_trial_count
                stop_all(f"{failures} trials failed, more than maxFailedTrialCount ({limit})", error=True)
            elif record.state == SUCCEEDED and objective.reached(record.metrics[objective.objective_metric_name]):
                stop_all(f"{record.name} reached the goal {objective.goal:g}", error=False)
    except BaseException:
        stop_all("the search was interrupted", error=True)
        for run in running.values():
            run.process.wait()
            run.log.close()
        raise
    trials = [records[number] for number in sorted(records)]
    if stop_is_error:
        failed = "; ".join(f"{t.name}: {t.message}" for t in trials if t.state == FAILED)
        raise TuneError(f"the search stopped: {stop}" + (f"; failed trials: {failed}" if failed else ""))
    return TuneResult("optuna", space, best_trial(space, trials), trials, notes or [])


def run_search(
    space: SearchSpace,
    base_config: Mapping[str, Any],
    *,
    seed: int,
    timeout_seconds: float,
    threads_per_trial: int = 0,
) -> TuneResult:
    """A fresh in-memory study with the space's sampler and pruner, run by :func:`run_trials`.

    ``threads_per_trial == 0`` shares this machine's CPUs among the parallel trials (torch threads).
    """
    sampler, notes = sampler_for(space, seed)
    notes += distribution_notes(space)
    study = optuna.create_study(
        direction="maximize" if space.objective.type == "maximize" else "minimize",
        sampler=sampler,
        pruner=pruner_for(space),
    )
    threads = threads_per_trial or max(1, (os.cpu_count() or 1) // space.parallel_trial_count)
    config = {"num_threads": threads, **base_config}
    with tempfile.TemporaryDirectory(prefix="tune-") as work_dir:
        return run_trials(study, space, config, work_dir=Path(work_dir), timeout_seconds=timeout_seconds, notes=notes)


def run_tune_local(
    *,
    search_space: str,
    train_path: str,
    eval_path: str,
    settings: dict[str, Any],
    trials_html_path: str,
    best_parameters_path: str,
    seed: int,
    timeout_seconds: float,
    threads_per_trial: int = 0,
    trainer: str = "text",
) -> dict[str, float]:
    """The ``tune_local`` component: parse, search, write the outputs; returns the metrics to log."""
    space = parse_search_space(search_space, trainer)
    check_trainer_fit(space, settings)
    base_config = {"train_path": train_path, "eval_path": eval_path, **settings}
    result = run_search(
        space, base_config, seed=seed, timeout_seconds=timeout_seconds, threads_per_trial=threads_per_trial
    )
    return write_outputs(result, trials_html_path, best_parameters_path, fixed_hyperparameters(space, settings))


def _read_lines(number: int, stream: IO[str], events: queue.Queue[tuple[int, str | None]]) -> None:
    for line in stream:
        events.put((number, line))
    stream.close()
    events.put((number, None))


def _last_line(log: IO[str], limit: int = 500) -> str:
    log.flush()
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else "no error output"
