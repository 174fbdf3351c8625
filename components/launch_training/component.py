"""KFP definition of launch_training (image `tune`); the logic is in launcher.py and manifests.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("tune"), install_kfp_package=False)
def launch_training(
    train_data_uri: str,
    eval_data_uri: str,
    model_output_uri: str,
    summary: Output[Markdown],
    kind: str = "trainjob",
    num_nodes: int = 2,
    gpus_per_node: int = 1,
    namespace: str = "",
    training_params: dict = {},
    timeout_s: int = 86400,
    runtime_name: str = "torch-distributed",
    train_image: str = image("train"),
    job_name_prefix: str = "train",
    service_account: str = "",
    cpu_per_node: str = "",
    memory_per_node: str = "",
    shm_size: str = "8Gi",
    env: dict = {},
    fail_on_job_failure: bool = True,
    delete_on_success: bool = False,
) -> NamedTuple("LaunchOutputs", [("job_name", str), ("state", str)]):
    """Train the text classifier on num_nodes x gpus_per_node GPUs as a Kubeflow Trainer v2 TrainJob
    (kind="trainjob", on the ClusterTrainingRuntime runtime_name) or a Training Operator PyTorchJob
    (kind="pytorchjob"), running `torchrun -m components.train.text_trainer` in the train image.

    Data and model are on shared storage: train/eval Parquet as gs://BUCKET/PATH or pvc://CLAIM/PATH, the model
    directory as pvc://CLAIM/PATH (claims are mounted at /mnt/pvc/CLAIM). training_params are further trainer
    config fields (epochs, batch_size, learning_rate, base_model, ...). The task waits up to timeout_s; on a
    timeout or a cancelled run the job is deleted. On failure the first failing pod's log is printed. Outputs:
    job_name, state (Succeeded, or Failed when fail_on_job_failure is False) and a Markdown summary. The task's
    service account needs the Role in manifests/training/.
    """
    from components.launch_training.launcher import current_namespace, launch_training, unique_job_name
    from components.launch_training.manifests import TrainingJobSpec

    spec = TrainingJobSpec(
        name=unique_job_name(job_name_prefix),
        namespace=namespace or current_namespace(),
        image=train_image,
        train_data_uri=train_data_uri,
        eval_data_uri=eval_data_uri,
        model_output_uri=model_output_uri,
        training_params=training_params,
        num_nodes=num_nodes,
        gpus_per_node=gpus_per_node,
        runtime_name=runtime_name,
        service_account=service_account,
        cpu_per_node=cpu_per_node,
        memory_per_node=memory_per_node,
        shm_size=shm_size,
        env=env,
        active_deadline_seconds=timeout_s,
    )
    return launch_training(
        kind, spec, summary.path, timeout_s, fail_on_job_failure=fail_on_job_failure,
        delete_on_success=delete_on_success,
    )
