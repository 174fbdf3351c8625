"""KFP definition of register (image `train`); the logic is in register.py and registry.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def register(
    model: Input[Model],
    train_data: Input[Dataset],
    metrics: Input[Metrics],
    model_name: str,
    tracking_uri: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
    kfp_run_name: str = "",
    alias: str = "challenger",
) -> NamedTuple("RegisterOutputs", [("version", str), ("model_uri", str)]):
    """Register a trained model in the MLflow model registry as a new version of model_name.

    Logs one MLflow run (experiment model_name) with the model artifact's metadata as parameters, the metrics,
    the training data version (ingest's sha256, source URIs, schema fingerprint), the code version and image
    tags, and the KFP run and task ids and run name (pass dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    dsl.PIPELINE_TASK_ID_PLACEHOLDER and dsl.PIPELINE_JOB_NAME_PLACEHOLDER),
    uploads the model directory with a sha256 manifest, and creates the model version with these as tags.
    alias (default challenger; empty for none) then points at the new version, and the move is recorded.
    tracking_uri: empty uses MLFLOW_TRACKING_URI, else an embedded SQLite store under the project's local state
    dir (for local runs: kfp.local tasks share it); credentials only from the environment. Outputs: version and
    model_uri (models:/<name>/<version>). A missing model directory, or one that does not match its checksum
    manifest, fails before anything is registered.
    """
    from components.register.register import register_trained_model

    return register_trained_model(
        model.path,
        model.metadata,
        train_data.path,
        train_data.uri,
        train_data.metadata,
        metrics.metadata,
        model_name,
        tracking_uri=tracking_uri,
        kfp_run_id=kfp_run_id,
        kfp_task_id=kfp_task_id,
        kfp_run_name=kfp_run_name,
        alias=alias,
    )
