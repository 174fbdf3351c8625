"""NAB (Numenta Anomaly Benchmark) scoring, written from NAB's definition (Lavin & Ahmad 2015; NAB v1.x
``nab/sweeper.py`` and ``nab/runner.py``), not copied from it.

A detector emits one anomaly score per row; every row whose score is >= a threshold is a detection.

- **Probation**: the first ``min(floor(0.15 n), 0.15 * 5000)`` rows of each file are not scored.
- **Inside a window** ``[L, R]`` (width ``W = R - L + 1`` rows): a detection at row ``i`` is worth
  ``A_TP * σ(-(R - i + 1) / W) / σ(-1)`` where ``σ`` is the scaled sigmoid; a detection at ``L`` is worth
  exactly ``A_TP``. Only the best (= earliest) detection of a window counts; a window with none costs
  ``-A_FN``.
- **Outside windows**: a detection after a window ending at ``R`` (width ``W``) is worth
  ``A_FP * σ(|i - R| / (W - 1))`` (negative, about ``-A_FP`` far from the window, near 0 just after it);
  a detection before the file's first window costs ``-A_FP``.
- **Threshold**: one per detector and profile, the one that maximises the raw score summed over the
  whole corpus.
- **Normalised score** ``100 (raw - null) / (perfect - null)``: the null detector (no detections) scores
  ``-A_FN × windows`` and the perfect one ``A_TP × windows``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PROBATION_PERCENT = 0.15
NO_DETECTION_THRESHOLD = math.inf  # the threshold at which nothing is detected (the null detector)


class NabError(ValueError):
    """Bad NAB input; the message names the file, window or field."""


@dataclass(frozen=True)
class CostMatrix:
    """Application-profile weights A_TP, A_FP, A_FN, A_TN (A_TN is unused by NAB's score)."""

    tp: float
    fp: float
    fn: float
    tn: float = 1.0


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True)
class LabelledSeries:
    """One NAB data file: its rows in file order and its anomaly windows as inclusive row ranges."""

    name: str
    timestamps: np.ndarray  # datetime64[ns]
    values: np.ndarray  # float64
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ProfileResult:
    threshold: float
    raw_score: float
    normalized_score: float
    true_positive_windows: int
    false_positive_rows: int
    windows: int


def scaled_sigmoid(relative_position: float | np.ndarray) -> np.ndarray:
    """NAB's ``2 / (1 + exp(5 x)) - 1``: +0.987 at x = -1 (window start), 0 at x = 0, -1 from x >= 3."""
    position = np.asarray(relative_position, dtype=np.float64)
    return np.where(position >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.clip(position, -50, 50))) - 1.0)


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    return int(min(math.floor(probation_percent * n_rows), probation_percent * 5000))


def window_rows(timestamps: np.ndarray, windows: list[list[str]], name: str) -> tuple[tuple[int, int], ...]:
    """Inclusive row ranges of ``[start, end]`` timestamp windows: first and last row inside each.

    Rows are matched by value, not by sorted search, since some NAB files step back in time once.
    A window that holds no row is dropped (NAB's scorer cannot score it either).
    """
    stamps = timestamps.astype("datetime64[ns]")
    ranges = []
    for number, window in enumerate(windows):
        if len(window) != 2:
            raise NabError(f"{name}: window {number} is {window!r}, expected [start, end]")
        try:
            start, end = (np.datetime64(pd.Timestamp(limit), "ns") for limit in window)
        except ValueError as err:
            raise NabError(f"{name}: window {number} has a bad timestamp: {err}") from err
        if end < start:
            raise NabError(f"{name}: window {number} ends ({window[1]}) before it starts ({window[0]})")
        inside = np.flatnonzero((stamps >= start) & (stamps <= end))
        if inside.size:
            ranges.append((int(inside[0]), int(inside[-1])))
    ranges.sort()
    for (_, previous_end), (start, _) in zip(ranges, ranges[1:]):
        if start <= previous_end:
            raise NabError(f"{name}: anomaly windows overlap at row {start}")
    return tuple(ranges)


def point_weights(
    n_rows: int, windows: tuple[tuple[int, int], ...], costs: CostMatrix, probation_percent: float = PROBATION_PERCENT
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the value of a detection there, and the index of its window (-1 outside, -2 in probation)."""
    weights = np.empty(n_rows)
    window_of_row = np.full(n_rows, -1)
    rows = np.arange(n_rows)
    max_tp = float(scaled_sigmoid(-1.0))
    weights[:] = -costs.fp  # before the first window
    for number, (start, end) in enumerate(windows):
        width = end - start + 1
        inside = rows[start : end + 1]
        weights[start : end + 1] = scaled_sigmoid(-(end - inside + 1) / width) * costs.tp / max_tp
        window_of_row[start : end + 1] = number
        following_start = windows[number + 1][0] if number + 1 < len(windows) else n_rows
        after = rows[end + 1 : following_start]
        # a one-row window has no width to scale by: NAB's scorer places its FPs at position 2 (about -1)
        position = np.abs(after - end) / (width - 1) if width > 1 else np.full(after.shape, 2.0)
        weights[end + 1 : following_start] = scaled_sigmoid(position) * costs.fp
    window_of_row[: probation_length(n_rows, probation_percent)] = -2
    return weights, window_of_row


def scored_windows(series: LabelledSeries) -> int:
    """Windows that have at least one row after probation (the ones NAB's sweep counts)."""
    probation = probation_length(len(series.values))
    return sum(1 for _, end in series.windows if end >= probation)


def threshold_sweep(
    corpus: list[LabelledSeries], scores: list[np.ndarray], costs: CostMatrix
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score for every candidate threshold (each distinct score, and +inf = no detection).

    Returns ``(thresholds, raw_scores)`` with thresholds descending; detections are rows with score >= threshold.
    """
    if len(corpus) != len(scores):
        raise NabError(f"{len(scores)} score arrays for {len(corpus)} files")
    all_scores, all_weights, all_windows = [], [], []
    window_offset = 0
    for series, file_scores in zip(corpus, scores):
        file_scores = np.asarray(file_scores, dtype=np.float64)
        if file_scores.shape != series.values.shape:
            raise NabError(f"{series.name}: {file_scores.size} scores for {series.values.size} rows")
        if not np.all(np.isfinite(file_scores)):
            raise NabError(f"{series.name}: scores contain NaN or inf at row {int(np.argmin(np.isfinite(file_scores)))}")
        weights, window_of_row = point_weights(len(file_scores), series.windows, costs)
        scored = window_of_row != -2
        all_scores.append(file_scores[scored])
        all_weights.append(weights[scored])
        all_windows.append(np.where(window_of_row[scored] >= 0, window_of_row[scored] + window_offset, -1))
        window_offset += len(series.windows)
    score = np.concatenate(all_scores)
    weight = np.concatenate(all_weights)
    window = np.concatenate(all_windows)
    order = np.argsort(-score, kind="stable")
    score, weight, window = score[order], weight[order], window[order]

    # Each row, taken in descending score order, changes the total by its own weight (outside windows) or
    # by how much it raises its window's best value, which starts at -A_FN (inside windows).
    change = np.where(window < 0, weight, 0.0)
    in_window = np.flatnonzero(window >= 0)
    if in_window.size:
        frame = pd.DataFrame({"window": window[in_window], "weight": weight[in_window]})
        best_after = np.maximum(frame.groupby("window")["weight"].cummax().to_numpy(), -costs.fn)
        best_before = pd.Series(best_after).groupby(frame["window"].to_numpy()).shift(1).fillna(-costs.fn).to_numpy()
        change[in_window] = best_after - best_before
    null_score = -costs.fn * len(np.unique(window[window >= 0]))
    totals = null_score + np.cumsum(change)
    last_of_each_score = np.flatnonzero(np.append(score[1:] != score[:-1], True))
    thresholds = np.concatenate([[NO_DETECTION_THRESHOLD], score[last_of_each_score]])
    return thresholds, np.concatenate([[null_score], totals[last_of_each_score]])


def file_raw_score(
    series: LabelledSeries, detections: np.ndarray, costs: CostMatrix, probation_percent: float = PROBATION_PERCENT
) -> float:
    """Raw NAB score of one file for boolean detections (the direct definition, used to check the sweep).

    ``probation_percent=0`` scores every row: for a series whose detector is already warm (a model's test rows).
    """
    weights, window_of_row = point_weights(len(detections), series.windows, costs, probation_percent)
    probation = probation_length(len(detections), probation_percent)
    total = 0.0
    for number, (start, end) in enumerate(series.windows):
        if end < probation:
            continue
        hits = np.flatnonzero(detections[max(start, probation) : end + 1])
        total += weights[max(start, probation) + hits[0]] if hits.size else -costs.fn
    false_positives = detections & (window_of_row == -1)
    return float(total + weights[false_positives].sum())


def normalize(raw_score: float, windows: int, costs: CostMatrix) -> float:
    """0 for the null detector, 100 for the perfect detector."""
    if windows < 1:
        raise NabError("cannot normalise a corpus without anomaly windows: the null and perfect scores are equal")
    null, perfect = -costs.fn * windows, costs.tp * windows
    return 100.0 * (raw_score - null) / (perfect - null)


def score_corpus(
    corpus: list[LabelledSeries], scores: list[np.ndarray], profiles: dict[str, CostMatrix] = PROFILES
) -> dict[str, ProfileResult]:
    """Per profile: the corpus-wide best threshold, the raw and normalised score and the counts there."""
    windows = sum(len(series.windows) for series in corpus)
    results = {}
    for name, costs in profiles.items():
        thresholds, raw = threshold_sweep(corpus, scores, costs)
        best = int(np.argmax(raw))
        detected_windows = false_positives = 0
        for series, file_scores in zip(corpus, scores):
            detections = np.asarray(file_scores) >= thresholds[best]
            _, window_of_row = point_weights(len(detections), series.windows, costs)
            false_positives += int(np.count_nonzero(detections & (window_of_row == -1)))
            detected_windows += len({int(w) for w in window_of_row[detections] if w >= 0})
        results[name] = ProfileResult(
            threshold=float(thresholds[best]),
            raw_score=float(raw[best]),
            normalized_score=normalize(float(raw[best]), windows, costs),
            true_positive_windows=detected_windows,
            false_positive_rows=false_positives,
            windows=windows,
        )
    return results


def load_corpus(data_dir: str | Path, windows_path: str | Path) -> list[LabelledSeries]:
    """Every ``<category>/<name>.csv`` under ``data_dir`` (columns timestamp, value) with its windows.

    Files missing from the windows JSON are an error; JSON entries without a file (NAB's artificial
    series when only the real ones are staged) are ignored.
    """
    data_dir = Path(data_dir)
    try:
        all_windows = json.loads(Path(windows_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise NabError(f"{windows_path}: cannot read the windows JSON: {err}") from err
    corpus = []
    for path in sorted(data_dir.glob("*/*.csv")):
        name = path.relative_to(data_dir).as_posix()
        if name not in all_windows:
            raise NabError(f"{windows_path}: no windows for {name}")
        frame = pd.read_csv(path)
        if list(frame.columns) != ["timestamp", "value"]:
            raise NabError(f"{path}: columns are {list(frame.columns)}, expected ['timestamp', 'value']")
        try:
            timestamps = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d %H:%M:%S").to_numpy()
        except ValueError as err:
            raise NabError(f"{path}: column timestamp: {err}") from err
        values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise NabError(f"{path}: column value, row {int(np.argmax(np.isnan(values))) + 2}: not a number")
        corpus.append(LabelledSeries(name, timestamps, values, window_rows(timestamps, all_windows[name], name)))
    if not corpus:
        raise NabError(f"{data_dir}: no <category>/<name>.csv files")
    return corpus
