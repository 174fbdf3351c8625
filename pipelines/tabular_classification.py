"""Tabular classification (task priority from task-execution records):
ingest → validate → features (rolling queue/user history in Feast; point-in-time training sets) → [tune] → train →
register (challenger) → evaluate → champion/challenger gate → deploy (which moves the registry's champion alias),
plus a drift detector fitted on the training set for continuous training.

The feature steps, the optional tuning and the train → release sub-pipeline are shared with
pipelines/tabular_regression.py.
"""

import json
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Input, pipeline_channel

from components.evaluate.component import evaluate
from components.feature_apply.component import feature_apply
from components.feature_materialize.component import feature_materialize
from components.fit_drift_detector.component import fit_drift_detector
from components.ingest.component import ingest
from components.task_stats.component import task_stats
from components.train_tabular.component import train_tabular
from components.training_set.component import training_set
from components.tune.component import tune
from components.tune_local.component import tune_local
from components.validate.component import validate
from pipelines.text_classification import gate_then_deploy, register_challenger

FEATURE_SERVICE = "tabular_model_features"  # feature_repo/tabular_features.py: queue_task_stats + user_task_stats
HISTORY_VIEWS = ["queue_task_stats", "user_task_stats"]
MATERIALIZE_CHUNK_HOURS = 24.0


def one_line_search_space(file_name: str) -> str:
    """An example search space as one line: KFP copies each default into a comment of the compiled YAML."""
    return json.dumps(json.loads((Path(__file__).resolve().parents[1] / "components" / "tune" / file_name).read_text()))


DEFAULT_SEARCH_SPACE = one_line_search_space("example_tabular_search_space.json")


def task_training_sets(
    source: str, target_column: str, id_column: str, time_column: str, eval_fraction: float, test_fraction: float,
    schema_file: str, fail_on_anomalies: bool, feature_sources: str, feature_state: str,
) -> tuple[dsl.PipelineTask, dict[str, pipeline_channel.PipelineChannel]]:
    """Task records split by submit time (train on the past, evaluate and test on what came after), validated
    by TFDV, then the feature steps: task_stats writes the views' sources and keyed entity rows, feature_apply
    registers the views, feature_materialize loads the online store (for serving), and training_set joins the
    history point-in-time onto each split. Returns the ingest task and the train/eval/test training sets."""
    data = ingest(
        source=source,
        label_column=target_column,
        id_column=id_column,
        split_by="time",
        timestamp_column=time_column,
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
    )
    validated = validate(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        schema_file=schema_file,
        fail_on_anomalies=fail_on_anomalies,
    )
    stats = task_stats(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        test_data=data.outputs["test_data"],
        sources=feature_sources,
        time_column=time_column,
    ).after(validated)
    stats.set_caching_options(False)  # writes the feature sources, outside the pipeline root
    applied = feature_apply(sources=feature_sources, state_dir=feature_state).after(stats)
    applied.set_caching_options(False)
    feature_materialize(
        start=stats.outputs["first_event"],
        end=stats.outputs["last_event"],
        chunk_hours=MATERIALIZE_CHUNK_HOURS,
        feature_views=HISTORY_VIEWS,
        state_dir=feature_state,
    ).after(applied).set_caching_options(False)
    return data, {
        split: training_set(
            entities=stats.outputs[f"{split}_entities"],
            features=[FEATURE_SERVICE],
            timestamp_column=time_column,
            state_dir=feature_state,
        )
        .after(applied)
        .set_display_name(f"training-set-{split}")
        .outputs["training_data"]
        for split in ("train", "eval", "test")
    }


@dsl.pipeline(
    name="tabular-train-release",
    description="Train a tabular model on feature-joined splits, register, evaluate, gate against the registry's "
    "champion, deploy.",
)
def tabular_train_release(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    test_data: Input[Dataset],
    train_records: Input[Dataset],
    task: str,
    target_column: str,
    feature_columns: list,
    algorithm: str,
    hyperparameters: str,
    seed: int,
    slice_column: str,
    champion_model: str,
    min_accuracy: float,
    min_macro_f1: float,
    thresholds: str,
    deploy_target: str,
    model_name: str,
    smoke_input: str,
    tracking_uri: str,
):
    """train_records: ingest's train split (the data version register records); the others are training sets."""
    trained = train_tabular(
        train_data=train_data,
        eval_data=eval_data,
        task=task,
        target_column=target_column,
        feature_columns=feature_columns,
        algorithm=algorithm,
        hyperparameters=hyperparameters,
        seed=seed,
    )
    registered = register_challenger(trained, train_records, model_name, tracking_uri)

    evaluate(
        model=trained.outputs["model"],
        test_data=test_data,
        task=task,
        label_column=target_column,
        slice_column=slice_column,
    )

    gate_then_deploy(
        trained,
        registered,
        test_data,
        model_name=model_name,
        tracking_uri=tracking_uri,
        champion_model=champion_model,
        deploy_target=deploy_target,
        smoke_input=smoke_input,
        gate_settings=dict(
            label_column=target_column,
            min_accuracy=min_accuracy,
            min_macro_f1=min_macro_f1,
            thresholds=thresholds,
        ),
    )


def tuned_train_release(
    tune_backend: str, search_space: str, hyperparameters: str, **train_release: Any
) -> None:
    """tabular_train_release with hyperparameters as given (tune_backend "none"), or as the best trial of a search
    over search_space, with the given hyperparameters fixed for every trial (a searched one takes the trial's
    value): "optuna" runs the trials inside a task, "katib" as a Katib Experiment in the cluster.

    train_release holds tabular_train_release's other arguments; trials train on its train/eval training sets
    with its task, target, features, algorithm and seed."""
    trial_inputs = {name: train_release[name] for name in ("train_data", "eval_data")}
    trial_settings = {
        name: train_release[name] for name in ("task", "target_column", "feature_columns", "algorithm", "seed")
    } | {"hyperparameters": hyperparameters}
    with dsl.If(tune_backend == "katib", name="tune-with-katib"):
        tuned = tune(search_space=search_space, trainer="tabular", **trial_inputs, **trial_settings)
        tabular_train_release(hyperparameters=tuned.outputs["best_parameters"], **train_release)
    with dsl.Elif(tune_backend == "optuna", name="tune-with-optuna"):
        tuned_locally = tune_local(search_space=search_space, trainer="tabular", **trial_inputs, **trial_settings)
        tabular_train_release(hyperparameters=tuned_locally.outputs["best_parameters"], **train_release)
    with dsl.Else(name="no-tuning"):
        tabular_train_release(hyperparameters=hyperparameters, **train_release)


@dsl.pipeline(
    name="tabular-classification",
    description="Classifies task-execution records (default: priority) with XGBoost, a random forest, an SVM or "
    "a linear model: TFDV validation, queue and user history from Feast joined point-in-time, class-weighted "
    "training, registration in MLflow, evaluation, the champion/challenger gate and a KServe deployment when "
    "blessed; a drift detector is fitted on the training set.",
)
def tabular_classification(
    source: str = "demo:tasks",
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
    tune_backend: str = "none",
    search_space: str = DEFAULT_SEARCH_SPACE,
    slice_column: str = "queue",
    drift_numeric_columns: list = ["requested_cpu", "n_dependencies"],
    drift_categorical_columns: list = ["task_type", "queue", "user_id", "requested_memory_gb"],
    champion_model: str = "",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "task-priority",
    smoke_input: str = '{"task_type": "inference", "requested_cpu": 2, "requested_memory_gb": 4, "queue": "interactive", "user_id": "u04", "n_dependencies": 0, "queue_task_count": 30, "queue_avg_duration_s": 400.0, "queue_failure_rate": 0.02, "user_task_count": 5, "user_avg_duration_s": 300.0, "user_failure_rate": 0.0}',
    tracking_uri: str = "",
):
    """source: task records (CSV, Parquet or JSONL; local or gs://); "demo:tasks" is the seeded demo set, which
    `kfp-mlops run --local` writes. Splits are by time_column (oldest to train).
    feature_columns: the model's inputs, columns of the records or features of the Feast service
    tabular_model_features (queue_* and user_*: the history of the task's queue and user before it was submitted).
    feature_sources: where the Feast views' Parquet sources are written (folder or gs:// prefix; empty: the repo's
    data/sources); feature_state: the local profile's registry and online store folder (empty: the repo's data/).
    algorithm: xgboost, random_forest, svm or linear; hyperparameters: a JSON object (see train_tabular), e.g.
    {"class_weight": "none"} (classes are weighted by inverse frequency by default).
    tune_backend: "none", "optuna" (trials inside a task) or "katib" (an Experiment in the cluster); when tuning,
    train uses the best trial's values of search_space (a Katib search space over the algorithm's hyperparameters,
    see components/tune) on top of hyperparameters, which every trial uses too.
    drift_*_columns: the columns the drift detector watches (numeric ones must have no nulls).
    model_name, tracking_uri, champion_model, thresholds, deploy_target: as in text_classification; smoke_input is
    one V1 instance: a JSON object with every feature."""
    data, features = task_training_sets(
        source, target_column, id_column, time_column, eval_fraction, test_fraction, schema_file, fail_on_anomalies,
        feature_sources, feature_state,
    )  # fmt: skip
    fit_drift_detector(
        reference=features["train"],
        numeric_columns=drift_numeric_columns,
        categorical_columns=drift_categorical_columns,
        label_column=target_column,
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
        task="classification",
        target_column=target_column,
        feature_columns=feature_columns,
        algorithm=algorithm,
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
