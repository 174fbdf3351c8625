"""KFP definition of train_anomaly (image `train`); the logic is in trainer.py and components/anomaly/."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train_anomaly(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    detector: str = "ensemble",
    hyperparameters: str = "",
    timestamp_column: str = "timestamp",
    host_column: str = "host",
    metric_columns: list = [],
    label_column: str = "anomaly",
    threshold_method: str = "eval_f1",
    threshold_quantile: float = 0.999,
):
    """Fit a time-series anomaly detector per host and metric on host metrics and choose its alert threshold.

    Rows: timestamp_column, host_column, one numeric column per metric (metric_columns; empty: every numeric
    column but the label) and, in eval_data, the 0/1 label_column. detector is "ensemble" (robust median/MAD
    plus nearest-neighbour window distances), "robust" (median/MAD), "zscore", "isolation_forest" or
    "autoencoder" (torch); hyperparameters, a JSON object, overrides its parameters (window, memory, hold, ...).
    Each host's train rows fit and warm up its detectors and its eval rows continue them. threshold_method
    "eval_f1": the threshold with the best per-event F1 on eval (falls back to "quantile" if eval has no labelled
    anomaly); "quantile": threshold_quantile of the train and eval scores (at least 0.5). The model directory
    (model.json with "family": "anomaly", state.json with each stream's bounded state, forests as skops or
    autoencoder weights as safetensors; no pickle) is what the gate, serving.server and deploy read. metrics:
    per-event precision, recall, f1 and a NAB-style score on eval at the threshold, the threshold, training seconds.
    """
    from components.train_anomaly.trainer import train_anomaly_model

    result = train_anomaly_model(
        train_path=train_data.path,
        eval_path=eval_data.path,
        model_dir=model.path,
        detector=detector,
        hyperparameters=hyperparameters,
        timestamp_column=timestamp_column,
        host_column=host_column,
        metric_columns=list(metric_columns),
        label_column=label_column,
        threshold_method=threshold_method,
        threshold_quantile=threshold_quantile,
    )
    model.metadata.update(result.model_metadata)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
