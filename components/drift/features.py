"""Backend-independent handling of the watched columns: checks, category codes and plot summaries.

Error messages name the column and the rows by their index labels, which are the row numbers of the file
a frame was read from (subsampling keeps them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from components.drift.detectors import DriftInputError, Frequencies, Histogram, Projection

MISSING = "<missing>"
"""Category key of a null value: missing is a category of its own."""
UNSEEN = "(unseen)"
"""Label of the extra category that collects window values the reference never had."""
HISTOGRAM_BINS = 20
PROJECTION_POINTS = 300
SHOWN_ROWS = 5


def require_columns(frame: pd.DataFrame, names: Sequence[str], where: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DriftInputError(f"{where} lacks column(s) {missing}; it has {list(frame.columns)}")


def numeric_values(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """The column as float64; non-numbers, nulls and infinities are errors naming the rows."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        raise DriftInputError(f"column {column!r} of {where} is boolean: list it as categorical, not numeric")
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    not_numbers = series.notna() & values.isna()
    if not_numbers.any():
        first = series[not_numbers].head(SHOWN_ROWS)
        raise DriftInputError(
            f"column {column!r} of {where} is numeric but rows {rows_of(not_numbers)} hold non-numbers, "
            f"e.g. {first.tolist()}"
        )
    if series.isna().any():
        raise DriftInputError(
            f"column {column!r} of {where} has nulls in rows {rows_of(series.isna())}: numeric columns must be "
            "complete (fill or drop them, or list the column as categorical)"
        )
    infinite = ~np.isfinite(values.to_numpy())
    if infinite.any():
        raise DriftInputError(f"column {column!r} of {where} has infinite values in rows {rows_of(infinite, frame)}")
    return values.to_numpy()


def category_key(value: object) -> str:
    """One spelling per category, so 3, 3.0 and "3" from JSON payloads and Parquet files agree."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def category_keys(frame: pd.DataFrame, column: str) -> list[str]:
    return [category_key(value) for value in frame[column].tolist()]


def vocabulary(keys: Sequence[str]) -> list[str]:
    return sorted(set(keys))


def encode(keys: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """Codes 0..K-1 for the reference categories, K for anything the reference never had."""
    index = {category: code for code, category in enumerate(categories)}
    return np.array([index.get(key, len(categories)) for key in keys], dtype=np.int64)


def texts(frame: pd.DataFrame, column: str, where: str) -> list[str]:
    series = frame[column]
    not_strings = ~series.map(lambda value: isinstance(value, str))
    if not_strings.any():
        raise DriftInputError(
            f"text column {column!r} of {where} has non-strings (or nulls) in rows {rows_of(not_strings)}"
        )
    blank = series.str.strip() == ""
    if blank.any():
        raise DriftInputError(f"text column {column!r} of {where} has blank texts in rows {rows_of(blank)}")
    return series.tolist()


def histogram(reference: np.ndarray, window: np.ndarray, bins: int = HISTOGRAM_BINS) -> Histogram:
    """Counts over shared bins spanning the 0.5%-99.5% quantiles of both; outliers go to the end bins."""
    both = np.concatenate([reference, window])
    low, high = np.quantile(both, [0.005, 0.995])
    if high <= low:
        low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)

    def counts(values: np.ndarray) -> list[int]:
        return np.histogram(np.clip(values, low, high), bins=edges)[0].tolist()

    return Histogram(edges=edges.tolist(), reference=counts(reference), window=counts(window))


def frequencies(reference_codes: np.ndarray, window_codes: np.ndarray, categories: Sequence[str]) -> Frequencies:
    size = len(categories) + 1
    reference = np.bincount(reference_codes, minlength=size)
    window = np.bincount(window_codes, minlength=size)
    names = [*categories, UNSEEN]
    if window[-1] == 0:  # nothing unseen: leave the extra category out
        names, reference, window = names[:-1], reference[:-1], window[:-1]
    return Frequencies(categories=names, reference=reference.tolist(), window=window.tolist())


def projection(reference: np.ndarray, window: np.ndarray, seed: int) -> Projection:
    """Both sets of embeddings on the reference's first two principal components, a sample of each."""
    mean = reference.mean(axis=0)
    _, singular_values, components = np.linalg.svd(reference - mean, full_matrices=False)
    variance = singular_values**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    rng = np.random.default_rng(seed)

    def points(values: np.ndarray) -> list[tuple[float, float]]:
        sample = values[rng.permutation(len(values))[:PROJECTION_POINTS]]
        projected = (sample - mean) @ components[:2].T
        return [(float(x), float(y)) for x, y in projected]

    return Projection(
        reference=points(reference),
        window=points(window),
        explained_variance=(float(explained[0]), float(explained[1])),
    )


def rows_of(mask: pd.Series | np.ndarray, frame: pd.DataFrame | None = None) -> str:
    labels = mask[mask].index if isinstance(mask, pd.Series) else frame.index[mask]
    shown = ", ".join(str(label) for label in labels[:SHOWN_ROWS])
    more = f" and {len(labels) - SHOWN_ROWS} more" if len(labels) > SHOWN_ROWS else ""
    return f"[{shown}]{more}"
