"""Quality of alerts against labelled rows, counted per anomaly *event*, and the choice of the alert threshold.

The detectors alert once at the onset of an anomaly (see :mod:`components.anomaly.scorer`), so row-level
recall would count every later row of a lasting anomaly as missed. Instead, per host and in time order:

- an **event** is a run of consecutive rows labelled 1; it is **detected** if at least one of its rows alerts;
- **recall** = detected events / events; **precision** = alerting rows inside events / alerting rows;
  **f1** their harmonic mean (0 when either is 0);
- **nab_standard**: NAB's standard-profile score with each event as an anomaly window, at this threshold
  (no probation: the detector is already warm), normalised so no alerts = 0 and a perfect detector = 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.anomaly.nab import PROFILES, LabelledSeries, file_raw_score, normalize

MIN_THRESHOLD = 0.5  # a row alerts only if it is at least as surprising as anything in recent memory
MAX_CANDIDATES = 2000

Labelled = tuple[np.ndarray, np.ndarray]  # one host's labels (0/1) and scores, in time order


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive row ranges of the runs of 1s in ``labels``."""
    flags = np.concatenate([[0], np.asarray(labels, dtype=np.int8) != 0, [0]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(flags))
    return [(int(start), int(end) - 1) for start, end in zip(changes[::2], changes[1::2])]


def event_metrics(hosts: Sequence[Labelled], threshold: float) -> dict[str, float]:
    """precision, recall, f1, nab_standard and the counts behind them, for alerts = score >= threshold."""
    total_events = detected = alerts = true_alerts = 0
    raw_nab, windows = 0.0, 0
    for labels, scores in hosts:
        labels, alerting = np.asarray(labels) != 0, np.asarray(scores) >= threshold
        runs = events(labels)
        total_events += len(runs)
        detected += sum(1 for start, end in runs if alerting[start : end + 1].any())
        alerts += int(alerting.sum())
        true_alerts += int((alerting & labels).sum())
        if runs:
            series = LabelledSeries("host", np.zeros(len(labels)), np.zeros(len(labels)), tuple(runs))
            raw_nab += file_raw_score(series, alerting, PROFILES["standard"], probation_percent=0.0)
            windows += len(runs)
    precision = true_alerts / alerts if alerts else 0.0
    recall = detected / total_events if total_events else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "nab_standard": normalize(raw_nab, windows, PROFILES["standard"]) if windows else 0.0,
        "events": float(total_events),
        "detected_events": float(detected),
        "alerts": float(alerts),
        "false_alerts": float(alerts - true_alerts),
    }


def best_f1_threshold(hosts: Sequence[Labelled]) -> tuple[float, float] | None:
    """The threshold (>= MIN_THRESHOLD) with the best event F1 on labelled rows, and that F1; None without events,
    or when no threshold detects any of them.

    Among the scores that reach the best F1, the threshold is put halfway between the lowest of them and the
    next lower score, so that the same rows alert and a new score close to that one is not on the edge.
    """
    if not any(events(labels) for labels, _ in hosts):
        return None
    scores = np.unique(np.concatenate([np.asarray(s, dtype=np.float64) for _, s in hosts]))
    candidates = scores[scores >= MIN_THRESHOLD][::-1]
    if candidates.size == 0:
        return None
    if candidates.size > MAX_CANDIDATES:
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, MAX_CANDIDATES)))[::-1]
    f1s = np.array([event_metrics(hosts, float(c))["f1"] for c in candidates])
    best = int(np.argmax(f1s))  # the highest threshold reaching the best F1
    if f1s[best] == 0:
        return None
    lower = scores[scores < candidates[best]]
    floor = max(float(lower[-1]) if lower.size else 0.0, MIN_THRESHOLD)
    return (float(candidates[best]) + floor) / 2 if floor < candidates[best] else float(candidates[best]), float(f1s[best])


def quantile_threshold(scores: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of ``scores`` (e.g. the training rows'), but at least MIN_THRESHOLD."""
    if not 0 < quantile < 1:
        raise ValueError(f"threshold_quantile must be in (0, 1), got {quantile}")
    return max(float(np.quantile(scores, quantile)), MIN_THRESHOLD) if len(scores) else MIN_THRESHOLD
