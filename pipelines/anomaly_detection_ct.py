"""Continuous training for host-metric anomaly detection: drift check of the latest window of metrics against the
served model's training split (by default the registry champion's) → if drift: retrain on fresh metrics (ingest →
validate → anomaly_train_release: train_anomaly → register → gate against the champion → deploy).

Meant for a recurring run (``kfp-mlops schedule anomaly_detection_ct --cron ...``); ``kfp-mlops run
anomaly_detection_ct --local`` runs one cycle. The pattern is pipelines/text_classification_ct.py's.

The served detector keeps each host's stream in the server's memory, so a deployment should send all of a
host's points to one replica: the defaults roll out all at once (no canary), one replica.
"""

from kfp import dsl

from components.fit_drift_detector.component import fit_drift_detector
from components.validate.component import validate
from pipelines.anomaly_detection import DRIFT_REFERENCE_ROWS, anomaly_train_release, ingest_host_metrics
from pipelines.text_classification_ct import drift_then_compare, served_training_data


@dsl.pipeline(
    name="anomaly-detection-ct",
    description="Tests the latest window of host metrics (the payload log, or a table) for drift against the served "
    "detector's training split (the series test per metric: seasonal residuals against training windows of the same "
    "length, with a TFDV comparison in the same report) and, "
    "on drift, retrains on fresh metrics: ingest, TFDV validation, a detector per host and metric, registration, "
    "the champion/challenger gate and a deployment.",
)
def anomaly_detection_ct(
    payloads: str,
    reference_data: str = "",
    source: str = "demo:metrics",
    payload_format: str = "kserve",
    payload_time_column: str = "",
    window_end: str = "",
    window_hours: float = 24.0,
    inference_service: str = "",
    max_samples: int = 1000,
    min_samples: int = 100,
    max_reference_rows: int = DRIFT_REFERENCE_ROWS,
    p_val: float = 0.05,
    timestamp_column: str = "timestamp",
    host_column: str = "host",
    metric_columns: list = ["cpu", "latency_ms", "error_rate"],
    label_column: str = "anomaly",
    eval_fraction: float = 0.15,
    test_fraction: float = 0.15,
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    detector: str = "ensemble",
    hyperparameters: str = '{"memory": 288}',
    threshold_method: str = "eval_f1",
    threshold_quantile: float = 0.999,
    seed: int = 42,
    champion_model: str = "",
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "host-anomaly",
    smoke_input: str = '{"host": "host-0", "timestamp": "2030-01-01T00:00:00Z", "cpu": 97.0, "latency_ms": 900.0, "error_rate": 0.2}',
    tracking_uri: str = "",
    deployment_mode: str = "Standard",
    canary_traffic_percent: int = 0,
    logger_url: str = "",
):
    """payloads: the serving payload log (payload_format "kserve": serving/payload_logger.py's Parquet root, local
    or gs://, whose V1 instances hold the metric fields) or a Parquet table of metric rows (payload_format "table",
    timed by payload_time_column). The window is the window_hours before window_end (ISO 8601 with a zone; empty:
    now), optionally of one inference_service; each metric column is tested as a time series (series test: the
    median and spread of its residuals from each host's median per hour of day, against training windows of the
    window's length; Bonferroni over the metrics and both statistics); the instances or rows need the
    timestamp_column and host_column, and the reference must span at least 3 days and 3 windows.
    reference_data: the served detector's training split (Parquet, a local path or gs:// URI; ingest's train_data
    of the run that trained it); empty (the default): the training split the registry recorded for model_name's
    champion (tracking_uri), so a schedule follows each promotion.
    source: the fresh host metrics to retrain on; the parameters after it are anomaly_detection's. Retraining
    follows the alibi-detect verdict; TFDV's comparison of the metric columns is reported beside it.
    deployment_mode, canary_traffic_percent, logger_url: as in text_classification_ct; a canary splits each
    host's points between two servers, each with its own stream state, so it is off by default."""
    reference = served_training_data(reference_data, model_name, tracking_uri)
    detector_fit = fit_drift_detector(
        reference=reference.output,
        numeric_columns=metric_columns,
        time_column=timestamp_column,
        group_column=host_column,
        p_val=p_val,
        max_reference_rows=max_reference_rows,
        seed=seed,
    )
    checked = drift_then_compare(
        reference,
        detector_fit,
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
        comparison=dict(columns=metric_columns),
    )

    with dsl.If(checked.outputs["Output"] == True, name="drifted"):  # noqa: E712 (KFP builds the condition from ==)
        data = ingest_host_metrics(source, timestamp_column, label_column, eval_fraction, test_fraction)
        validated = validate(
            train_data=data.outputs["train_data"],
            eval_data=data.outputs["eval_data"],
            schema_file=schema_file,
            fail_on_anomalies=fail_on_anomalies,
        )
        anomaly_train_release(
            train_data=data.outputs["train_data"],
            eval_data=data.outputs["eval_data"],
            test_data=data.outputs["test_data"],
            detector=detector,
            hyperparameters=hyperparameters,
            timestamp_column=timestamp_column,
            host_column=host_column,
            metric_columns=metric_columns,
            label_column=label_column,
            threshold_method=threshold_method,
            threshold_quantile=threshold_quantile,
            champion_model=champion_model,
            thresholds=thresholds,
            deploy_target=deploy_target,
            model_name=model_name,
            smoke_input=smoke_input,
            tracking_uri=tracking_uri,
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            logger_url=logger_url,
        ).after(validated)
