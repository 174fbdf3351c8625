"""Seeded demo host metrics (CPU %, latency ms, error rate) with daily seasonality and labelled anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("cpu", "latency_ms", "error_rate")
ANOMALY_KINDS = ("spike", "level_shift", "drift")


def demo_metrics(
    hosts: int = 2, days: int = 7, step_minutes: int = 5, anomalies_per_series: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Long-format rows ``host, metric, timestamp, value, anomaly, kind`` sorted by host, metric, timestamp.

    Each (host, metric) series gets ``anomalies_per_series`` non-overlapping anomalies after its first day:
    a spike (3 rows, +8 sigma), a level shift (+5 sigma for 6 hours) or a slow drift (0 to +6 sigma over
    12 hours). ``anomaly`` is 1 on the affected rows and ``kind`` names the anomaly ("" elsewhere).
    """
    if hosts < 1 or days < 2 or anomalies_per_series < 0:
        raise ValueError(f"need hosts >= 1, days >= 2, anomalies_per_series >= 0; got {hosts}, {days}, {anomalies_per_series}")
    rng = np.random.default_rng(seed)
    rows_per_day = 24 * 60 // step_minutes
    n_rows = days * rows_per_day
    timestamps = pd.date_range("2024-01-01", periods=n_rows, freq=f"{step_minutes}min")
    day_phase = 2 * np.pi * np.arange(n_rows) / rows_per_day
    lengths = {"spike": 3, "level_shift": rows_per_day // 4, "drift": rows_per_day // 2}
    frames = []
    for host in range(hosts):
        for metric in METRICS:
            base, amplitude, noise = {"cpu": (40, 15, 3), "latency_ms": (120, 30, 8), "error_rate": (0.01, 0.005, 0.002)}[metric]
            values = base + amplitude * np.sin(day_phase - rng.uniform(0, 0.5)) + rng.normal(0, noise, n_rows)
            label = np.zeros(n_rows, dtype=np.int8)
            kind = np.full(n_rows, "", dtype=object)
            slots = np.array_split(np.arange(rows_per_day, n_rows), max(anomalies_per_series, 1))
            for slot in slots[:anomalies_per_series]:
                anomaly = str(rng.choice(ANOMALY_KINDS))
                length = lengths[anomaly]
                start = int(rng.integers(slot[0], max(slot[0] + 1, slot[-1] - length)))
                affected = slice(start, start + length)
                shape = {"spike": 8.0, "level_shift": 5.0, "drift": np.linspace(0, 6, length)}[anomaly]
                values[affected] += shape * noise
                label[affected], kind[affected] = 1, anomaly
            if metric == "error_rate":
                values = np.maximum(values, 0.0)
            frames.append(pd.DataFrame({"host": f"host-{host}", "metric": metric, "timestamp": timestamps,
                                        "value": values, "anomaly": label, "kind": kind}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)
