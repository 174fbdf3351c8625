"""KFP definition of train_tabular (image `train`); the logic is in tabular_trainer.py."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train_tabular(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    task: str = "classification",
    target_column: str = "priority",
    feature_columns: list = [],
    algorithm: str = "xgboost",
    hyperparameters: str = "",
    seed: int = 42,
):
    """Train a tabular classifier or regressor on Parquet or CSV train/eval splits.

    task is "classification" or "regression"; algorithm is "xgboost", "random_forest", "svm" or "linear"
    (logistic / ridge). feature_columns empty: every column but the target, except mostly-distinct text
    columns (identifiers). Preprocessing (median imputation and scaling of numeric columns, one-hot
    encoding of categorical ones) is saved with the model, without pickle: a directory with model.json
    (manifest with features, classes, versions and sha256s), preprocessor.skops and the estimator
    (XGBoost UBJSON or skops); regression models add p10/p90 quantile models. Classes are weighted by
    inverse frequency unless hyperparameters sets class_weight "none". metrics holds accuracy, macro F1 and
    ROC-AUC, or RMSE, MAE, R2 and p10-p90 interval coverage, each beside a trivial baseline's.
    hyperparameters, a JSON object such as tune's best_parameters, overrides the algorithm's defaults.
    """
    from components.train_tabular.tabular_trainer import train_tabular_model

    result = train_tabular_model(
        train_path=train_data.path,
        eval_path=eval_data.path,
        model_dir=model.path,
        task=task,
        target_column=target_column,
        feature_columns=list(feature_columns),
        algorithm=algorithm,
        hyperparameters=hyperparameters,
        seed=seed,
    )
    model.metadata.update(result.model_metadata)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
