"""Continuous training for tabular regression (task duration): drift check of the latest window of traffic against the
served model's training data (by default the registry champion's) → if drift: retrain on fresh records (ingest →
validate → features → tabular_train_release). The steps are those of pipelines/tabular_classification_ct.py; the
predictions are numbers, so only the features are tested for drift."""

from kfp import dsl

from pipelines.tabular_classification import tabular_train_release, task_training_sets
from pipelines.tabular_classification_ct import drift_check


@dsl.pipeline(
    name="tabular-regression-ct",
    description="Tests the latest window of traffic (the payload log, or a table of records) for drift against "
    "the served model's training set (alibi-detect KS and Chi-squared tests, with a TFDV comparison in the same "
    "report) and, on drift, retrains the regressor on fresh task records: ingest, TFDV validation, Feast "
    "features, training, registration, evaluation, the champion/challenger gate and a deployment.",
)
def tabular_regression_ct(
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
    target_column: str = "duration_s",
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
    hyperparameters: str = '{"target_transform": "log1p", "max_depth": 4}',
    seed: int = 42,
    champion_model: str = "",
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "task-duration",
    smoke_input: str = '{"task_type": "etl", "requested_cpu": 2, "requested_memory_gb": 4, "queue": "batch", "user_id": "u01", "n_dependencies": 2, "queue_task_count": 60, "queue_avg_duration_s": 1500.0, "queue_failure_rate": 0.05, "user_task_count": 12, "user_avg_duration_s": 900.0, "user_failure_rate": 0.08}',
    tracking_uri: str = "",
):
    """Parameters as in tabular_classification_ct (monitoring) and tabular_regression (retraining); reference_data
    empty (the default): the training data the registry recorded for model_name's champion (tracking_uri)."""
    checked = drift_check(
        reference_data, model_name, tracking_uri, payloads, payload_format, payload_time_column, window_end,
        window_hours, inference_service, max_samples, min_samples, max_reference_rows, p_val, drift_numeric_columns,
        drift_categorical_columns, "", seed,
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
            task="regression",
            target_column=target_column,
            feature_columns=feature_columns,
            algorithm=algorithm,
            hyperparameters=hyperparameters,
            seed=seed,
            slice_column="",
            champion_model=champion_model,
            min_accuracy=0.0,
            min_macro_f1=0.0,
            thresholds=thresholds,
            deploy_target=deploy_target,
            model_name=model_name,
            smoke_input=smoke_input,
            tracking_uri=tracking_uri,
        )
