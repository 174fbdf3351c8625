"""Score a trained anomaly model on a labelled test set (the gate's entry point for anomaly models).

The test set is a Parquet (or CSV) file, or a directory of Parquet files, with the model's timestamp, host and
metric columns plus ``label_column`` (1 or true: the row is part of an anomaly, 0 or false: normal). Each host's
rows continue its stream from where training left it; metrics are counted per event
(:mod:`components.anomaly.metrics`) at the model's threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.anomaly.metrics import event_metrics
from components.anomaly.model import AnomalyModel, AnomalyModelError, Scored


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """One Parquet or CSV file, or a directory of Parquet files."""
    source = Path(path)
    if not source.exists():
        raise AnomalyModelError(f"{what} {source} does not exist")
    try:
        if source.suffix.lower() == ".csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except (OSError, ValueError) as error:
        raise AnomalyModelError(f"{what} {source} is not a readable Parquet or CSV table: {error}") from error


def labels_of(rows: pd.DataFrame, label_column: str, where: str) -> np.ndarray:
    """The 0/1 labels of ``label_column``; raise naming the row of a value that is neither."""
    if label_column not in rows.columns:
        raise AnomalyModelError(f"{where}: no label column {label_column!r}; it has {list(rows.columns)}")
    values = rows[label_column]
    numbers = pd.to_numeric(values.astype("object").map({True: 1, False: 0}).fillna(values), errors="coerce")
    bad = np.flatnonzero(~numbers.isin([0, 1]).to_numpy())
    if bad.size:
        raise AnomalyModelError(f"{where}: column {label_column!r}, row {bad[0]}: {values.iloc[bad[0]]!r} is not 0/1")
    return numbers.to_numpy(dtype=np.int8)


def host_groups(scored: Scored, host_column: str, label_column: str, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per host, its rows' labels and scores in time order."""
    labels = labels_of(scored.rows, label_column, where)
    return [(labels[index], scored.score[index]) for index in scored.rows.groupby(host_column, sort=False).indices.values()]


def score_anomaly_model(model_dir: str, test_path: str, label_column: str) -> dict[str, float]:
    """precision, recall and f1 (per event, at the model's threshold) on the labelled test set, plus
    nab_standard, the event and alert counts, and test_rows."""
    model = AnomalyModel.load(model_dir)
    test = read_table(test_path, "test set")
    where = f"test set {test_path}"
    labels_of(test, label_column, where)  # fail on bad labels before scoring
    scored = model.score_frame(test, where)
    groups = host_groups(scored, model.host_column, label_column, where)
    if not any(labels.any() for labels, _ in groups):
        raise AnomalyModelError(
            f"{where}: column {label_column!r} marks no anomaly, so recall and f1 cannot be measured; "
            "give a test set with labelled anomalies"
        )
    return {**event_metrics(groups, model.threshold), "test_rows": float(len(scored.rows))}
