"""KFP definition of tfdv_drift (image `validate`); the logic is in comparison.py."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("validate"), install_kfp_package=False)
def tfdv_drift(
    reference_data: Input[Dataset],
    window_data: Input[Dataset],
    result: Output[Artifact],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    columns: list = [],
    label_column: str = "",
    prediction_column: str = "prediction",
    categorical_threshold: float = 0.1,
    numeric_threshold: float = 0.1,
) -> bool:
    """Compare a traffic window with the training data by TFDV statistics: L-infinity distance for categorical
    features, Jensen-Shannon divergence for numeric ones; returns drift.

    window_data is the drift component's window_data; reference_data the training split (Parquet). columns: the
    feature columns to compare (empty: every column both share, request_time excepted); label_column: the
    reference's labels, compared with the window's prediction_column ("" compares no labels). A feature drifts
    when its distance exceeds its threshold. Outputs: result (JSON that the drift_report component merges into
    one report with the drift component's), summary (Markdown) and metrics. Returns drift, the single return
    value.
    """
    from components.tfdv_drift.comparison import compare_window, write_comparison

    comparison = compare_window(
        reference_data.path,
        window_data.path,
        columns=columns,
        label_column=label_column,
        prediction_column=prediction_column,
        categorical_threshold=categorical_threshold,
        numeric_threshold=numeric_threshold,
    )
    write_comparison(comparison, result.path, summary.path)
    result.metadata.update({"format": "tfdv-window-drift JSON", "drifted_features": comparison.drifted_features})
    for name, value in comparison.metrics().items():
        metrics.log_metric(name, value)
    return comparison.drift
