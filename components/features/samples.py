"""Synthetic feature sources in the schema of every view of ``feature_repo/``, seeded: for trying the
store locally, for tests of chunked materialization and for the online-latency benchmark.

Each view's source is a Parquet file ``<folder>/<view>.parquet`` with one row per entity every
``step`` (jittered by up to a quarter step), timestamps in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = ("billing", "bug", "login", "feature_request", "other")
METRICS = ("cpu", "latency_ms", "error_rate")
WINDOWS = ("5m", "15m", "60m")


def _timeline(
    rng: np.random.Generator, ids: list[str], key: str, start: datetime, end: datetime, step: timedelta
) -> pd.DataFrame:
    ticks = pd.date_range(start, end, freq=step, inclusive="left", tz="UTC")
    frame = pd.DataFrame(
        {key: np.repeat(ids, len(ticks)), "event_timestamp": np.tile(ticks, len(ids))}
    )
    jitter = rng.uniform(0, 0.25, len(frame)) * step.total_seconds()
    frame["event_timestamp"] += pd.to_timedelta(jitter.round(), unit="s")
    return frame


def sample_sources(
    start: datetime,
    end: datetime,
    *,
    customers: int = 20,
    queues: int = 4,
    users: int = 10,
    hosts: int = 5,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Feature rows for every view between ``start`` and ``end``: view name -> frame."""
    rng = np.random.default_rng(seed)
    frames = {}

    history = _timeline(rng, [f"c{i}" for i in range(customers)], "customer_id", start, end, timedelta(hours=6))
    history["tickets_7d"] = rng.poisson(2, len(history)).astype("int64")
    history["tickets_30d"] = history["tickets_7d"] + rng.poisson(5, len(history))
    history["last_category"] = rng.choice(CATEGORIES, len(history))
    frames["customer_ticket_history"] = history

    for prefix, count in (("queue", queues), ("user", users)):
        ids = [f"{prefix[0]}{i}" for i in range(count)]
        stats = _timeline(rng, ids, f"{prefix}_id", start, end, timedelta(hours=6))
        stats[f"{prefix}_task_count"] = rng.poisson(40, len(stats)).astype("int64")
        stats[f"{prefix}_avg_duration_s"] = rng.lognormal(4, 0.5, len(stats))
        stats[f"{prefix}_failure_rate"] = rng.beta(1, 20, len(stats))
        frames[f"{prefix}_task_stats"] = stats

    windows = _timeline(rng, [f"h{i}" for i in range(hosts)], "host_id", start, end, timedelta(minutes=30))
    for metric in METRICS:
        scale = 100.0 if metric == "latency_ms" else 1.0
        for window in WINDOWS:
            windows[f"{metric}_mean_{window}"] = rng.beta(2, 5, len(windows)) * scale
            windows[f"{metric}_std_{window}"] = rng.beta(1, 10, len(windows)) * scale
    frames["host_metric_windows"] = windows
    return frames


def write_sources(folder: str | Path, frames: Mapping[str, pd.DataFrame]) -> dict[str, Path]:
    """Writes each frame to ``<folder>/<view>.parquet``: view name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for view, frame in frames.items():
        paths[view] = folder / f"{view}.parquet"
        frame.to_parquet(paths[view], index=False)
    return paths
