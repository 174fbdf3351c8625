"""Continuous training for tabular classification (task priority): drift check of the latest window of traffic
against the served model's training data (by default the registry champion's) → if drift: retrain on fresh
records (ingest → validate → features → tabular_train_release: train → register → evaluate → gate against the
champion → deploy).

Meant for a recurring run (``kfp-mlops schedule tabular_classification_ct --cron ...``); ``kfp-mlops run
tabular_classification_ct --local`` runs one cycle. The pattern is pipelines/text_classification_ct.py's.
"""

from kfp import dsl

from components.fit_drift_detector.component import fit_drift_detector
from pipelines.tabular_classification import tabular_train_release, task_training_sets
from pipelines.text_classification_ct import PREDICTION_COLUMN, drift_then_compare, served_training_data


def drift_check(
    reference_data: str,
    model_name: str,
    tracking_uri: str,
    payloads: str,
    payload_format: str,
    payload_time_column: str,
    window_end: str,
    window_hours: float,
    inference_service: str,
    max_samples: int,
    min_samples: int,
    max_reference_rows: int,
    p_val: float,
    drift_numeric_columns: list,
    drift_categorical_columns: list,
    label_column: str,
    seed: int,
) -> dsl.PipelineTask:
    """Fit a detector on the reference (reference_data, else model_name's champion's training data), then
    drift_then_compare. Returns the drift task (the verdict)."""
    reference = served_training_data(reference_data, model_name, tracking_uri)
    detector = fit_drift_detector(
        reference=reference.output,
        numeric_columns=drift_numeric_columns,
        categorical_columns=drift_categorical_columns,
        label_column=label_column,
        prediction_column=PREDICTION_COLUMN,
        p_val=p_val,
        max_reference_rows=max_reference_rows,
        seed=seed,
    )
    return drift_then_compare(
        reference,
        detector,
        window=dict(
            payloads=payloads,
            payload_format=payload_format,
            time_column=payload_time_column,
            window_end=window_end,
            window_hours=window_hours,
            inference_service=inference_service,
            max_samples=max_samples,
            min_samples=min_samples,
            seed=seed,
        ),
        comparison=dict(label_column=label_column, prediction_column=PREDICTION_COLUMN),
    )


@dsl.pipeline(
    name="tabular-classification-ct",
    description="Tests the latest window of traffic (the payload log, or a table of records) for drift against "
    "the served model's training set (alibi-detect KS and Chi-squared tests, with a TFDV comparison in the same "
    "report) and, on drift, retrains on fresh task records: ingest, TFDV validation, Feast features, training, "
    "registration, evaluation, the champion/challenger gate and a deployment.",
)
def tabular_classification_ct(
    payloads: str,
    reference_data: str = "",
    source: str = "demo:tasks",
    payload_format: str = "kserve",
    payload_time_column: str = "",
    window_end: str = "",
    window_hours: float = 24.0,
    inference_service: str = "",
    max_samples: int = 1000,
    min_samples: int = 100,
    max_reference_rows: int = 5000,
    p_val: float = 0.05,
    drift_numeric_columns: list = ["requested_cpu", "n_dependencies"],
    drift_categorical_columns: list = ["task_type", "queue", "user_id", "requested_memory_gb"],
    target_column: str = "priority",
    feature_columns: list = ["task_type", "requested_cpu", "requested_memory_gb", "queue", "user_id", "n_dependencies", "queue_task_count", "queue_avg_duration_s", "queue_failure_rate", "user_task_count", "user_avg_duration_s", "user_failure_rate"],
    id_column: str = "task_id",
    time_column: str = "submit_time",
    eval_fraction: float = 0.15,
    test_fraction: float = 0.15,
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    feature_sources: str = "",
    feature_state: str = "",
    algorithm: str = "xgboost",
    hyperparameters: str = "",
    seed: int = 42,
    slice_column: str = "queue",
    champion_model: str = "",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "task-priority",
    smoke_input: str = '{"task_type": "inference", "requested_cpu": 2, "requested_memory_gb": 4, "queue": "interactive", "user_id": "u04", "n_dependencies": 0, "queue_task_count": 30, "queue_avg_duration_s": 400.0, "queue_failure_rate": 0.02, "user_task_count": 5, "user_avg_duration_s": 300.0, "user_failure_rate": 0.0}',
    tracking_uri: str = "",
):
    """payloads: the serving payload log (payload_format "kserve": serving/payload_logger.py's Parquet root, local
    or gs://) or a Parquet table of records (payload_format "table", timed by payload_time_column). The window is
    the window_hours before window_end (ISO 8601 with a zone; empty: now), optionally of one inference_service.
    reference_data: the served model's training data (Parquet, a local path or gs:// URI; e.g. the training-set
    task's output of the run that trained it); empty (the default): the task records the registry recorded as
    model_name's champion's training data (tracking_uri; they hold every watched column and the target), so a
    schedule follows each promotion. The drift_* columns are watched; labels are compared with the logged
    predictions.
    source: the fresh records to retrain on; the parameters after target_column are tabular_classification's.
    Retraining follows the alibi-detect verdict; TFDV's is reported beside it."""
    checked = drift_check(
        reference_data, model_name, tracking_uri, payloads, payload_format, payload_time_column, window_end,
        window_hours, inference_service, max_samples, min_samples, max_reference_rows, p_val, drift_numeric_columns,
        drift_categorical_columns, target_column, seed,
    )  # fmt: skip
    with dsl.If(checked.outputs["Output"] == True, name="drifted"):  # noqa: E712 (KFP builds the condition from ==)
        data, features = task_training_sets(
            source, target_column, id_column, time_column, eval_fraction, test_fraction, schema_file,
            fail_on_anomalies, feature_sources, feature_state,
        )  # fmt: skip
        tabular_train_release(
            train_data=features["train"],
            eval_data=features["eval"],
            test_data=features["test"],
            train_records=data.outputs["train_data"],
            task="classification",
            target_column=target_column,
            feature_columns=feature_columns,
            algorithm=algorithm,
            hyperparameters=hyperparameters,
            seed=seed,
            slice_column=slice_column,
            champion_model=champion_model,
            min_accuracy=min_accuracy,
            min_macro_f1=min_macro_f1,
            thresholds=thresholds,
            deploy_target=deploy_target,
            model_name=model_name,
            smoke_input=smoke_input,
            tracking_uri=tracking_uri,
        )
