"""KFP definition of deploy (image `serve`); the logic is in local.py (target local), kserve_client.py (target
kserve, built by inference_service.py) and promotion.py (the registry's champion alias)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def deploy(
    model: Input[Model],
    report: Output[Markdown],
    model_name: str = "text-classifier",
    smoke_input: str = "my card payment was declined twice",
    target: str = "local",
    namespace: str = "",
    storage_uri: str = "",
    deployment_mode: str = "Standard",
    canary_traffic_percent: int = 0,
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpu: str = "1",
    memory: str = "2Gi",
    gpu: int = 0,
    logger_url: str = "",
    service_account_name: str = "",
    ready_timeout_s: float = 600.0,
    registry_model_name: str = "",
    model_version: str = "",
    tracking_uri: str = "",
    promotion_reason: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
) -> NamedTuple("DeployOutputs", [("url", str), ("prediction", str), ("revision", str)]):
    """Serve a trained model with the KServe model server and smoke-test it with one V1 request.

    smoke_input is the request's one instance: a text for text classifiers, or a JSON object of feature values
    (one V1 instance) for tabular models and anomaly detectors. target "local": the server runs inside this
    task and stops when it ends. target "kserve": creates or merge-patches the InferenceService model_name in
    namespace (default: the task's own), with the model from storage_uri (default: the model artifact's URI),
    waits until it is Ready, smoke-tests it, and with canary_traffic_percent 1-99 (Knative mode only) sends that
    share of traffic to the new revision, smoke-tests it alone and promotes it to 100%. A failed update is rolled
    back to the previous spec; a failed first deployment is deleted. deployment_mode is Standard (RawDeployment)
    or Knative (Serverless); logger_url turns on KServe's payload logger (mode all).
    With registry_model_name and model_version (register's version; tracking_uri as in register): the version
    is looked up before anything is deployed; on success the registry's champion alias moves to it, recorded
    with promotion_reason (the gate's reason) and the actor kfp run kfp_run_id task kfp_task_id; on failure
    champion stays and the version is recorded as declined with the cause. Outputs: url, prediction (JSON of
    the smoke input's V1 prediction) and revision (KServe's latest ready revision; empty for local).
    """
    from components.deploy.promotion import deploy_model

    return deploy_model(
        target,
        model.path,
        model.uri,
        report.path,
        model_name,
        smoke_input,
        kserve_settings=dict(
            namespace=namespace,
            storage_uri=storage_uri,
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            logger_url=logger_url,
            service_account_name=service_account_name,
            ready_timeout_s=ready_timeout_s,
        ),
        registry_model_name=registry_model_name,
        model_version=model_version,
        tracking_uri=tracking_uri,
        promotion_reason=promotion_reason,
        kfp_run_id=kfp_run_id,
        kfp_task_id=kfp_task_id,
    )
