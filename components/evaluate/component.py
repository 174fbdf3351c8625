"""KFP definition of evaluate (image `train`); the logic is in evaluate.py."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def evaluate(
    test_data: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
    html_report: Output[HTML],
    model: Input[Model] = None,
    task: str = "classification",
    text_column: str = "text",
    label_column: str = "label",
    prediction_column: str = "y_pred",
    slice_column: str = "",
    calibration_bins: int = 10,
    roc_positive_class: str = "",
    batch_size: int = 64,
):
    """Evaluate a text classifier or a tabular model on a labelled test set, or regression predictions.

    A tabular model (model: train_tabular's directory; task must be its task; label_column its target; test_data
    Parquet or CSV with its feature columns): a classifier is evaluated as a text classifier is, below; a
    regressor gets rmse, mae, r2, rows, interval_coverage (share of rows inside its p10-p90 interval) and
    interval_width, and a residual plot in html_report.
    Classification (model: a Hugging Face model directory, e.g. from train): metrics holds accuracy, macro and
    weighted F1, one-vs-rest macro ROC-AUC, ECE over calibration_bins, the row count and, with slice_column,
    accuracy/macro F1/rows per slice; classification_metrics the confusion matrix (the model's labels in id
    order, then test labels the model does not know, counted as errors) and the ROC curve (roc_positive_class
    vs rest; when empty, the second label of a two-class model, else the micro-average over all classes).
    Regression (no model): label_column holds the truth and prediction_column the predictions; metrics holds
    rmse, mae, r2 and rows. report is Markdown; html_report a self-contained page with inline SVG plots.
    """
    from components.evaluate.evaluate import EvaluateError, evaluate_classifier, evaluate_regression, evaluate_tabular
    from components.train_tabular.scoring import is_tabular_model

    if task not in ("classification", "regression"):
        raise EvaluateError(f"task must be 'classification' or 'regression', got {task!r}")
    if model is not None and is_tabular_model(model.path):
        result = evaluate_tabular(
            model_dir=model.path,
            test_path=test_data.path,
            report_path=report.path,
            html_report_path=html_report.path,
            task=task,
            label_column=label_column,
            slice_column=slice_column,
            calibration_bins=calibration_bins,
            roc_positive_class=roc_positive_class,
        )
    elif task == "regression":
        if model is not None:
            raise EvaluateError("task 'regression' scores the predictions in prediction_column; pass no model")
        result = evaluate_regression(
            predictions_path=test_data.path,
            report_path=report.path,
            html_report_path=html_report.path,
            true_column=label_column,
            prediction_column=prediction_column,
        )
    elif model is None:
        raise EvaluateError("task 'classification' needs a model")
    else:
        result = evaluate_classifier(
            model_dir=model.path,
            test_path=test_data.path,
            report_path=report.path,
            html_report_path=html_report.path,
            text_column=text_column,
            label_column=label_column,
            batch_size=batch_size,
            slice_column=slice_column,
            calibration_bins=calibration_bins,
            roc_positive_class=roc_positive_class,
        )
    if task == "regression":  # a dict of metrics
        for name, value in result.items():
            metrics.log_metric(name, value)
        return
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    classification_metrics.log_confusion_matrix(result.scores.labels, result.scores.confusion_matrix)
    if result.roc is not None:
        classification_metrics.log_roc_curve(result.roc.fpr, result.roc.tpr, result.roc.thresholds)
