"""KFP definition of tune_local (image `train`); the logic is in optuna_search.py."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output, OutputPath

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def tune_local(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    metrics: Output[Metrics],
    trials: Output[HTML],
    best_parameters: OutputPath(str),
    search_space: str,
    trainer: str = "text",
    text_column: str = "text",
    label_column: str = "label",
    base_model: str = "minilm",
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 64,
    max_steps: int = -1,
    warmup_ratio: float = 0.1,
    task: str = "classification",
    target_column: str = "priority",
    feature_columns: list = [],
    algorithm: str = "xgboost",
    hyperparameters: str = "",
    seed: int = 42,
    timeout_seconds: int = 7200,
    threads_per_trial: int = 0,
):
    """Tune a trainer's hyperparameters with Optuna inside this task: each trial is a real training run.

    trainer "text" tunes train's text trainer (fixed: text_column ... warmup_ratio, seed); "tabular" tunes
    train_tabular's hyperparameters (fixed: task, target_column, feature_columns, algorithm, seed, and
    hyperparameters: a JSON object of train_tabular hyperparameters every trial uses unless it searches them).

    search_space is a JSON object in Katib's vocabulary (parameters, objective, algorithm, maxTrialCount,
    parallelTrialCount, maxFailedTrialCount, earlyStopping), the same as for the Katib-backed tune
    component; parallelTrialCount trials run at once as processes, and medianstop becomes median pruning
    per epoch. The other training parameters are fixed for every trial. best_parameters is a JSON object of
    the best trial's values, keyed by parameter name (tabular: with the fixed hyperparameters); metrics holds
    its metrics and the trial counts; trials is an HTML table of every trial.
    """
    arguments = dict(locals())  # the fixed trial settings are picked from these by name
    from components.tune.search_space import trial_settings
    from components.tune_local.optuna_search import run_tune_local

    settings = trial_settings(trainer, arguments, hyperparameters)
    logged = run_tune_local(
        search_space=search_space,
        train_path=train_data.path,
        eval_path=eval_data.path,
        settings=settings,
        trials_html_path=trials.path,
        best_parameters_path=best_parameters,
        seed=seed,
        timeout_seconds=timeout_seconds,
        trainer=trainer,
        threads_per_trial=threads_per_trial,
    )
    for name, value in logged.items():
        metrics.log_metric(name, value)
