"""Tabular family (task duration / failure models): aggregated history of a task's queue and user.

Sources ``queue_task_stats.parquet`` and ``user_task_stats.parquet``: one row per queue (user) per
aggregation run, with ``queue_id`` (``user_id``) (string), ``event_timestamp`` (end of the aggregated
window, UTC) and, over the tasks finished in that window, ``*_task_count`` (int64),
``*_avg_duration_s`` (float64: mean run time in seconds) and ``*_failure_rate`` (float64: share of
failed tasks, 0 to 1).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String
from feature_sources import source_path

# Aggregates are recomputed daily; after three days without a run they are treated as missing.
STATS_TTL = timedelta(days=3)

queue = Entity(name="queue", join_keys=["queue_id"], value_type=ValueType.STRING, description="A task queue.")
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="A user who submits tasks.")


def _task_stats_view(entity: Entity, prefix: str) -> FeatureView:
    join_key = entity.join_key
    return FeatureView(
        name=f"{prefix}_task_stats",
        entities=[entity],
        ttl=STATS_TTL,
        schema=[
            Field(name=join_key, dtype=String),
            Field(name=f"{prefix}_task_count", dtype=Int64, description="Tasks finished in the window."),
            Field(name=f"{prefix}_avg_duration_s", dtype=Float64, description="Mean task run time, seconds."),
            Field(name=f"{prefix}_failure_rate", dtype=Float64, description="Share of failed tasks (0 to 1)."),
        ],
        source=FileSource(
            name=f"{prefix}_task_stats_source",
            path=source_path(f"{prefix}_task_stats"),
            timestamp_field="event_timestamp",
        ),
        online=True,
        description=f"Task duration and failure aggregates per {entity.name}.",
    )


queue_task_stats = _task_stats_view(queue, "queue")
user_task_stats = _task_stats_view(user, "user")

tabular_model_features = FeatureService(
    name="tabular_model_features",
    features=[queue_task_stats, user_task_stats],
    description="Queue and user history for the task duration / failure models.",
)
