"""Feast feature sources from task-execution records: rolling per-queue and per-user history.

For every queue (user) and every tick (each ``every_hours``, on the hour), the tasks of that queue (user)
that *finished* (submit time + duration) in the ``window_hours`` before the tick give one row of
``queue_task_stats`` (``user_task_stats``), the views of ``feature_repo/tabular_features.py``:
``<prefix>_task_count`` (int64), ``<prefix>_avg_duration_s`` and ``<prefix>_failure_rate`` (float64; null
when no task finished in the window), ``event_timestamp`` = the tick (UTC). Ticks run from the first
submission to the last finish, for entities with any task so far.

Only finished tasks count, so a task's own outcome and duration never reach the features of its own row
in a point-in-time join at its submit time (it finishes after it is submitted).

The records' splits are also written back with the views' join keys (``queue_id``, ``user_id``) added,
ready to be the entity rows of ``training_set``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from components.features.outputs import write_atomically
from components.features.store import SOURCES_ENV, default_repo_path

DEFAULT_SOURCES = "data/sources"  # as feature_repo/feature_sources.py: relative to the feature repo
VIEWS = {"queue": ("queue_task_stats", "queue_id"), "user": ("user_task_stats", "user_id")}


class TaskStatsError(ValueError):
    """Bad task records: the message names the file, column or rows."""


@dataclass(frozen=True)
class RecordColumns:
    queue: str = "queue"
    user: str = "user_id"
    time: str = "submit_time"
    duration: str = "duration_s"
    outcome: str = "outcome"
    failed_value: str = "failed"


def read_records(path: str | Path, columns: RecordColumns) -> pd.DataFrame:
    """One split (Parquet) with its submit times as UTC timestamps; raise TaskStatsError naming the problem."""
    try:
        frame = pd.read_parquet(path).reset_index(drop=True)  # rows are named by their position in the file
    except (OSError, pa.ArrowException) as error:
        raise TaskStatsError(f"cannot read task records {path}: {error}") from error
    needed = [columns.queue, columns.user, columns.time, columns.duration, columns.outcome]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise TaskStatsError(f"{path}: missing column(s) {missing}; it has {list(frame.columns)}")
    times = pd.to_datetime(frame[columns.time], utc=True, errors="coerce")
    bad = frame.index[times.isna()]
    if len(bad):
        raise TaskStatsError(f"{path}: column {columns.time!r} is empty or not a time in rows {list(bad[:10])}")
    durations = pd.to_numeric(frame[columns.duration], errors="coerce")
    bad = frame.index[durations.isna() | (durations < 0)]
    if len(bad):
        raise TaskStatsError(f"{path}: column {columns.duration!r} is empty or negative in rows {list(bad[:10])}")
    for name in (columns.queue, columns.user):
        bad = frame.index[frame[name].isna()]
        if len(bad):
            raise TaskStatsError(f"{path}: column {name!r} is empty in rows {list(bad[:10])}")
    return frame.assign(**{columns.time: times, columns.duration: durations.astype(float)})


def rolling_stats(
    records: pd.DataFrame, entity_column: str, prefix: str, columns: RecordColumns, window_hours: float,
    every_hours: float,
) -> pd.DataFrame:  # fmt: skip
    """One row per entity per tick: the tasks of the entity that finished in the window ending at the tick."""
    join_key = VIEWS[prefix][1]
    window = pd.Timedelta(hours=window_hours)
    step = pd.Timedelta(hours=every_hours)
    submitted = records[columns.time]
    finished = submitted + pd.to_timedelta(records[columns.duration], unit="s")
    ticks = pd.date_range(submitted.min().floor("h"), finished.max().ceil("h") + step, freq=step)
    frames = []
    for entity, rows in records.assign(_finished=finished).groupby(entity_column, sort=True):
        order = np.argsort(rows["_finished"].to_numpy())
        ends = rows["_finished"].to_numpy()[order]
        durations = np.r_[0.0, np.cumsum(rows[columns.duration].to_numpy()[order])]
        failures = np.r_[0.0, np.cumsum((rows[columns.outcome] == columns.failed_value).to_numpy()[order])]
        entity_ticks = ticks[ticks >= rows[columns.time].min()]
        upto = np.searchsorted(ends, entity_ticks.to_numpy(), side="right")
        before = np.searchsorted(ends, (entity_ticks - window).to_numpy(), side="right")
        count = upto - before
        with np.errstate(invalid="ignore", divide="ignore"):
            average = np.where(count > 0, (durations[upto] - durations[before]) / count, np.nan)
            failure_rate = np.where(count > 0, (failures[upto] - failures[before]) / count, np.nan)
        frames.append(pd.DataFrame({
            join_key: str(entity),
            "event_timestamp": entity_ticks,
            f"{prefix}_task_count": count.astype("int64"),
            f"{prefix}_avg_duration_s": average,
            f"{prefix}_failure_rate": failure_rate,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def sources_location(sources: str) -> str:
    """Where the views' Parquet files go: ``sources`` (a folder or gs:// prefix; relative: to the feature repo),
    else ``$KFP_MLOPS_FEATURE_SOURCES``, else the repo's ``data/sources`` (as feature_apply resolves it)."""
    location = sources or os.environ.get(SOURCES_ENV) or DEFAULT_SOURCES
    if "://" in location or Path(location).is_absolute():
        return location.rstrip("/")
    return str(default_repo_path() / location)


def run_task_stats(
    splits: dict[str, str],
    entity_outputs: dict[str, str],
    sources: str = "",
    columns: RecordColumns = RecordColumns(),
    window_hours: float = 24.0,
    every_hours: float = 1.0,
) -> dict[str, Any]:
    """Write ``<sources>/queue_task_stats.parquet`` and ``user_task_stats.parquet`` from every split's records, and
    each split with the join keys to ``entity_outputs[split]``. Returns the time range of the sources
    (``first_event``, ``last_event``, ISO 8601) and row counts."""
    if window_hours <= 0 or every_hours <= 0:
        raise TaskStatsError(f"window_hours and every_hours must be positive, got {window_hours} and {every_hours}")
    frames = {name: read_records(path, columns) for name, path in splits.items()}
    records = pd.concat(frames.values(), ignore_index=True)
    location = sources_location(sources)
    written = {}
    for prefix, entity_column in (("queue", columns.queue), ("user", columns.user)):
        view = VIEWS[prefix][0]
        stats = rolling_stats(records, entity_column, prefix, columns, window_hours, every_hours)
        target = f"{location}/{view}.parquet"
        if "://" in target:
            stats.to_parquet(target, index=False)  # object stores replace an object whole
        else:
            write_atomically(target, lambda partial, stats=stats: stats.to_parquet(partial, index=False))
        written[view] = stats
    for name, frame in frames.items():
        keyed = frame.assign(queue_id=frame[columns.queue].astype(str), user_id=frame[columns.user].astype(str))
        write_atomically(entity_outputs[name], lambda partial, keyed=keyed: keyed.to_parquet(partial, index=False))
    times = pd.concat([stats["event_timestamp"] for stats in written.values()])
    return {
        "sources": location,
        "first_event": times.min().isoformat(),
        "last_event": (times.max() + pd.Timedelta(seconds=1)).isoformat(),
        "rows": {view: len(stats) for view, stats in written.items()},
    }
