"""Surprise functions: how unusual each row of one metric series is, from the rows before it (causal).

Each takes the series so far (``values``: context rows, then the rows to score) and returns one
non-negative surprise per row from ``start`` on, NaN while the row has too little history. A scorer that
keeps the last :func:`context_rows` values of a series therefore gets, row by row, exactly what the whole
series would give: that is how the streaming predictor and the batch benchmark agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
MEAN_ABS_TO_SIGMA = 1.2533  # mean absolute deviation of a normal distribution times this is sigma
TINY_SCALE = 1e-9
CHUNK_ROWS = 2048  # rows per block of the vectorised loops: bounds their memory at CHUNK_ROWS x window


class DetectorError(ValueError):
    """Bad detector input (wrong shape, NaN, bad parameter); the message names it."""


def checked_values(values: np.ndarray, what: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise DetectorError(f"{what} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DetectorError(f"{what} has NaN or inf at row {int(np.argmin(np.isfinite(array)))}")
    return array


def robust_scale(reference: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Per row of ``reference`` (rows x window): sigma estimated by MAD, or by mean |deviation| where MAD is 0."""
    deviation = np.abs(reference - median[:, None])
    scale = MAD_TO_SIGMA * np.median(deviation, axis=1)
    fallback = MEAN_ABS_TO_SIGMA * deviation.mean(axis=1)
    return np.maximum(np.where(scale > 0, scale, fallback), TINY_SCALE)


def robust_surprise(values: np.ndarray, window: int, min_history: int, start: int = 0) -> np.ndarray:
    """|x_t - median| / sigma_MAD over the (up to) ``window`` rows before t; NaN with fewer than ``min_history``."""
    surprise = np.full(values.size - start, np.nan)
    first = max(start, min_history)
    # rows whose history is shorter than the window (the series' first rows), one by one
    for row in range(first, min(values.size, window)):
        reference = values[:row][None, :]
        median = np.median(reference, axis=1)
        surprise[row - start] = (abs(values[row] - median) / robust_scale(reference, median))[0]
    first = max(first, window)
    for block_start in range(first, values.size, CHUNK_ROWS):
        rows = np.arange(block_start, min(values.size, block_start + CHUNK_ROWS))
        reference = sliding_window_view(values[rows[0] - window : rows[-1]], window)  # reference[i] ends before rows[i]
        median = np.median(reference, axis=1)
        surprise[rows - start] = np.abs(values[rows] - median) / robust_scale(reference, median)
    return surprise


def zscore_surprise(values: np.ndarray, window: int, min_history: int, start: int = 0) -> np.ndarray:
    """|x_t - mean| / std over the (up to) ``window`` rows before t; NaN with fewer than ``min_history``."""
    history = pd.Series(values).shift(1).rolling(window, min_periods=max(min_history, 2))
    std = np.maximum(history.std(ddof=0).to_numpy(), TINY_SCALE)
    return (np.abs(values - history.mean().to_numpy()) / std)[start:]


def knn_surprise(
    values: np.ndarray, width: int, history: int, neighbours: int, min_history: int, start: int = 0
) -> np.ndarray:
    """Distance from the window of ``width`` rows ending at t to its ``neighbours``-th nearest window among the
    ``history`` windows that end before t's window begins (so none overlaps it); NaN with fewer than
    ``max(neighbours, min_history)`` such windows. Windows before the first row are padded with it."""
    padded = np.concatenate([np.full(width - 1, values[0]), values]) if values.size else values
    windows = sliding_window_view(padded, width)  # windows[t] ends at row t
    squares = np.einsum("ij,ij->i", windows, windows)
    surprise = np.full(values.size - start, np.nan)
    first = max(start, width + max(neighbours, min_history) - 1)
    for block_start in range(first, values.size, CHUNK_ROWS // 4):
        rows = np.arange(block_start, min(values.size, block_start + CHUNK_ROWS // 4))
        low = max(0, rows[0] - width - history + 1)
        candidates = np.arange(low, rows[-1] - width + 1)  # window j may serve row t when t - width - history < j <= t - width
        distances = squares[rows][:, None] + squares[candidates][None, :] - 2.0 * windows[rows] @ windows[candidates].T
        usable = (candidates[None, :] <= rows[:, None] - width) & (candidates[None, :] > rows[:, None] - width - history)
        distances = np.where(usable, np.maximum(distances, 0.0), np.inf)
        nearest = np.partition(distances, neighbours - 1, axis=1)[:, neighbours - 1]
        surprise[rows - start] = np.sqrt(nearest)
    return surprise


def standardised_windows(values: np.ndarray, width: int, centre: float, scale: float, start: int = 0) -> np.ndarray:
    """Row t: the last ``width`` values (the series' first value pads rows before it), minus ``centre``, over ``scale``."""
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    return (sliding_window_view(padded, width)[start:] - centre) / scale


def centre_and_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and robust sigma of ``values`` (the training rows a learned detector standardises by)."""
    centre = np.median(values)
    return float(centre), float(robust_scale(values[None, :], np.array([centre]))[0])
