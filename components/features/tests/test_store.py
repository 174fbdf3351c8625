"""Feast store operations against the project's feature repo (a real store per test: the repo's definitions,
with the registry, the SQLite online store and the Parquet sources in the test's folder): apply, point-in-time
training sets, TTLs, chunked and resumed materialization, online reads, and bad input."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from feast import FeatureStore

from components.features.samples import sample_sources, write_sources
from components.features.store import (
    FeatureStoreError,
    apply_repo,
    default_repo_path,
    materialize_in_chunks,
    online_features,
    open_store,
    training_set,
)

SAMPLE_START = datetime(2024, 3, 1, tzinfo=timezone.utc)
SAMPLE_END = SAMPLE_START + timedelta(hours=72)


@pytest.fixture
def make_store(tmp_path) -> Callable[..., FeatureStore]:
    """``make_store(frames, name)``: writes the sample sources with ``frames`` (view -> rows) in place of
    theirs, opens a store in ``tmp_path/name`` and applies the repo."""

    def make(frames: Mapping[str, pd.DataFrame] = {}, name: str = "store") -> FeatureStore:
        folder = tmp_path / name
        write_sources(folder / "sources", {**sample_sources(SAMPLE_START, SAMPLE_END), **frames})
        store = open_store(state_dir=folder / "state")
        apply_repo(store, sources=str(folder / "sources"))
        return store

    return make

T = datetime(2024, 3, 10, 12, tzinfo=timezone.utc)
HISTORY = [f"customer_ticket_history:{name}" for name in ("tickets_7d", "tickets_30d", "last_category")]


def customer_history(rows: list[tuple[str, datetime, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [row[0] for row in rows],
            "event_timestamp": [row[1] for row in rows],
            "tickets_7d": [row[2] for row in rows],
            "tickets_30d": [row[2] * 10 for row in rows],
            "last_category": [row[3] for row in rows],
        }
    )


def latest_per_entity(frame: pd.DataFrame, key: str, until: datetime) -> dict[str, dict]:
    rows = frame[frame["event_timestamp"] <= until].sort_values("event_timestamp").groupby(key).tail(1)
    return {row[key]: row for row in rows.to_dict("records")}


# --- apply --------------------------------------------------------------------------------------------


def test_apply_registers_every_family_with_ttl_and_its_parquet_source(make_store, tmp_path):
    store = make_store()
    views = {view.name: view for view in store.list_feature_views()}
    assert set(views) == {"customer_ticket_history", "queue_task_stats", "user_task_stats", "host_metric_windows"}
    for view in views.values():
        assert view.ttl > timedelta(0)
        assert view.batch_source.timestamp_field == "event_timestamp"
        assert view.batch_source.path == str(tmp_path / "store" / "sources" / f"{view.name}.parquet")
    assert views["host_metric_windows"].ttl == timedelta(minutes=10)
    assert {f.name for f in views["host_metric_windows"].features} >= {"cpu_mean_5m", "latency_ms_std_60m", "error_rate_mean_15m"}
    assert {entity.name for entity in store.list_entities()} >= {"customer", "queue", "user", "host"}
    services = {service.name for service in store.list_feature_services()}
    assert services == {"text_classifier_features", "tabular_model_features", "anomaly_detector_features"}


def test_reapplying_with_new_sources_updates_the_views_in_place(make_store, tmp_path):
    store = make_store()
    summary = apply_repo(store, sources=str(tmp_path / "elsewhere"))
    assert summary["deleted"] == []
    assert store.get_feature_view("queue_task_stats").batch_source.path == str(tmp_path / "elsewhere" / "queue_task_stats.parquet")
    assert len(store.list_feature_views()) == 4


def test_definitions_removed_from_the_repo_are_deleted_from_the_registry(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(default_repo_path(), repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    store = open_store(repo, state_dir=tmp_path / "state")
    apply_repo(store, sources="data/sources")
    (repo / "anomaly_features.py").unlink()
    summary = apply_repo(store, sources="data/sources")
    assert summary["deleted"] == [
        "Entity host", "FeatureService anomaly_detector_features", "FeatureView host_metric_windows",
        "FileSource host_metric_windows_source",
    ]
    remaining = sorted(view.name for view in store.list_feature_views())
    assert remaining == ["customer_ticket_history", "queue_task_stats", "user_task_stats"]
    assert store.get_feature_view("queue_task_stats").batch_source.path == "data/sources/queue_task_stats.parquet"


# --- training sets: point in time and TTL ------------------------------------------------------------


def test_a_value_recorded_after_the_event_never_reaches_its_row(make_store):
    store = make_store(
        {
            "customer_ticket_history": customer_history(
                [("c1", T - timedelta(hours=5), 1, "billing"), ("c1", T + timedelta(seconds=1), 9, "bug")]
            )
        }
    )
    entities = pd.DataFrame({"customer_id": ["c1", "c1"], "event_timestamp": [T, T + timedelta(hours=1)], "label": ["a", "b"]})
    rows = training_set(store, entities, HISTORY).to_dict("records")
    assert [(row["label"], row["tickets_7d"], row["last_category"]) for row in rows] == [("a", 1, "billing"), ("b", 9, "bug")]


def test_a_value_older_than_the_ttl_gives_null_and_the_row_stays(make_store):
    store = make_store({"customer_ticket_history": customer_history([("c1", T - timedelta(days=2, seconds=1), 4, "login")])})
    entities = pd.DataFrame(
        {"customer_id": ["c1", "c1", "c2"], "event_timestamp": [T, T - timedelta(days=1), T], "label": [0, 1, 2]}
    )
    result = training_set(store, entities, HISTORY)
    assert result["label"].tolist() == [0, 1, 2]
    assert result["tickets_7d"].isna().tolist() == [True, False, True]
    assert result.loc[1, "tickets_7d"] == 4
    assert result["last_category"].isna().tolist() == [True, False, True]


def test_rows_keep_order_duplicates_and_the_values_of_views_that_have_one(make_store):
    queue = pd.DataFrame(
        {"queue_id": ["q1"], "event_timestamp": [T - timedelta(hours=1)], "queue_task_count": [7],
         "queue_avg_duration_s": [12.5], "queue_failure_rate": [0.25]}
    )
    # u1's only value comes after the event: the user view has nothing for the row, the queue view has.
    user = pd.DataFrame(
        {"user_id": ["u1"], "event_timestamp": [T + timedelta(hours=1)], "user_task_count": [3],
         "user_avg_duration_s": [1.0], "user_failure_rate": [0.5]}
    )
    store = make_store({"queue_task_stats": queue, "user_task_stats": user})
    entities = pd.DataFrame(
        {"task": [3, 1, 2], "queue_id": ["q1", "q1", "q9"], "user_id": ["u1", "u1", "u1"], "event_timestamp": [T, T, T]}
    )
    result = training_set(store, entities, ["tabular_model_features"])
    assert result["task"].tolist() == [3, 1, 2]
    assert result["queue_task_count"].tolist()[:2] == [7, 7] and pd.isna(result.loc[2, "queue_task_count"])
    assert result["queue_failure_rate"].tolist()[:2] == [0.25, 0.25]
    assert result["user_task_count"].isna().all()
    assert str(result["queue_task_count"].dtype) == "Int64"


def test_timestamp_column_with_another_name_and_naive_times_as_utc(make_store):
    store = make_store({"customer_ticket_history": customer_history([("c1", T - timedelta(hours=1), 5, "bug")])})
    entities = pd.DataFrame({"customer_id": ["c1", "c1"], "created_at": [T.replace(tzinfo=None), T - timedelta(hours=2)]})
    result = training_set(store, entities, ["customer_ticket_history:tickets_7d"], timestamp_column="created_at")
    assert list(result.columns) == ["customer_id", "created_at", "tickets_7d"]
    assert result["tickets_7d"].tolist()[0] == 5 and pd.isna(result["tickets_7d"].tolist()[1])


def test_full_feature_names_prefix_the_view(make_store):
    store = make_store({"customer_ticket_history": customer_history([("c1", T - timedelta(hours=1), 5, "bug")])})
    entities = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [T]})
    result = training_set(store, entities, ["customer_ticket_history:tickets_7d"], full_feature_names=True)
    assert result["customer_ticket_history__tickets_7d"].tolist() == [5]


# --- materialize and online reads ---------------------------------------------------------------------


def test_materialize_then_online_read_returns_the_latest_value(make_store):
    store = make_store(
        {
            "customer_ticket_history": customer_history(
                [
                    ("c1", T - timedelta(hours=3), 1, "billing"),
                    ("c1", T - timedelta(hours=1), 2, "bug"),
                    ("c2", T - timedelta(hours=2), 6, "login"),
                ]
            )
        }
    )
    materialize_in_chunks(store, T - timedelta(days=1), T, chunk_hours=48)
    values = online_features(store, HISTORY, [{"customer_id": "c1"}, {"customer_id": "c2"}, {"customer_id": "nobody"}], now=T)
    assert values == {
        "customer_id": ["c1", "c2", "nobody"],
        "tickets_7d": [2, 6, None],
        "tickets_30d": [20, 60, None],
        "last_category": ["bug", "login", None],
    }


def test_online_values_older_than_the_ttl_are_none_as_in_training(make_store):
    store = make_store({"customer_ticket_history": customer_history([("c1", T, 2, "bug")])})
    materialize_in_chunks(store, T - timedelta(days=1), T + timedelta(hours=1), chunk_hours=48)
    ref, row = ["customer_ticket_history:tickets_7d"], [{"customer_id": "c1"}]
    fresh = online_features(store, ref, row, now=T + timedelta(days=2))
    stale = online_features(store, ref, row, now=T + timedelta(days=2, seconds=1))
    assert fresh["tickets_7d"] == [2] and stale["tickets_7d"] == [None]


def online_snapshot(store, frames) -> dict[str, dict]:
    """Every view's raw online values and event times (no TTL applied) for all of its sample entities."""
    snapshot = {}
    for view in store.list_feature_views():
        key = view.entity_columns[0].name
        rows = [{key: entity} for entity in sorted(frames[view.name][key].unique())]
        refs = [f"{view.name}:{feature.name}" for feature in view.features]
        snapshot[view.name] = store.get_online_features(features=refs, entity_rows=rows).to_dict(include_event_timestamps=True)
    return snapshot


def test_chunked_materialize_gives_the_same_online_values_as_one_big_one(make_store):
    frames = sample_sources(SAMPLE_START, SAMPLE_END)
    chunked, whole = make_store(name="chunked"), make_store(name="whole")
    chunks = materialize_in_chunks(chunked, SAMPLE_START, SAMPLE_END, chunk_hours=24)
    materialize_in_chunks(whole, SAMPLE_START, SAMPLE_END, chunk_hours=1000)
    assert [(chunk.start, chunk.end) for chunk in chunks] == [
        (SAMPLE_START + timedelta(days=day), SAMPLE_START + timedelta(days=day + 1)) for day in range(3)
    ]
    snapshot = online_snapshot(chunked, frames)
    assert snapshot == online_snapshot(whole, frames)
    latest = latest_per_entity(frames["customer_ticket_history"], "customer_id", SAMPLE_END)
    history = snapshot["customer_ticket_history"]
    assert history["tickets_7d"] == [latest[c]["tickets_7d"] for c in history["customer_id"]]
    assert history["last_category"] == [latest[c]["last_category"] for c in history["customer_id"]]


def test_a_rerun_resumes_after_the_chunks_already_done(make_store):
    frames = sample_sources(SAMPLE_START, SAMPLE_END)
    store = make_store()
    first = materialize_in_chunks(store, SAMPLE_START, SAMPLE_START + timedelta(hours=48), chunk_hours=24)
    assert all(len(chunk.materialized) == 4 for chunk in first)
    rerun = materialize_in_chunks(store, SAMPLE_START, SAMPLE_END, chunk_hours=24)
    assert [(len(chunk.materialized), len(chunk.skipped)) for chunk in rerun] == [(0, 4), (0, 4), (4, 0)]
    latest = latest_per_entity(frames["queue_task_stats"], "queue_id", SAMPLE_END)
    values = online_features(store, ["queue_task_stats:queue_task_count"], [{"queue_id": q} for q in sorted(latest)], now=SAMPLE_END)
    assert values["queue_task_count"] == [latest[q]["queue_task_count"] for q in sorted(latest)]
    forced = materialize_in_chunks(store, SAMPLE_START, SAMPLE_END, chunk_hours=24, feature_views=["host_metric_windows"], resume=False)
    assert [chunk.materialized for chunk in forced] == [("host_metric_windows",)] * 3


# --- bad input ------------------------------------------------------------------------------------------


def test_entity_frame_without_the_timestamp_column_is_named(make_store):
    store = make_store()
    with pytest.raises(FeatureStoreError, match=r"no timestamp column 'event_timestamp'; columns: customer_id, label"):
        training_set(store, pd.DataFrame({"customer_id": ["c1"], "label": [1]}), HISTORY)


@pytest.mark.parametrize(
    "ref, message",
    [
        (
            "customer_ticket_history:tickets_365d",
            r"unknown feature 'tickets_365d' in feature reference 'customer_ticket_history:tickets_365d'; "
            r"view 'customer_ticket_history' has: tickets_7d",
        ),
        (
            "customer_history:tickets_7d",
            r"unknown feature view 'customer_history' in feature reference 'customer_history:tickets_7d'; "
            r"views: customer_ticket_history",
        ),
        (
            "text_features",
            r"'text_features' is neither a 'view:feature' reference nor a feature service; "
            r"services: anomaly_detector_features",
        ),
    ],
)
def test_unknown_feature_reference_is_named(make_store, ref, message):
    store = make_store()
    entities = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [T]})
    with pytest.raises(FeatureStoreError, match=message):
        training_set(store, entities, [ref])
    with pytest.raises(FeatureStoreError, match=message):
        online_features(store, [ref], [{"customer_id": "c1"}])


def test_missing_or_empty_entity_columns_are_named(make_store):
    store = make_store()
    with pytest.raises(FeatureStoreError, match=r"lacks the entity column\(s\) 'user_id'"):
        training_set(store, pd.DataFrame({"queue_id": ["q1"], "event_timestamp": [T]}), ["tabular_model_features"])
    with pytest.raises(FeatureStoreError, match=r"'customer_id' is empty in 1 row\(s\), first at row 1"):
        training_set(store, pd.DataFrame({"customer_id": ["c1", None], "event_timestamp": [T, T]}), HISTORY)
    with pytest.raises(FeatureStoreError, match=r"'event_timestamp' is empty in 1 row\(s\), first at row 0"):
        training_set(store, pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [pd.NaT]}), HISTORY)
    with pytest.raises(FeatureStoreError, match=r"'event_timestamp' does not parse as timestamps"):
        training_set(store, pd.DataFrame({"customer_id": ["c1"], "event_timestamp": ["yesterday"]}), HISTORY)
    with pytest.raises(FeatureStoreError, match=r"entity row 1 lacks 'customer_id'"):
        online_features(store, HISTORY, [{"customer_id": "c1"}, {"customer": "c2"}])


def test_feature_names_that_clash_with_entity_columns_are_refused(make_store):
    store = make_store()
    entities = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [T], "tickets_7d": [3]})
    with pytest.raises(FeatureStoreError, match=r"'tickets_7d' repeat or clash"):
        training_set(store, entities, HISTORY)


def test_bad_materialize_ranges_and_views_are_refused(make_store, tmp_path):
    store = make_store()
    with pytest.raises(FeatureStoreError, match="is not before end"):
        materialize_in_chunks(store, T, T)
    with pytest.raises(FeatureStoreError, match="chunk_hours must be positive, got 0"):
        materialize_in_chunks(store, T - timedelta(days=1), T, chunk_hours=0)
    with pytest.raises(FeatureStoreError, match=r"unknown or offline-only feature view\(s\) 'hosts'"):
        materialize_in_chunks(store, T - timedelta(days=1), T, feature_views=["hosts"])
    empty = open_store(state_dir=tmp_path / "never_applied")
    with pytest.raises(FeatureStoreError, match="apply the repo first"):
        materialize_in_chunks(empty, T - timedelta(days=1), T)


def test_materializing_a_missing_source_names_it(make_store, tmp_path):
    store = make_store()
    apply_repo(store, sources=str(tmp_path / "nothing_here"))
    with pytest.raises(FeatureStoreError, match=r"cannot read the source of feature view .queue_task_stats. at .*nothing_here"):
        materialize_in_chunks(store, T - timedelta(days=1), T, feature_views=["queue_task_stats"])


def test_a_repo_without_config_and_state_dir_with_a_cluster_profile_are_refused(tmp_path):
    with pytest.raises(FeatureStoreError, match=rf"feature repo {tmp_path} has no feature_store.yaml"):
        open_store(tmp_path)
    with pytest.raises(FeatureStoreError, match="state_dir moves the SQLite online store"):
        open_store(state_dir=tmp_path, config_file="feature_store.cluster.yaml")


def test_a_source_missing_a_feature_column_is_named(make_store):
    frames = sample_sources(SAMPLE_START, SAMPLE_END)
    store = make_store({"queue_task_stats": frames["queue_task_stats"].drop(columns="queue_failure_rate")})
    message = r"the source of feature view 'queue_task_stats' at .*queue_task_stats.parquet lacks column\(s\) 'queue_failure_rate'"
    with pytest.raises(FeatureStoreError, match=message):
        materialize_in_chunks(store, SAMPLE_START, SAMPLE_END)
    with pytest.raises(FeatureStoreError, match=message):
        training_set(store, pd.DataFrame({"queue_id": ["q1"], "event_timestamp": [T]}), ["queue_task_stats:queue_task_count"])


def test_entity_ids_of_the_wrong_type_are_named(make_store):
    store = make_store()
    entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T, T]})
    with pytest.raises(FeatureStoreError, match=r"join of view 'customer_ticket_history' failed: .*key 'customer_id'"):
        training_set(store, entities, HISTORY)
