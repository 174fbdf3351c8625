"""KFP definition of gate (image `train`); the logic is in gate.py and scorers.py."""

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
    registry_model_name: str = "",
    tracking_uri: str = "",
    challenger_version: str = "",
    text_column: str = "text",
    label_column: str = "label",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    thresholds: str = "",
    compare_metric: str = "",
    min_improvement: float = 0.0,
    max_regression: float = 0.01,
    batch_size: int = 64,
    kfp_run_id: str = "",
    kfp_task_id: str = "",
) -> bool:
    """Champion/challenger gate: bless the challenger only if it clears absolute bars and holds up against the champion.

    Both models are scored on the same labelled Parquet test set; the model directory says how (text classifier:
    config.json; tabular classifier or regressor, anomaly detector: model.json), and both must be of one kind.
    label_column is the label, the regression target or the anomaly label. The champion: champion_model (a
    local path) when given, else the version the registry's champion alias points at when registry_model_name
    is set (tracking_uri: as in register), else none yet. Absolute bars: accuracy >= min_accuracy and macro F1
    >= min_macro_f1 (classifiers), and thresholds, a JSON object of metric -> "<=N" / ">=N", e.g.
    {"rmse": "<=12"}. With a champion: the challenger's compare_metric (empty: macro_f1, rmse or f1 by kind)
    must beat the champion's by at least min_improvement, and no judged metric may fall more than max_regression
    behind (for rmse and mae, lower is better, both relative to the champion's value). With the registry and
    challenger_version (register's version), a challenger not blessed is recorded in the alias history as
    declined, by kfp run kfp_run_id task kfp_task_id. Returns blessed (the single output, so pipelines gate on
    dsl.If(gate.outputs["Output"] == True): kfp.local resolves no named output parameter in conditions), plus
    reason (naming the champion and each failed threshold), the metrics of both models (champion_metrics stays
    empty without a champion) and a Markdown comparison.
    """
    from components.gate.gate import GateThresholds, RegistryLink, parse_thresholds, run_gate
    from components.register.locations import check_task_tracking_uri
    from components.register.register import kfp_actor

    check_task_tracking_uri(tracking_uri)
    registry = None
    if registry_model_name:
        registry = RegistryLink(
            registry_model_name, tracking_uri, challenger_version, kfp_actor(kfp_run_id, kfp_task_id)
        )
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
            bounds=parse_thresholds(thresholds),
        ),
        text_column=text_column,
        label_column=label_column,
        batch_size=batch_size,
        registry=registry,
    )
    for name, value in result.challenger.metrics.items():
        challenger_metrics.log_metric(name, value)
    if result.champion is not None:
        for name, value in result.champion.metrics.items():
            champion_metrics.log_metric(name, value)
    with open(reason, "w") as f:
        f.write(result.decision.reason)
    return result.decision.blessed
