"""KFP definition of evaluate (image `train`); the logic is in evaluate.py."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
):
    """Evaluate a text classifier (a Hugging Face model directory, e.g. from train) on a labelled Parquet test set.

    metrics holds accuracy, macro F1, weighted F1 and the row count; classification_metrics the confusion
    matrix (the model's labels in id order, then any test labels the model does not know, which count as
    errors); report a Markdown page with the overall metrics, per-class precision/recall/F1/support and the
    confusion matrix.
    """
    from components.evaluate.evaluate import evaluate_classifier

    result = evaluate_classifier(
        model_dir=model.path,
        test_path=test_data.path,
        report_path=report.path,
        text_column=text_column,
        label_column=label_column,
        batch_size=batch_size,
    )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    classification_metrics.log_confusion_matrix(result.scores.labels, result.scores.confusion_matrix)
