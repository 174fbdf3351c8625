"""Builds a training set: entity rows (ids, event times, labels) joined point-in-time with Feast features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from components.features.outputs import write_atomically
from components.features.store import DEFAULT_CONFIG_FILE, FeatureStoreError, open_store, resolve_features, training_set


def build_training_set(
    entities_path: str,
    out_path: str,
    features: list[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = DEFAULT_CONFIG_FILE,
) -> dict[str, Any]:
    """Reads the entity rows (a Parquet file), joins the features and writes the rows, with one column per
    feature, as Parquet to ``out_path``. Returns the artifact metadata."""
    try:
        entities = pd.read_parquet(entities_path)
    except (OSError, pa.ArrowException) as error:
        raise FeatureStoreError(f"cannot read the entity rows {entities_path}: {error}") from error
    store = open_store(repo_path or None, state_dir=state_dir or None, config_file=config_file)
    try:
        joined = training_set(
            store, entities, features, timestamp_column=timestamp_column, full_feature_names=full_feature_names
        )
    except FeatureStoreError as error:
        raise FeatureStoreError(f"{entities_path}: {error}") from error
    feature_columns = [column for column in joined.columns if column not in entities.columns]
    write_atomically(out_path, lambda partial: joined.to_parquet(partial, index=False))
    refs = resolve_features(store, features)
    return {
        "rows": len(joined),
        "features": refs,
        "feature_views": sorted({ref.partition(":")[0] for ref in refs}),
        "timestamp_column": timestamp_column,
        "null_fraction": {column: round(float(joined[column].isna().mean()), 4) for column in feature_columns},
        "source": str(Path(entities_path)),
        "format": "parquet",
    }
