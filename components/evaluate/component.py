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
    """Evaluate a text classifier on a labelled Parquet test set, or regression predictions.

    Classification (model: a Hugging Face model directory, e.g. from train): metrics holds accuracy, macro and
    weighted F1, one-vs-rest macro ROC-AUC, ECE over calibration_bins, the row count and, with slice_column,
    accuracy/macro F1/rows per slice; classification_metrics the confusion matrix (the model's labels in id
    order, then test labels the model does not know, counted as errors) and the ROC curve (roc_positive_class
    vs rest; when empty, the second label of a two-class model, else the micro-average over all classes).
    Regression (no model): label_column holds the truth and prediction_column the predictions; metrics holds
    rmse, mae, r2 and rows. report is Markdown; html_report a self-contained page with inline SVG plots.
    """
    from components.evaluate.evaluate import EvaluateError, evaluate_classifier, evaluate_regression

    if task == "regression":
        if model is not None:
            raise EvaluateError("task 'regression' scores the predictions in prediction_column; pass no model")
        result = evaluate_regression(
            predictions_path=test_data.path,
            report_path=report.path,
            html_report_path=html_report.path,
            true_column=label_column,
            prediction_column=prediction_column,
        )
        for name, value in result.items():
            metrics.log_metric(name, value)
        return
    if task != "classification":
        raise EvaluateError(f"task must be 'classification' or 'regression', got {task!r}")
    if model is None:
        raise EvaluateError("task 'classification' needs a model")
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
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    classification_metrics.log_confusion_matrix(result.scores.labels, result.scores.confusion_matrix)
    if result.roc is not None:
        classification_metrics.log_roc_curve(result.roc.fpr, result.roc.tpr, result.roc.thresholds)
