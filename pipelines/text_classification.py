"""Text classification (support tickets / intents):
ingest → validate → [tune] → train → register (challenger) → evaluate → champion/challenger gate → deploy
(which moves the registry's champion alias)."""

import json
from pathlib import Path

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.gate.component import gate
from components.ingest.component import ingest
from components.register.component import register
from components.train.component import train
from components.tune.component import tune
from components.tune_local.component import tune_local
from components.validate.component import validate
from kfp_mlops.resources import ResourceProfile, Toleration

# One line: KFP writes each default into a comment at the top of the compiled YAML, and a multi-line
# default would break out of that comment and make the file unparseable.
DEFAULT_SEARCH_SPACE = json.dumps(
    json.loads((Path(__file__).resolve().parents[1] / "components" / "tune" / "example_search_space.json").read_text())
)

# One GPU per training task in a cluster (kfp.local ignores resources); edit the node selector for your GPUs.
GPU_TRAINING = ResourceProfile(
    cpu_request="4",
    memory_request="16Gi",
    memory_limit="32Gi",
    accelerator_type="nvidia.com/gpu",
    accelerator_count=1,
    shm_size="8Gi",
    tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
)

# Tasks that talk to the MLflow tracking server read its credentials (and, if tracking_uri is empty, its URI)
# from this Secret in the run's namespace. Optional: without it (or without a key) the variable stays unset, so
# a tracking server without authentication, or a local run, needs no Secret. See manifests/mlflow/README.md.
MLFLOW_CLIENT_SECRET = "mlflow-client-credentials"
MLFLOW_CLIENT_KEYS = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
)  # fmt: skip


def talks_to_registry(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The MLflow client Secret as optional env; no caching, since the task writes to the registry every run."""
    task.set_caching_options(False)
    secret_key_to_env = {key: key for key in MLFLOW_CLIENT_KEYS}
    return kubernetes.use_secret_as_env(task, MLFLOW_CLIENT_SECRET, secret_key_to_env, optional=True)


KFP_RUN = dict(kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, kfp_task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER)


def register_challenger(trained: dsl.PipelineTask, train_data, model_name: str, tracking_uri: str) -> dsl.PipelineTask:
    """Register the trained model as a new version of model_name, with alias challenger."""
    registered = register(
        model=trained.outputs["model"],
        train_data=train_data,
        metrics=trained.outputs["metrics"],
        model_name=model_name,
        tracking_uri=tracking_uri,
        kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        alias="challenger",
        **KFP_RUN,
    )
    return talks_to_registry(registered)


def gate_then_deploy(
    trained: dsl.PipelineTask,
    registered: dsl.PipelineTask,
    test_data,
    *,
    model_name: str,
    tracking_uri: str,
    champion_model: str,
    deploy_target: str,
    smoke_input: str,
    gate_settings: dict,
    deploy_settings: dict | None = None,
) -> None:
    """The champion/challenger gate against the registry and, inside dsl.If(blessed), deploy (which moves champion)."""
    checked = gate(
        challenger=trained.outputs["model"],
        test_data=test_data,
        champion_model=champion_model,
        registry_model_name=model_name,
        tracking_uri=tracking_uri,
        challenger_version=registered.outputs["version"],
        **gate_settings,
        **KFP_RUN,
    )
    talks_to_registry(checked)
    with dsl.If(checked.outputs["Output"] == True, name="blessed"):  # noqa: E712 (KFP builds the condition from ==)
        released = deploy(
            model=trained.outputs["model"],
            target=deploy_target,
            model_name=model_name,
            smoke_input=smoke_input,
            registry_model_name=model_name,
            model_version=registered.outputs["version"],
            tracking_uri=tracking_uri,
            promotion_reason=checked.outputs["reason"],
            **(deploy_settings or {}),
            **KFP_RUN,
        )
        talks_to_registry(released)


@dsl.pipeline(
    name="text-train-release",
    description="Train with given hyperparameters, register, evaluate, gate against the registry's champion, deploy.",
)
def train_and_release(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    test_data: Input[Dataset],
    hyperparameters: str,
    text_column: str,
    label_column: str,
    base_model: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    max_steps: int,
    seed: int,
    champion_model: str,
    min_accuracy: float,
    min_macro_f1: float,
    thresholds: str,
    deploy_target: str,
    model_name: str,
    smoke_input: str,
    tracking_uri: str,
    deployment_mode: str = "Standard",
    canary_traffic_percent: int = 0,
    logger_url: str = "",
):
    trained = train(
        train_data=train_data,
        eval_data=eval_data,
        text_column=text_column,
        label_column=label_column,
        base_model=base_model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        max_steps=max_steps,
        seed=seed,
        hyperparameters=hyperparameters,
    )
    GPU_TRAINING.apply(trained)

    registered = register_challenger(trained, train_data, model_name, tracking_uri)

    evaluate(
        model=trained.outputs["model"], test_data=test_data, text_column=text_column, label_column=label_column
    )

    gate_then_deploy(
        trained,
        registered,
        test_data,
        model_name=model_name,
        tracking_uri=tracking_uri,
        champion_model=champion_model,
        deploy_target=deploy_target,
        smoke_input=smoke_input,
        gate_settings=dict(
            text_column=text_column,
            label_column=label_column,
            min_accuracy=min_accuracy,
            min_macro_f1=min_macro_f1,
            thresholds=thresholds,
        ),
        deploy_settings=dict(
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            logger_url=logger_url,
        ),
    )


@dsl.pipeline(
    name="text-classification",
    description="Fine-tunes a MiniLM-L6 sequence classifier on labelled short texts, gated by TFDV validation, "
    "optionally tuned (Optuna locally, Katib in a cluster), registered in MLflow, evaluated, compared with the "
    "registry's champion and deployed behind a KServe model server when blessed (the new champion).",
)
def text_classification(
    source: str,
    text_column: str = "text",
    label_column: str = "category",
    id_column: str = "ticket_id",
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    base_model: str = "minilm",
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 48,
    max_steps: int = -1,
    seed: int = 42,
    tune_backend: str = "none",
    search_space: str = DEFAULT_SEARCH_SPACE,
    champion_model: str = "",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "text-classifier",
    smoke_input: str = "my card payment was declined twice",
    tracking_uri: str = "",
):
    """tune_backend: "none", "optuna" (local trials) or "katib" (an Experiment in the cluster).
    model_name: the registered model's name in MLflow and the name it is served under.
    tracking_uri: the MLflow tracking server (in a cluster, e.g. http://mlflow.kfp-mlops.svc.cluster.local:5000);
    empty: MLFLOW_TRACKING_URI from the optional Secret mlflow-client-credentials, else the embedded SQLite
    store under the project's local state dir (local runs). Never put credentials in it: they come from that Secret.
    champion_model: a model directory to compare against instead of the registry's champion (empty: the registry's).
    thresholds: more absolute bars for the gate, a JSON object such as {"weighted_f1": ">=0.8"}.
    deploy_target: "local" (a KServe server inside the task, smoke-tested) or "kserve" (an InferenceService)."""
    data = ingest(
        source=source,
        label_column=label_column,
        id_column=id_column,
        required_columns=[text_column],
        split_by="hash",
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    checked = validate(
        train_data=data.outputs["train_data"],
        eval_data=data.outputs["eval_data"],
        schema_file=schema_file,
        fail_on_anomalies=fail_on_anomalies,
    )
    splits = dict(train_data=data.outputs["train_data"], eval_data=data.outputs["eval_data"])
    fixed = dict(
        text_column=text_column,
        label_column=label_column,
        base_model=base_model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        max_steps=max_steps,
        seed=seed,
    )
    release = dict(
        test_data=data.outputs["test_data"],
        champion_model=champion_model,
        min_accuracy=min_accuracy,
        min_macro_f1=min_macro_f1,
        thresholds=thresholds,
        deploy_target=deploy_target,
        model_name=model_name,
        smoke_input=smoke_input,
        tracking_uri=tracking_uri,
    )

    with dsl.If(tune_backend == "katib", name="tune-with-katib"):
        tuned = tune(search_space=search_space, **splits, **fixed).after(checked)
        train_and_release(hyperparameters=tuned.outputs["best_parameters"], **splits, **fixed, **release)
    with dsl.Elif(tune_backend == "optuna", name="tune-with-optuna"):
        tuned_locally = tune_local(search_space=search_space, **splits, **fixed).after(checked)
        train_and_release(hyperparameters=tuned_locally.outputs["best_parameters"], **splits, **fixed, **release)
    with dsl.Else(name="no-tuning"):
        train_and_release(hyperparameters="", **splits, **fixed, **release).after(checked)
