"""The ``series`` test: drift of time series (e.g. host metrics), judged against windows of the reference like it.

Why not KS on the values: a two-sample test takes the window for an i.i.d. sample of the reference
distribution. A day of metrics is not one: its values follow the time of day, neighbouring values are alike,
and a day with an incident differs from a quiet day. On the seeded demo metrics, KS flagged 94 of 100 undrifted
days (3 hosts against the week before), and KS on de-seasonalised values 10 of 10. So this test compares like
with like:

1. **Seasonal residuals.** A value minus the reference median of its series (one per ``group`` value, e.g.
   the host; the pooled reference for a group it never had) at the same hour of day (UTC), divided by the
   series' robust scale (1.4826 × the MAD of its residuals).
2. **Two statistics per column** of the window's residuals: ``level`` (their median) and ``spread`` (the log
   of their interquartile range).
3. **Like windows.** The same statistics of reference windows with the window's duration and row count (a
   seeded sample), starting every duration / 8, at any time of day (the residuals have no time of day left;
   the same hours of each day only, 7 windows in a week, gave 19 false alarms in 200 six-hour windows). Each
   gets a baseline fitted without it, so it is as new to its baseline as the window is.
4. **p-value.** Under no drift the window's statistic is one more draw like theirs: a t prediction interval,
   ``t = (s - mean) / (sd * sqrt(1 + 1/k))`` with ``k - 1`` degrees of freedom, two-sided, where ``k`` is the
   number of disjoint like windows in the reference (the overlapping ones only steady the mean and sd).
   ``p_val`` is split over the columns and both statistics (Bonferroni, or Benjamini-Hochberg with ``fdr``).

A reference of a week holds only 7 one-day windows, and days are not Gaussian (incident days), so the level is
approximate: measured at p_val 0.05, 8 false alarms in 200 undrifted demo days, 11 in 200 six-hour windows, and 2
on the last normal day of 39 NAB series (README). The test needs numpy, pandas and scipy only, so it does not
depend on the drift backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy
from scipy import stats

from components.drift import features
from components.drift.detectors import DriftColumns, DriftInputError, DriftTestResult, FeatureDrift

STATISTICS = ("level", "spread")
DAY_NS = 24 * 3600 * 10**9
HOUR_NS = 3600 * 10**9
MIN_LIKE_WINDOWS = 3
"""Disjoint like windows the reference must hold: the t interval then has 2 degrees of freedom."""
STARTS_PER_DURATION = 8
MAX_LIKE_WINDOWS = 100
"""Like windows are spread evenly over a long reference beyond this many, to bound the work."""
MAD_TO_SIGMA = 1.4826
MEAN_ABSOLUTE_TO_SIGMA = float(np.sqrt(np.pi / 2))
ARRAYS = "reference.npz"
SETTINGS = "series.json"


@dataclass(frozen=True)
class Rows:
    """Rows of series: time (ns since the epoch, UTC), group code (-1: a group the reference never had), values."""

    times: np.ndarray
    groups: np.ndarray
    values: np.ndarray

    def take(self, index: np.ndarray) -> Rows:
        return Rows(self.times[index], self.groups[index], self.values[index])


@dataclass(frozen=True)
class Baseline:
    """Median per group and hour of day, and robust scale per group; the last group is all groups pooled."""

    medians: np.ndarray  # (groups + 1, 24, columns)
    scales: np.ndarray  # (groups + 1, columns)

    @classmethod
    def fit(cls, rows: Rows, groups: int) -> Baseline:
        hours = (rows.times // HOUR_NS) % 24
        columns = rows.values.shape[1]
        frame = pd.DataFrame(rows.values)
        pooled = frame.groupby(hours).median().reindex(range(24)).fillna(frame.median()).to_numpy()
        by_group = frame.groupby(rows.groups * 24 + hours).median().reindex(range(groups * 24)).to_numpy()
        by_group = by_group.reshape(groups, 24, columns)
        group_medians = frame.groupby(rows.groups).median().reindex(range(groups)).to_numpy()[:, None, :]
        # an hour a group has no rows of: the group's median; a group without rows (left out with a like window):
        # the pooled medians
        by_group = np.where(np.isnan(by_group), group_medians, by_group)
        by_group = np.where(np.isnan(by_group), pooled[None], by_group)
        medians = np.concatenate([by_group, pooled[None]])
        absolute = pd.DataFrame(np.abs(rows.values - medians[rows.groups, hours]))
        pooled_absolute = pd.DataFrame(np.abs(rows.values - pooled[hours]))
        scales = np.concatenate([
            _robust_scales(absolute.groupby(rows.groups), groups),
            _robust_scales(pooled_absolute.groupby(np.zeros(len(rows.groups), dtype=int)), 1),
        ])  # fmt: skip
        return cls(medians, np.where(np.isnan(scales), scales[-1], scales))

    def residuals(self, rows: Rows) -> np.ndarray:
        """Standardised seasonal residuals, rows × columns."""
        groups = np.where(rows.groups >= 0, rows.groups, len(self.scales) - 1)
        hours = (rows.times // HOUR_NS) % 24
        return (rows.values - self.medians[groups, hours]) / self.scales[groups]


def _robust_scales(absolute_residuals: DataFrameGroupBy, groups: int) -> np.ndarray:
    """1.4826 x MAD per group (rows: groups, NaN for a group without rows); where more than half the residuals are
    0, the mean absolute residual scaled to a standard deviation; 1 for a constant series."""
    mad = MAD_TO_SIGMA * absolute_residuals.median().reindex(range(groups)).to_numpy()
    mean = MEAN_ABSOLUTE_TO_SIGMA * absolute_residuals.mean().reindex(range(groups)).to_numpy()
    return np.where(mad > 0, mad, np.where(mean > 0, mean, np.where(np.isnan(mean), np.nan, 1.0)))


def window_statistics(residuals: np.ndarray) -> np.ndarray:
    """``level`` and ``spread`` per column: shape (2, columns)."""
    upper, lower = np.percentile(residuals, [75, 25], axis=0)
    return np.stack([np.median(residuals, axis=0), np.log(np.maximum(upper - lower, 1e-12))])


def prediction_p_values(like: np.ndarray, observed: np.ndarray, disjoint: int) -> np.ndarray:
    """Two-sided p-values of ``observed`` (2 × columns) as one more draw like the rows of ``like`` (windows × 2 ×
    columns)."""
    mean, sd = like.mean(axis=0), like.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (observed - mean) / (sd * np.sqrt(1 + 1 / disjoint))
    p_values = 2 * stats.t.sf(np.abs(t), disjoint - 1)
    constant = sd == 0  # every like window had the same value: only that value is no drift
    return np.where(constant, np.where(np.isclose(observed, mean), 1.0, 0.0), p_values)


def thresholds(p_values: np.ndarray, level: float, correction: str) -> np.ndarray:
    """Per-p-value thresholds: ``level / n`` (Bonferroni), or the Benjamini-Hochberg line at q = ``level``."""
    count = len(p_values)
    if correction == "bonferroni":
        return np.full(count, level / count)
    ladder = level * np.arange(1, count + 1) / count
    order = np.argsort(p_values, kind="stable")
    rejected = np.flatnonzero(p_values[order] < ladder)
    if rejected.size:
        return np.full(count, ladder[rejected[-1]])
    return ladder[np.argsort(order, kind="stable")]


class SeriesTest:
    """The fitted test: the reference rows (kept to build like windows of whatever window comes) and its baseline."""

    def __init__(self, columns: DriftColumns, groups: list[str], reference: Rows, step_ns: int):
        self.columns = columns
        self.groups = groups
        self.reference = reference
        self.step_ns = step_ns
        self.baseline = Baseline.fit(reference, len(groups))

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: DriftColumns, where: str = "the reference data") -> SeriesTest:
        groups = features.vocabulary(_group_keys(frame, columns))
        rows = _rows(frame, columns, groups, where)
        rows = rows.take(np.argsort(rows.times, kind="stable"))
        distinct = np.unique(rows.times)
        step_ns = int(np.median(np.diff(distinct))) if len(distinct) > 1 else 0
        span = distinct[-1] - distinct[0] + step_ns
        if span < MIN_LIKE_WINDOWS * DAY_NS:
            raise DriftInputError(
                f"column {columns.time!r} of {where} spans {span / DAY_NS:.2f} days; the series test needs at "
                f"least {MIN_LIKE_WINDOWS} days of reference (a median per hour of day, and like windows to judge a "
                "window by)"
            )
        return cls(columns, groups, rows, step_ns)

    @property
    def span_ns(self) -> int:
        return int(self.reference.times[-1] - self.reference.times[0] + self.step_ns)

    def window_rows(self, frame: pd.DataFrame, where: str = "the window") -> Rows:
        rows = _rows(frame, self.columns, self.groups, where)
        return Rows(rows.times, np.where(rows.groups < len(self.groups), rows.groups, -1), rows.values)

    def like_windows(self, duration_ns: int, rows: int, seed: int) -> tuple[np.ndarray, int]:
        """Statistics of the like windows (windows × 2 × columns) and the number of disjoint ones."""
        disjoint = self.span_ns // duration_ns
        if disjoint < MIN_LIKE_WINDOWS:
            raise DriftInputError(
                f"the window spans {duration_ns / HOUR_NS:.1f} h; the reference ({self.span_ns / DAY_NS:.1f} days) "
                f"holds {disjoint} disjoint window(s) that long and the series test needs {MIN_LIKE_WINDOWS}: test "
                "a shorter window or fit on a longer reference"
            )
        first = int(self.reference.times[0])
        starts = np.arange(first, first + self.span_ns - duration_ns + 1, max(duration_ns // STARTS_PER_DURATION, 1))
        if len(starts) > MAX_LIKE_WINDOWS:
            starts = starts[np.linspace(0, len(starts) - 1, MAX_LIKE_WINDOWS).round().astype(int)]
        rng = np.random.default_rng(seed)
        times, collected = self.reference.times, []
        for start in starts:
            inside = (times >= start) & (times < start + duration_ns)
            index = np.flatnonzero(inside)
            if len(index) < 2:  # a gap in the reference
                continue
            if len(index) > rows:
                index = np.sort(rng.choice(index, rows, replace=False))
            baseline = Baseline.fit(self.reference.take(np.flatnonzero(~inside)), len(self.groups))
            collected.append(window_statistics(baseline.residuals(self.reference.take(index))))
        if len(collected) < MIN_LIKE_WINDOWS:
            raise DriftInputError(
                f"only {len(collected)} windows of the reference like the window hold rows; the series test needs "
                f"{MIN_LIKE_WINDOWS} (is the reference mostly gaps?)"
            )
        return np.array(collected), int(disjoint)

    def test(self, window: pd.DataFrame, level: float, correction: str, seed: int) -> DriftTestResult:
        rows = self.window_rows(window)
        duration = int(rows.times.max() - rows.times.min()) + max(self.step_ns, 1)
        like, disjoint = self.like_windows(duration, len(rows.times), seed)
        residuals = self.baseline.residuals(rows)
        observed = window_statistics(residuals)
        p_values = prediction_p_values(like, observed, disjoint)  # (2, columns)
        limits = thresholds(p_values.ravel(), level, correction).reshape(p_values.shape)
        centre = like.mean(axis=0)
        shown = (observed[0] - centre[0], np.exp(observed[1] - centre[1]))  # level shift in scales, spread ratio
        reference_residuals = self.baseline.residuals(self.reference)
        results = []
        for column_index, column in enumerate(self.columns.series):
            histogram = features.histogram(reference_residuals[:, column_index], residuals[:, column_index])
            for statistic_index, statistic in enumerate(STATISTICS):
                p_value = float(p_values[statistic_index, column_index])
                threshold = float(limits[statistic_index, column_index])
                results.append(FeatureDrift(
                    feature=column, test=statistic, statistic=float(shown[statistic_index][column_index]),
                    p_value=p_value, threshold=threshold, drift=p_value < threshold, distribution=histogram,
                ))  # fmt: skip
        note = (
            f"{len(like)} like windows of {duration / HOUR_NS:.3g} h in {self.span_ns / DAY_NS:.3g} days of "
            f"reference, {disjoint} of them disjoint (t with {disjoint - 1} degrees of freedom); residuals in units "
            "of each series' robust scale"
        )
        drift = any(result.drift for result in results)
        return DriftTestResult("series", level, drift, len(window), tuple(results), note=note)

    # --- save / load: arrays and JSON, no pickles ------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        np.savez_compressed(
            directory / ARRAYS, times=self.reference.times, groups=self.reference.groups, values=self.reference.values
        )
        settings = {"columns": list(self.columns.series), "groups": self.groups, "step_ns": self.step_ns}
        (directory / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, columns: DriftColumns) -> SeriesTest:
        settings = json.loads((directory / SETTINGS).read_text(encoding="utf-8"))
        if settings["columns"] != list(columns.series):
            raise DriftInputError(
                f"{directory / SETTINGS} holds columns {settings['columns']}, not {list(columns.series)}"
            )
        with np.load(directory / ARRAYS, allow_pickle=False) as arrays:
            rows = Rows(arrays["times"], arrays["groups"], arrays["values"])
        return cls(columns, settings["groups"], rows, int(settings["step_ns"]))


def _group_keys(frame: pd.DataFrame, columns: DriftColumns) -> list[str]:
    return features.category_keys(frame, columns.group) if columns.group else [""] * len(frame)


def _rows(frame: pd.DataFrame, columns: DriftColumns, groups: list[str], where: str) -> Rows:
    """The frame's series rows; a group not in ``groups`` gets the code ``len(groups)``."""
    return Rows(
        times=_times(frame, columns.time, where),
        groups=features.encode(_group_keys(frame, columns), groups),
        values=np.column_stack([features.numeric_values(frame, column, where) for column in columns.series]),
    )


def _times(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """The column as ns since the epoch (UTC); naive times are taken as UTC. Unreadable or missing times are errors."""
    series = frame[column]
    try:  # strings (JSON payloads) as ISO 8601; datetimes as they are
        parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601" if series.dtype == object else None)
    except (TypeError, ValueError) as error:
        raise DriftInputError(f"column {column!r} of {where} does not hold times: {error}") from error
    bad = parsed.isna()
    if bad.any():
        raise DriftInputError(
            f"time column {column!r} of {where} has missing or unreadable times in rows {features.rows_of(bad)}, "
            f"e.g. {series[bad].head(features.SHOWN_ROWS).tolist()}"
        )
    return parsed.dt.as_unit("ns").astype("int64").to_numpy()
