"""KFP definition of validate (image `validate`); the logic is in validation.py."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("validate"), install_kfp_package=False)
def validate(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    categorical_skew_threshold: float = 0.0,
    numeric_skew_threshold: float = 0.0,
    drift_threshold: float = 0.0,
    max_report_features: int = 50,
):
    """Validate Parquet train/eval data with TensorFlow Data Validation: statistics of both splits,
    a schema (loaded from schema_file or inferred from train), the eval split's anomalies against it,
    optional skew (L-infinity for categorical, Jensen-Shannon for numeric features) and drift checks
    of eval against train, an offline HTML report and a Markdown summary. Fails listing the anomalies
    when fail_on_anomalies is set; thresholds of 0 leave those checks off."""
    from components.validate.validation import validate_datasets

    result = validate_datasets(
        train_path=train_data.path,
        eval_path=eval_data.path,
        statistics_dir=statistics.path,
        schema_path=schema.path,
        anomalies_path=anomalies.path,
        report_path=report.path,
        summary_path=summary.path,
        schema_file=schema_file,
        fail_on_anomalies=fail_on_anomalies,
        categorical_skew_threshold=categorical_skew_threshold,
        numeric_skew_threshold=numeric_skew_threshold,
        drift_threshold=drift_threshold,
        max_report_features=max_report_features,
    )
    statistics.metadata.update(
        {"format": "binary DatasetFeatureStatisticsList", "files": ["train.pb", "eval.pb"]}
    )
    schema.metadata.update({"format": "Schema text proto", "source": result.schema_source})
    anomalies.metadata.update(
        {"format": "Anomalies text proto", "anomalous_features": result.anomalous_features}
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
