"""Anomaly detectors for one univariate metric series, scored whole; each returns a score in [0, 1) per row.

All are causal: row t is scored from rows <= t only, with the stages of :mod:`components.anomaly.scorer`
(surprise, relative to recent max, combine, hold). The learned ones (Isolation Forest, autoencoder) fit on
the first ``train_fraction`` of the series and then score every row.

| kind | surprise per row |
|---|---|
| ``robust`` | \\|x - median\\| / (1.4826 MAD) of the (up to) ``window`` rows before |
| ``zscore`` | \\|x - mean\\| / std of the (up to) ``window`` rows before |
| ``isolation_forest`` | Isolation Forest score of the last ``width`` values and their differences |
| ``autoencoder`` | reconstruction error of the last ``width`` values by a tiny torch autoencoder |
| ``ensemble`` | the robust surprise, and for each width in ``knn_widths`` the distance from the last ``width`` values to their ``neighbours``-th nearest earlier window (within ``history`` windows); each relative to its own recent max, the largest counts |
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from components.anomaly.learned import fit_window_model
from components.anomaly.scorer import KINDS, DetectorSpec, SeriesScorer
from components.anomaly.surprise import DetectorError, checked_values

__all__ = ["DETECTORS", "DetectorError", "detector_scores"]


def detector_scores(values: np.ndarray, kind: str = "ensemble", train_fraction: float = 0.15, **parameters) -> np.ndarray:
    """Scores of every row of ``values`` by the ``kind`` detector with ``parameters`` over its defaults."""
    spec = DetectorSpec.from_parameters(kind, parameters)
    values = checked_values(values)
    fitted = None
    if spec.learned:
        if not 0 < train_fraction <= 1:
            raise DetectorError(f"train_fraction must be in (0, 1], got {train_fraction}")
        train_rows = min(values.size, max(spec.width + 2, int(train_fraction * values.size)))
        fitted = fit_window_model(spec, values[:train_rows])
    return SeriesScorer(spec, fitted).score(values)


DETECTORS: dict[str, Callable[..., np.ndarray]] = {kind: partial(detector_scores, kind=kind) for kind in KINDS}
