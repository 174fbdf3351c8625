"""Anomaly detectors for one univariate metric series; each returns a score in [0, 1] per row.

All detectors are causal: row ``t`` is scored from rows ``<= t`` only (the learned ones fit on the first
``train_fraction`` of the series and then score every row), so the same numbers come out when the series
is scored as it arrives. Every detector computes a non-negative *surprise* per row and ends with
:func:`relative_to_recent_max`: the score is ``r / (1 + r)`` with ``r`` the surprise divided by the largest
surprise of the ``memory`` rows before it. So a row scores above 0.5 only when it is more surprising than
anything recent: a lasting anomaly raises one alert at its onset instead of one per row (NAB charges every
row detected outside a window), and noisy series do not alert all the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble import IsolationForest

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
MEAN_ABS_TO_SIGMA = 1.2533  # mean absolute deviation of a normal distribution times this is sigma
TINY_SCALE = 1e-9
CHUNK_ROWS = 4096  # rows per block of the batch robust baseline, bounding its memory at CHUNK_ROWS x window


class DetectorError(ValueError):
    """Bad detector input (wrong shape, NaN, bad parameter); the message names it."""


def _checked(values: np.ndarray, minimum_rows: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DetectorError(f"values must be one-dimensional, got shape {array.shape}")
    if array.size < minimum_rows:
        raise DetectorError(f"values has {array.size} rows, the detector needs at least {minimum_rows}")
    if not np.all(np.isfinite(array)):
        raise DetectorError(f"values has NaN or inf at row {int(np.argmin(np.isfinite(array)))}")
    return array


def relative_to_recent_max(surprise: np.ndarray, memory: int) -> np.ndarray:
    """``r / (1 + r)`` with ``r = surprise[t] / max(surprise[t - memory : t])``.

    NaN marks a surprise not yet known (the detector's warm-up); a row scores 0 until at least
    ``memory // 4`` known surprises precede it, so the first scored rows do not all look new.
    """
    if memory < 1:
        raise DetectorError(f"memory must be >= 1, got {memory}")
    surprise = np.maximum(np.asarray(surprise, dtype=np.float64), 0.0)
    recent = pd.Series(surprise).shift(1).rolling(memory, min_periods=max(memory // 4, 1)).max().to_numpy()
    ratio = np.nan_to_num(surprise / np.maximum(recent, TINY_SCALE), nan=0.0)
    return ratio / (1.0 + ratio)


def _robust_scale(reference: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Per row of ``reference`` (rows x window): sigma estimated by MAD, or by mean |deviation| where MAD is 0."""
    deviation = np.abs(reference - median[:, None])
    scale = MAD_TO_SIGMA * np.median(deviation, axis=1)
    fallback = MEAN_ABS_TO_SIGMA * deviation.mean(axis=1)
    return np.maximum(np.where(scale > 0, scale, fallback), TINY_SCALE)


def robust_surprise(values: np.ndarray, window: int) -> np.ndarray:
    """|x_t - median| / sigma_MAD over the ``window`` rows before t; NaN for the first ``window`` rows."""
    values = _checked(values)
    surprise = np.full(values.size, np.nan)
    if values.size <= window:
        return surprise
    references = sliding_window_view(values[:-1], window)  # references[k] = values[k : k + window], scores row k + window
    for start in range(0, len(references), CHUNK_ROWS):
        block = references[start : start + CHUNK_ROWS]
        median = np.median(block, axis=1)
        rows = slice(start + window, start + window + len(block))
        surprise[rows] = np.abs(values[rows] - median) / _robust_scale(block, median)
    return surprise


def robust_scores(values: np.ndarray, window: int = 400, memory: int = 1000) -> np.ndarray:
    """Robust baseline: rolling median / MAD surprise."""
    return relative_to_recent_max(robust_surprise(values, window), memory)


def zscore_scores(values: np.ndarray, window: int = 400, memory: int = 1000) -> np.ndarray:
    """Rolling z-score |x_t - mean| / std over the ``window`` rows before t."""
    values = _checked(values)
    history = pd.Series(values).shift(1).rolling(window, min_periods=window)
    std = np.maximum(history.std(ddof=0).to_numpy(), TINY_SCALE)
    surprise = np.abs(values - history.mean().to_numpy()) / std  # NaN during the first window
    return relative_to_recent_max(surprise, memory)


def _window_features(values: np.ndarray, width: int, train_rows: int) -> np.ndarray:
    """Row t: the last ``width`` values (first rows padded with the first value), standardised by the training part."""
    train = values[:train_rows]
    centre = np.median(train)
    scale = _robust_scale(train[None, :], np.array([centre]))[0]
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    return (sliding_window_view(padded, width) - centre) / scale


def _train_rows(n_rows: int, train_fraction: float, minimum: int) -> int:
    if not 0 < train_fraction <= 1:
        raise DetectorError(f"train_fraction must be in (0, 1], got {train_fraction}")
    return min(n_rows, max(minimum, int(train_fraction * n_rows)))


def isolation_forest_scores(
    values: np.ndarray, width: int = 8, train_fraction: float = 0.15, memory: int = 1000, seed: int = 0
) -> np.ndarray:
    """Isolation Forest on windows of the last ``width`` values plus their first differences.

    Fitted on the first ``train_fraction`` of the rows; the surprise is the forest's ``2^(-depth / c)``.
    """
    values = _checked(values, minimum_rows=width + 2)
    train_rows = _train_rows(values.size, train_fraction, minimum=width + 2)
    windows = _window_features(values, width, train_rows)
    features = np.hstack([windows, np.diff(windows, axis=1)])
    forest = IsolationForest(n_estimators=100, max_samples=min(256, train_rows), random_state=seed)
    forest.fit(features[:train_rows])
    return relative_to_recent_max(-forest.score_samples(features), memory)


def autoencoder_scores(
    values: np.ndarray,
    width: int = 16,
    train_fraction: float = 0.15,
    memory: int = 1000,
    seed: int = 0,
    epochs: int = 200,
) -> np.ndarray:
    """A tiny dense autoencoder (width -> 8 -> 3 -> 8 -> width) on sliding windows, on CPU.

    Trained full-batch on the windows of the first ``train_fraction`` of the rows; the surprise of row t is
    the reconstruction error of the window ending at t, in units of the median training error.
    """
    values = _checked(values, minimum_rows=width + 2)
    train_rows = _train_rows(values.size, train_fraction, minimum=width + 2)
    windows = torch.from_numpy(np.clip(_window_features(values, width, train_rows), -50, 50).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(width, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3),
        torch.nn.Tanh(), torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, width),
    )  # fmt: skip
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * parameter.shape[-1] ** -0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = windows[:train_rows]
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(train), train)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        errors = ((model(windows) - windows) ** 2).mean(dim=1).numpy().astype(np.float64)
    typical = max(float(np.median(errors[:train_rows])), TINY_SCALE)
    return relative_to_recent_max(errors / typical, memory)


DETECTORS: dict[str, Callable[..., np.ndarray]] = {
    "zscore": zscore_scores,
    "robust": robust_scores,
    "isolation_forest": isolation_forest_scores,
    "autoencoder": autoencoder_scores,
}


@dataclass
class _HostState:
    values: deque[float]
    recent_surprise: deque[float]
    last_timestamp: object = None


@dataclass
class StreamingScorer:
    """Robust baseline scored one point at a time, per host, in O(window + memory) memory per host.

    ``update(host, timestamp, value)`` returns the score :func:`robust_scores` gives that row of the
    host's series. Timestamps must not go backwards within a host.
    """

    window: int = 400
    memory: int = 1000
    _hosts: dict[str, _HostState] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.window < 1 or self.memory < 1:
            raise DetectorError(f"window and memory must be >= 1, got window={self.window}, memory={self.memory}")

    def update(self, host: str, timestamp: object, value: float) -> float:
        value = float(value)
        if not np.isfinite(value):
            raise DetectorError(f"host {host!r} at {timestamp}: value {value} is not finite")
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _HostState(deque(maxlen=self.window), deque(maxlen=self.memory))
        if state.last_timestamp is not None and timestamp < state.last_timestamp:  # type: ignore[operator]
            raise DetectorError(f"host {host!r}: timestamp {timestamp} is before {state.last_timestamp}")
        surprise = None  # unknown until the window is full, as in the batch version
        if len(state.values) == self.window:
            reference = np.fromiter(state.values, dtype=np.float64)[None, :]
            median = np.median(reference, axis=1)
            surprise = float((abs(value - median) / _robust_scale(reference, median))[0])
        score = 0.0
        # warm-up rows come only first, so the last `memory` known surprises are the last `memory` rows' ones
        if surprise is not None and len(state.recent_surprise) >= max(self.memory // 4, 1):
            ratio = surprise / max(max(state.recent_surprise), TINY_SCALE)
            score = ratio / (1.0 + ratio)
        state.values.append(value)
        if surprise is not None:
            state.recent_surprise.append(surprise)
        state.last_timestamp = timestamp
        return score

    @property
    def hosts(self) -> list[str]:
        return sorted(self._hosts)
