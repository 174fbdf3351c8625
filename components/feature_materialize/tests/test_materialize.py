"""feature_materialize: chunked, resumable loads into the SQLite online store, with a JSON report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from components.feature_materialize.materialize import run_materialize
from components.features.samples import sample_sources, write_sources
from components.features.store import FeatureStoreError, apply_repo, online_features, open_store

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def applied_store(tmp_path, start: datetime, end: datetime):
    frames = sample_sources(start, end, customers=5)
    write_sources(tmp_path / "sources", frames)
    store = open_store(state_dir=tmp_path / "state")
    apply_repo(store, sources=str(tmp_path / "sources"))
    return store, frames


def test_materialize_reports_each_chunk_and_a_rerun_skips_them(tmp_path):
    store, frames = applied_store(tmp_path, START, START + timedelta(hours=48))
    report = tmp_path / "out" / "report"
    kwargs = dict(chunk_hours=24, feature_views=["customer_ticket_history"], state_dir=str(tmp_path / "state"))
    first = run_materialize(str(report), "2024-03-01T00:00:00Z", "2024-03-03T00:00:00", **kwargs)
    assert first["chunks"] == 2 and first["view_chunks_materialized"] == 2 and first["view_chunks_skipped"] == 0
    assert json.loads(report.read_text()) == [
        {"start": "2024-03-01T00:00:00+00:00", "end": "2024-03-02T00:00:00+00:00",
         "materialized": ["customer_ticket_history"], "skipped": []},
        {"start": "2024-03-02T00:00:00+00:00", "end": "2024-03-03T00:00:00+00:00",
         "materialized": ["customer_ticket_history"], "skipped": []},
    ]
    again = run_materialize(str(report), "2024-03-01T00:00:00Z", "2024-03-03T00:00:00", **kwargs)
    assert again["view_chunks_materialized"] == 0 and again["view_chunks_skipped"] == 2
    history = frames["customer_ticket_history"].sort_values("event_timestamp").groupby("customer_id").tail(1)
    latest = dict(zip(history["customer_id"], history["tickets_30d"]))
    values = online_features(
        store, ["customer_ticket_history:tickets_30d"], [{"customer_id": c} for c in sorted(latest)],
        now=START + timedelta(hours=48),
    )
    assert values["tickets_30d"] == [latest[c] for c in sorted(latest)]


def test_an_empty_end_means_now(tmp_path):
    now = datetime.now(timezone.utc)
    applied_store(tmp_path, now - timedelta(hours=2), now)
    metadata = run_materialize(
        str(tmp_path / "report"), (now - timedelta(hours=1)).isoformat(), chunk_hours=24, state_dir=str(tmp_path / "state")
    )
    assert metadata["chunks"] == 1 and metadata["view_chunks_materialized"] == 4
    assert datetime.fromisoformat(metadata["end"]) >= now


@pytest.mark.parametrize(
    "start, end, message",
    [
        ("March 1st", "", r"start='March 1st' is not an ISO-8601 time"),
        ("2024-03-01", "2024-02-30", r"end='2024-02-30' is not an ISO-8601 time"),
        ("2024-03-02", "2024-03-01", r"materialize start 2024-03-02T00:00:00\+00:00 is not before end"),
    ],
)
def test_bad_times_are_named_and_nothing_is_written(tmp_path, start, end, message):
    applied_store(tmp_path, START, START + timedelta(hours=24))
    report = tmp_path / "out" / "report"
    with pytest.raises(FeatureStoreError, match=message):
        run_materialize(str(report), start, end, state_dir=str(tmp_path / "state"))
    assert not report.exists()
