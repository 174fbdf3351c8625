"""Seeded demo host metrics that need no download: CPU %, latency and error rate of a few hosts every 5 minutes,
with daily seasonality, noise and injected anomalies labelled per row.

Each (host, metric) series gets ``anomalies_per_series`` non-overlapping anomalies after its first day: a spike
(3 rows, +8 sigma of its noise), a level shift (+5 sigma for 6 hours) or a slow drift (0 to +6 sigma over 12
hours). A row's ``anomaly`` is 1 when any metric of its host is inside one. ``drift=True`` moves the whole data
set (CPU +25%, latency x1.4, error rate x2): the shift a drift detector should notice.
Pure Python (``random``, ``math``), so the command line can write it without numpy.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

# metric: (base, daily amplitude, noise sigma)
METRICS: dict[str, tuple[float, float, float]] = {
    "cpu": (40.0, 15.0, 3.0),
    "latency_ms": (120.0, 30.0, 8.0),
    "error_rate": (0.01, 0.005, 0.002),
}
ANOMALY_KINDS = ("spike", "level_shift", "drift")
DRIFT_FACTORS = {"cpu": 1.25, "latency_ms": 1.4, "error_rate": 2.0}
FIELDS = ["timestamp", "host", *METRICS, "anomaly"]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Series:
    host: str
    metric: str
    values: list[float]
    kinds: list[str]  # per row: the anomaly kind, "" outside anomalies


def series(hosts: int = 3, steps: int = 4032, step_minutes: int = 5, anomalies_per_series: int = 4,
           seed: int = 0, drift: bool = False) -> list[Series]:  # fmt: skip
    """Every (host, metric) series, ``steps`` rows each; the same arguments always give the same values."""
    rows_per_day = 24 * 60 // step_minutes
    if hosts < 1 or steps < 2 * rows_per_day or anomalies_per_series < 0:
        raise ValueError(f"need hosts >= 1, steps >= {2 * rows_per_day} (two days), anomalies_per_series >= 0; "
                         f"got {hosts}, {steps}, {anomalies_per_series}")  # fmt: skip
    rng = random.Random(seed)
    lengths = {"spike": 3, "level_shift": rows_per_day // 4, "drift": rows_per_day // 2}
    out = []
    for host in range(hosts):
        for metric, (base, amplitude, noise) in METRICS.items():
            phase = rng.uniform(0, 0.5)
            values = [base + amplitude * math.sin(2 * math.pi * t / rows_per_day - phase) + rng.gauss(0, noise)
                      for t in range(steps)]  # fmt: skip
            kinds = [""] * steps
            slot_size = (steps - rows_per_day) / max(anomalies_per_series, 1)
            for slot in range(anomalies_per_series):
                kind = rng.choice(ANOMALY_KINDS)
                length = lengths[kind]
                first, last = rows_per_day + int(slot * slot_size), rows_per_day + int((slot + 1) * slot_size) - 1
                start = rng.randint(first, max(first, last - length))
                for offset in range(min(length, steps - start)):
                    shift = {"spike": 8.0, "level_shift": 5.0, "drift": 6.0 * offset / max(length - 1, 1)}[kind]
                    values[start + offset] += shift * noise
                    kinds[start + offset] = kind
            factor = DRIFT_FACTORS[metric] if drift else 1.0
            values = [max(v, 0.0) * factor if metric == "error_rate" else v * factor for v in values]
            out.append(Series(f"host-{host}", metric, values, kinds))
    return out


def host_metrics(hosts: int = 3, steps: int = 4032, step_minutes: int = 5, anomalies_per_series: int = 4,
                 seed: int = 0, drift: bool = False) -> list[dict[str, str]]:  # fmt: skip
    """Wide rows ``timestamp, host, cpu, latency_ms, error_rate, anomaly`` (as text), by time, then host."""
    by_host: dict[str, dict[str, Series]] = {}
    for one in series(hosts, steps, step_minutes, anomalies_per_series, seed, drift):
        by_host.setdefault(one.host, {})[one.metric] = one
    records = []
    for t in range(steps):
        stamp = (START + timedelta(minutes=step_minutes * t)).isoformat()
        for host, metrics in by_host.items():
            record = {"timestamp": stamp, "host": host}
            record.update({metric: f"{metrics[metric].values[t]:.6g}" for metric in METRICS})
            record["anomaly"] = "1" if any(metrics[m].kinds[t] for m in METRICS) else "0"
            records.append(record)
    return records


def write(out: Path, rows: int = 3000, seed: int = 0, drift: bool = False) -> Path:
    """Write ``rows`` time steps (5 minutes apart) of 3 hosts as CSV to ``out``, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(host_metrics(steps=rows, seed=seed, drift=drift))
    partial.replace(out)
    return out
