"""task_stats on seeded demo task records: the rolling history, its point-in-time safety, and bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.features.store import apply_repo, open_store, training_set
from components.task_stats.task_stats import RecordColumns, TaskStatsError, rolling_stats, run_task_stats
from kfp_mlops import demo_tasks

SPLITS = ("train", "eval", "test")


def write_splits(folder: Path, rows: int = 600, seed: int = 0) -> dict[str, str]:
    """Demo records typed as ingest writes them (UTC timestamps, numbers), dealt into three splits."""
    records = pd.DataFrame(demo_tasks.tasks(rows, seed=seed))
    records["submit_time"] = pd.to_datetime(records["submit_time"], utc=True)
    records["duration_s"] = records["duration_s"].astype(float)
    paths = {}
    for offset, split in enumerate(SPLITS):
        paths[split] = str(folder / f"{split}.parquet")
        records.iloc[offset::3].to_parquet(paths[split])
    return paths


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("records")
    return pd.concat(pd.read_parquet(path) for path in write_splits(folder).values())


def test_each_tick_counts_the_tasks_finished_in_the_window_before_it(records):
    stats = rolling_stats(records, "queue", "queue", RecordColumns(), window_hours=6, every_hours=1)
    finished = records["submit_time"] + pd.to_timedelta(records["duration_s"], unit="s")
    for _, row in stats.sample(25, random_state=0).iterrows():
        tick = row["event_timestamp"]
        inside = records[(records["queue"] == row["queue_id"]) & (finished <= tick)
                         & (finished > tick - pd.Timedelta(hours=6))]  # fmt: skip
        assert row["queue_task_count"] == len(inside)
        if len(inside):
            assert row["queue_avg_duration_s"] == pytest.approx(inside["duration_s"].mean())
            assert row["queue_failure_rate"] == pytest.approx((inside["outcome"] == "failed").mean())
        else:
            assert np.isnan(row["queue_avg_duration_s"]) and np.isnan(row["queue_failure_rate"])
    assert (stats["event_timestamp"] == stats["event_timestamp"].dt.floor("h")).all()


def test_sources_feed_a_point_in_time_join_without_the_rows_own_outcome(tmp_path):
    splits = write_splits(tmp_path)
    outputs = {split: str(tmp_path / f"{split}-entities.parquet") for split in SPLITS}
    result = run_task_stats(splits, outputs, sources=str(tmp_path / "sources"))
    assert set(result["rows"]) == {"queue_task_stats", "user_task_stats"}
    assert pd.Timestamp(result["first_event"]) < pd.Timestamp(result["last_event"])
    entities = pd.read_parquet(outputs["train"])
    assert (entities["queue_id"] == entities["queue"]).all() and len(entities) == 200
    store = open_store(state_dir=tmp_path / "feast")
    apply_repo(store, sources=str(tmp_path / "sources"))
    joined = training_set(store, entities, ["tabular_model_features"], timestamp_column="submit_time")
    # A task finishes after it is submitted, so no joined count can include the task itself: a user's very first
    # task (of all splits: nothing of theirs had finished before it) has no user history.
    everything = pd.concat(pd.read_parquet(path) for path in splits.values())
    first_submit = joined["user_id"].map(everything.groupby("user_id")["submit_time"].min())
    firsts = joined[joined["submit_time"] == first_submit]
    assert len(firsts) > 5 and firsts["user_task_count"].fillna(0).eq(0).all()
    assert joined["queue_task_count"].notna().mean() > 0.9


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda frame: frame.drop(columns="queue"), "missing column(s) ['queue']"),
        (lambda frame: frame.assign(duration_s=-1.0), "column 'duration_s' is empty or negative in rows [0, 1"),
        (lambda frame: frame.assign(submit_time="yesterday"), "column 'submit_time' is empty or not a time"),
    ],
    ids=["no queue", "negative duration", "bad time"],
)
def test_bad_records_are_named_and_nothing_is_written(change, problem, tmp_path):
    splits = write_splits(tmp_path, rows=30)
    change(pd.read_parquet(splits["eval"])).to_parquet(splits["eval"])
    outputs = {split: str(tmp_path / f"{split}-entities.parquet") for split in SPLITS}
    with pytest.raises(TaskStatsError) as raised:
        run_task_stats(splits, outputs, sources=str(tmp_path / "sources"))
    assert problem in str(raised.value) and splits["eval"] in str(raised.value)
    assert not (tmp_path / "sources").exists() and not any(Path(p).exists() for p in outputs.values())
