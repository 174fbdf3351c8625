"""KFP definition of tune (image `tune`); the logic is in katib_tune.py."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output, OutputPath

from kfp_mlops.images import image


@dsl.component(base_image=image("tune"), install_kfp_package=False)
def tune(
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
    namespace: str = "",
    experiment_name: str = "",
    trial_image: str = image("train"),
    trial_cpu: str = "2",
    trial_memory: str = "8Gi",
    trial_gpus: int = 0,
    trial_service_account: str = "",
    poll_seconds: int = 30,
):
    """Tune a trainer's hyperparameters with a Katib Experiment; each trial is a Job of the train image.

    trainer "text" tunes train's text trainer (fixed: text_column ... warmup_ratio, seed); "tabular" tunes
    train_tabular's hyperparameters (fixed: task, target_column, feature_columns, algorithm, seed, and
    hyperparameters: a JSON object of train_tabular hyperparameters every trial uses unless it searches them).

    search_space is a JSON object in Katib's vocabulary (parameters, objective, algorithm, maxTrialCount,
    parallelTrialCount, maxFailedTrialCount, earlyStopping); parameter names are the trainer's. The
    other training parameters are fixed for every trial. Trials read train_data and eval_data at their URIs
    (gs:// or s3://). best_parameters is a JSON object of the best trial's values, keyed by parameter name
    (tabular: with the fixed hyperparameters); metrics holds its metrics and the trial counts; trials is an
    HTML table of every trial.
    """
    arguments = dict(locals())  # the fixed trial settings are picked from these by name
    from components.tune.katib_tune import run_tune
    from components.tune.search_space import trial_settings

    settings = trial_settings(trainer, arguments, hyperparameters)
    logged = run_tune(
        search_space=search_space,
        train_uri=train_data.uri,
        eval_uri=eval_data.uri,
        settings=settings,
        trials_html_path=trials.path,
        best_parameters_path=best_parameters,
        seed=seed,
        timeout_seconds=timeout_seconds,
        trainer=trainer,
        namespace=namespace,
        name=experiment_name,
        trial_image=trial_image,
        trial_cpu=trial_cpu,
        trial_memory=trial_memory,
        trial_gpus=trial_gpus,
        trial_service_account=trial_service_account,
        poll_seconds=poll_seconds,
    )
    for name, value in logged.items():
        metrics.log_metric(name, value)
