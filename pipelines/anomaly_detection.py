"""Time-series anomaly detection on host metrics:
ingest (split by time) → validate → train_anomaly (a detector per host and metric, threshold on eval) → register
(challenger) → champion/challenger gate on the test split → deploy (which moves the registry's champion alias),
plus a drift detector fitted on the training metrics for continuous training: the series test, which judges a
window of metrics by its seasonal residuals against training windows of the same length (KS on the raw values would
flag undrifted days: a day of autocorrelated, seasonal metrics is no i.i.d. sample of a week).

No Feast step: the detectors read each host's raw metric stream and keep their own bounded history (the last
values and recent surprises), which the model carries from training to serving; the Feast view
``host_metric_windows`` (rolling means and deviations) is for online enrichment, not an input of these models.
The train → release sub-pipeline is shared with pipelines/anomaly_detection_ct.py.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input

from components.fit_drift_detector.component import fit_drift_detector
from components.ingest.component import ingest
from components.train_anomaly.component import train_anomaly
from components.validate.component import validate
from pipelines.text_classification import gate_then_deploy, register_challenger

DRIFT_REFERENCE_ROWS = 50000
"""The drift detector keeps up to this many training rows (a seeded sample beyond): the series test cuts its like
windows from them, and windows thinned by sampling would be noisier than the tested window (a week of 20 hosts at
5-minute steps is 40,320 rows)."""


@dsl.pipeline(
    name="anomaly-train-release",
    description="Fit an anomaly detector per host and metric, register, gate against the registry's champion, deploy.",
)
def anomaly_train_release(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    test_data: Input[Dataset],
    detector: str,
    hyperparameters: str,
    timestamp_column: str,
    host_column: str,
    metric_columns: list,
    label_column: str,
    threshold_method: str,
    threshold_quantile: float,
    champion_model: str,
    thresholds: str,
    deploy_target: str,
    model_name: str,
    smoke_input: str,
    tracking_uri: str,
    deployment_mode: str = "Standard",
    canary_traffic_percent: int = 0,
    logger_url: str = "",
):
    trained = train_anomaly(
        train_data=train_data,
        eval_data=eval_data,
        detector=detector,
        hyperparameters=hyperparameters,
        timestamp_column=timestamp_column,
        host_column=host_column,
        metric_columns=metric_columns,
        label_column=label_column,
        threshold_method=threshold_method,
        threshold_quantile=threshold_quantile,
    )
    registered = register_challenger(trained, train_data, model_name, tracking_uri)

    gate_then_deploy(
        trained,
        registered,
        test_data,
        model_name=model_name,
        tracking_uri=tracking_uri,
        champion_model=champion_model,
        deploy_target=deploy_target,
        smoke_input=smoke_input,
        gate_settings=dict(label_column=label_column, thresholds=thresholds),
        deploy_settings=dict(
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            logger_url=logger_url,
        ),
    )


def ingest_host_metrics(
    source: str, timestamp_column: str, label_column: str, eval_fraction: float, test_fraction: float
) -> dsl.PipelineTask:
    """Host metrics split by time (every host's oldest rows train, the newest test), so detectors learn the past."""
    return ingest(
        source=source,
        label_column=label_column,
        split_by="time",
        timestamp_column=timestamp_column,
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
    )


@dsl.pipeline(
    name="anomaly-detection",
    description="Detects anomalies in host metrics (CPU, latency, error rate) as they stream: TFDV validation, a "
    "detector per host and metric (robust median/MAD with nearest-neighbour window distances by default; z-score, "
    "Isolation Forest or a torch autoencoder), the alert threshold chosen on labelled eval data, registration in "
    "MLflow, the champion/challenger gate on per-event F1 and a streaming KServe deployment when blessed; a drift "
    "detector (seasonal series test per metric) is fitted on the training metrics.",
)
def anomaly_detection(
    source: str = "demo:metrics",
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
):
    """source: host metrics (CSV, Parquet or JSONL; local or gs://) with timestamp_column, host_column, the
    metric_columns and a 0/1 label_column (1: the row is inside an anomaly; needed in the eval and test splits);
    "demo:metrics" is the seeded demo set (3 hosts, 5-minute steps, injected spikes, level shifts and drifts),
    which `kfp-mlops run --local` writes. Splits are by time.
    detector: ensemble, robust, zscore, isolation_forest or autoencoder; hyperparameters: a JSON object of its
    parameters (see train_anomaly); the default's memory of 288 rows (one day of 5-minute rows) is how long a past
    surprise sets the bar for the next alert (the detector default, 1500, suits data with rarer anomalies). threshold_method: eval_f1 (best per-event
    F1 on the eval split) or quantile (threshold_quantile of the training scores).
    thresholds: absolute bars for the gate on the test split's per-event metrics, e.g. {"f1": ">=0.5"}.
    smoke_input: one V1 instance, a JSON object with the host, timestamp and metric fields; its timestamp must be
    later than the host's last training row (learned detectors also need a host they were trained on).
    model_name, tracking_uri, champion_model, deploy_target: as in text_classification. seed seeds the drift
    detector's sampling."""
    data = ingest_host_metrics(source, timestamp_column, label_column, eval_fraction, test_fraction)
    checked = validate(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        schema_file=schema_file,
        fail_on_anomalies=fail_on_anomalies,
    )
    fit_drift_detector(
        reference=data.outputs["train_data"],
        numeric_columns=metric_columns,
        time_column=timestamp_column,
        group_column=host_column,
        max_reference_rows=DRIFT_REFERENCE_ROWS,
        seed=seed,
    ).after(checked)
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
    ).after(checked)
