"""KFP definition of gate (image `train`); the logic is in gate.py."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def gate(
    challenger: Input[Model],
    test_data: Input[Dataset],
    challenger_metrics: Output[Metrics],
    champion_metrics: Output[Metrics],
    comparison: Output[Markdown],
    reason: dsl.OutputPath(str),
    champion_model: str = "",
    text_column: str = "text",
    label_column: str = "label",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    compare_metric: str = "macro_f1",
    min_improvement: float = 0.0,
    max_regression: float = 0.01,
    batch_size: int = 64,
) -> bool:
    """Champion/challenger gate: bless the challenger only if it clears absolute bars and holds up against the champion.

    Both models (Hugging Face model directories; champion_model is a local path, empty for no champion yet) are
    evaluated on the same labelled Parquet test set. Always: accuracy >= min_accuracy and macro F1 >=
    min_macro_f1. With a champion: the challenger's compare_metric (accuracy, macro_f1, weighted_f1 or roc_auc)
    must beat the champion's by at least min_improvement, and none of those four metrics may fall more than
    max_regression below the champion's. Returns blessed (the single output, so pipelines gate on
    dsl.If(gate.outputs["Output"] == True): kfp.local resolves no named output parameter in conditions), plus reason (naming each
    failed threshold), the metrics of both models (champion_metrics stays empty without a champion) and a
    Markdown comparison.
    """
    from components.gate.gate import GateThresholds, run_gate

    result = run_gate(
        challenger_dir=challenger.path,
        test_path=test_data.path,
        comparison_path=comparison.path,
        champion_model=champion_model,
        thresholds=GateThresholds(
            min_accuracy=min_accuracy,
            min_macro_f1=min_macro_f1,
            compare_metric=compare_metric,
            min_improvement=min_improvement,
            max_regression=max_regression,
        ),
        text_column=text_column,
        label_column=label_column,
        batch_size=batch_size,
    )
    for name, value in result.challenger.metrics.items():
        challenger_metrics.log_metric(name, value)
    if result.champion is not None:
        for name, value in result.champion.metrics.items():
            champion_metrics.log_metric(name, value)
    with open(reason, "w") as f:
        f.write(result.decision.reason)
    return result.decision.blessed
