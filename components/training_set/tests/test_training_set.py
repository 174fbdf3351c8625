"""training_set: a Parquet file of entity rows in, the rows with point-in-time features out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from components.features.samples import sample_sources, write_sources
from components.features.store import FeatureStoreError, apply_repo, open_store
from components.training_set.training_set import build_training_set

T = datetime(2024, 3, 10, 12, tzinfo=timezone.utc)


@pytest.fixture
def state_dir(tmp_path) -> str:
    frames = sample_sources(T - timedelta(days=3), T, customers=3)
    frames["customer_ticket_history"] = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "event_timestamp": [T - timedelta(hours=2), T + timedelta(hours=1), T - timedelta(days=5)],
            "tickets_7d": [1, 8, 3],
            "tickets_30d": [4, 12, 9],
            "last_category": ["billing", "bug", "login"],
        }
    )
    write_sources(tmp_path / "sources", frames)
    apply_repo(open_store(state_dir=tmp_path / "state"), sources=str(tmp_path / "sources"))
    return str(tmp_path / "state")


def test_training_set_joins_point_in_time_and_keeps_rows_and_labels(tmp_path, state_dir):
    entities = tmp_path / "entities.parquet"
    pd.DataFrame(
        {"ticket_id": ["t1", "t2", "t3"], "customer_id": ["c1", "c2", "c1"],
         "event_timestamp": [T, T, T + timedelta(hours=2)], "label": ["refund", "access", "crash"]}
    ).to_parquet(entities)
    out = tmp_path / "out" / "training_data"
    metadata = build_training_set(str(entities), str(out), ["text_classifier_features"], state_dir=state_dir)
    rows = pd.read_parquet(out)
    assert rows["ticket_id"].tolist() == ["t1", "t2", "t3"]
    assert rows["label"].tolist() == ["refund", "access", "crash"]
    assert rows["tickets_7d"].tolist()[0::2] == [1, 8] and pd.isna(rows["tickets_7d"][1])  # c2's value is past its TTL
    assert rows["last_category"].tolist() == ["billing", None, "bug"]
    assert metadata["rows"] == 3
    assert metadata["features"] == [f"customer_ticket_history:{f}" for f in ("tickets_7d", "tickets_30d", "last_category")]
    assert metadata["null_fraction"] == {"tickets_7d": 0.3333, "tickets_30d": 0.3333, "last_category": 0.3333}


def test_missing_timestamp_column_names_the_file_and_column_and_writes_nothing(tmp_path, state_dir):
    entities = tmp_path / "entities.parquet"
    pd.DataFrame({"customer_id": ["c1"], "created": [T]}).to_parquet(entities)
    out = tmp_path / "out" / "training_data"
    message = rf"{entities}: entity dataframe has no timestamp column 'event_timestamp'; columns: customer_id, created"
    with pytest.raises(FeatureStoreError, match=message):
        build_training_set(str(entities), str(out), ["text_classifier_features"], state_dir=state_dir)
    assert not out.exists()


def test_unknown_feature_and_unreadable_entities_are_named(tmp_path, state_dir):
    entities = tmp_path / "entities.parquet"
    pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [T]}).to_parquet(entities)
    out = str(tmp_path / "out")
    unknown = r"unknown feature 'tickets_1d' in feature reference 'customer_ticket_history:tickets_1d'"
    with pytest.raises(FeatureStoreError, match=unknown):
        build_training_set(str(entities), out, ["customer_ticket_history:tickets_1d"], state_dir=state_dir)
    missing = tmp_path / "missing.parquet"
    with pytest.raises(FeatureStoreError, match=rf"cannot read the entity rows {missing}"):
        build_training_set(str(missing), out, ["text_classifier_features"], state_dir=state_dir)
    assert not (tmp_path / "out").exists()
