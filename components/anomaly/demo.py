"""Seeded demo host metrics (CPU %, latency ms, error rate) with daily seasonality and labelled anomalies, as
DataFrames: the data set of :mod:`kfp_mlops.demo_metrics` (which writes the same rows as CSV)."""

from __future__ import annotations

import pandas as pd

from kfp_mlops.demo_metrics import ANOMALY_KINDS, METRICS, START, host_metrics, series

__all__ = ["ANOMALY_KINDS", "METRICS", "demo_host_metrics", "demo_metrics"]


def demo_metrics(
    hosts: int = 2, steps: int = 2016, step_minutes: int = 5, anomalies_per_series: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Long-format rows ``host, metric, timestamp, value, anomaly, kind``, sorted by host, metric, timestamp."""
    timestamps = pd.date_range(START, periods=steps, freq=f"{step_minutes}min")
    frames = [
        pd.DataFrame({"host": one.host, "metric": one.metric, "timestamp": timestamps, "value": one.values,
                      "anomaly": [int(bool(k)) for k in one.kinds], "kind": one.kinds})  # fmt: skip
        for one in series(hosts, steps, step_minutes, anomalies_per_series, seed)
    ]
    return pd.concat(frames, ignore_index=True)


def demo_host_metrics(
    hosts: int = 3, steps: int = 4032, step_minutes: int = 5, anomalies_per_series: int = 4, seed: int = 0, drift: bool = False
) -> pd.DataFrame:
    """Wide-format rows ``timestamp (UTC), host, cpu, latency_ms, error_rate, anomaly``, by time, then host."""
    frame = pd.DataFrame.from_records(host_metrics(hosts, steps, step_minutes, anomalies_per_series, seed, drift))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame[list(METRICS)] = frame[list(METRICS)].astype("float64")
    frame["anomaly"] = frame["anomaly"].astype("int64")
    return frame
