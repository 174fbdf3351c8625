"""KFP definition of task_stats (image `data`); the logic is in task_stats.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def task_stats(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    test_data: Input[Dataset],
    train_entities: Output[Dataset],
    eval_entities: Output[Dataset],
    test_entities: Output[Dataset],
    sources: str = "",
    queue_column: str = "queue",
    user_column: str = "user_id",
    time_column: str = "submit_time",
    duration_column: str = "duration_s",
    outcome_column: str = "outcome",
    failed_value: str = "failed",
    window_hours: float = 24.0,
    every_hours: float = 1.0,
) -> NamedTuple("TaskStatsOutputs", [("first_event", str), ("last_event", str)]):
    """Computes the Feast sources of the tabular views (queue_task_stats, user_task_stats) from task records.

    For each queue and user, every every_hours: the count, mean duration and failure rate of its tasks that
    finished (submit time + duration) in the window_hours before, written to <sources>/<view>.parquet (a folder
    or gs:// prefix, relative paths against the feature repo; empty: where feature_apply looks by default).
    Only finished tasks count, so a point-in-time join never leaks a task's own outcome into its row. Each split
    is passed on with the views' join keys (queue_id, user_id) as the entity rows for training_set. Outputs the
    sources' first and last event times (ISO 8601) for feature_materialize.
    """
    from collections import namedtuple

    from components.task_stats.task_stats import RecordColumns, run_task_stats

    result = run_task_stats(
        splits={"train": train_data.path, "eval": eval_data.path, "test": test_data.path},
        entity_outputs={"train": train_entities.path, "eval": eval_entities.path, "test": test_entities.path},
        sources=sources,
        columns=RecordColumns(
            queue=queue_column, user=user_column, time=time_column, duration=duration_column,
            outcome=outcome_column, failed_value=failed_value,
        ),  # fmt: skip
        window_hours=window_hours,
        every_hours=every_hours,
    )
    for name, artifact in (("train", train_entities), ("eval", eval_entities), ("test", test_entities)):
        artifact.metadata.update({"split": name, "sources": result["sources"], "feature_rows": result["rows"]})
    return namedtuple("TaskStatsOutputs", ["first_event", "last_event"])(result["first_event"], result["last_event"])
