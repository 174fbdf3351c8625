"""Tabular regression (task duration from task-execution records), with p10-p90 prediction intervals:
ingest → validate → features (rolling queue/user history in Feast; point-in-time training sets) → [tune] → train →
register (challenger) → evaluate → champion/challenger gate → deploy, plus a drift detector fitted on the
training set. The steps are those of pipelines/tabular_classification.py."""

from kfp import dsl

from components.fit_drift_detector.component import fit_drift_detector
from pipelines.tabular_classification import one_line_search_space, task_training_sets, tuned_train_release

DEFAULT_SEARCH_SPACE = one_line_search_space("example_tabular_regression_search_space.json")


@dsl.pipeline(
    name="tabular-regression",
    description="Predicts a number from task-execution records (default: run time in seconds) with p10-p90 "
    "prediction intervals, with XGBoost, a random forest, an SVM or a linear model: TFDV validation, queue and "
    "user history from Feast joined point-in-time, training, registration in MLflow, evaluation (RMSE, MAE, R², "
    "interval coverage), the champion/challenger gate on RMSE and a KServe deployment when blessed; a drift "
    "detector is fitted on the training set.",
)
def tabular_regression(
    source: str = "demo:tasks",
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
    tune_backend: str = "none",
    search_space: str = DEFAULT_SEARCH_SPACE,
    drift_numeric_columns: list = ["requested_cpu", "n_dependencies"],
    drift_categorical_columns: list = ["task_type", "queue", "user_id", "requested_memory_gb"],
    champion_model: str = "",
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "task-duration",
    smoke_input: str = '{"task_type": "etl", "requested_cpu": 2, "requested_memory_gb": 4, "queue": "batch", "user_id": "u01", "n_dependencies": 2, "queue_task_count": 60, "queue_avg_duration_s": 1500.0, "queue_failure_rate": 0.05, "user_task_count": 12, "user_avg_duration_s": 900.0, "user_failure_rate": 0.08}',
    tracking_uri: str = "",
):
    """Parameters as in tabular_classification, except: target_column is numeric; hyperparameters default to a
    log1p target (durations are log-normal) and shallower trees; thresholds are the gate's absolute bars, e.g.
    {"r2": ">=0.3", "rmse": "<=900"} (the challenger must also not lose on RMSE, MAE or R² against the champion);
    the default search_space minimises eval_rmse and tunes target_transform too."""
    data, features = task_training_sets(
        source, target_column, id_column, time_column, eval_fraction, test_fraction, schema_file, fail_on_anomalies,
        feature_sources, feature_state,
    )  # fmt: skip
    fit_drift_detector(
        reference=features["train"],
        numeric_columns=drift_numeric_columns,
        categorical_columns=drift_categorical_columns,
        seed=seed,
    )
    tuned_train_release(
        tune_backend,
        search_space,
        hyperparameters,
        train_data=features["train"],
        eval_data=features["eval"],
        test_data=features["test"],
        train_records=data.outputs["train_data"],
        task="regression",
        target_column=target_column,
        feature_columns=feature_columns,
        algorithm=algorithm,
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
