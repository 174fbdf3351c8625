"""KFP definition of deploy (image `serve`); the logic is in local.py (target local) and kserve_client.py
(target kserve, built by inference_service.py)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def deploy(
    model: Input[Model],
    report: Output[Markdown],
    model_name: str = "text-classifier",
    smoke_text: str = "my card payment was declined twice",
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
) -> NamedTuple("DeployOutputs", [("url", str), ("prediction", str), ("revision", str)]):
    """Serve a trained text classifier with the KServe model server and smoke-test it with one V1 request.

    target "local": the server runs inside this task and stops when it ends. target "kserve": creates or
    merge-patches the InferenceService model_name in namespace (default: the task's own), with the model from
    storage_uri (default: the model artifact's URI), waits until it is Ready, smoke-tests it, and with
    canary_traffic_percent 1-99 (Knative mode only) sends that share of traffic to the new revision, smoke-tests
    it alone and promotes it to 100%. A failed update is rolled back to the previous spec; a failed first
    deployment is deleted. deployment_mode is Standard (RawDeployment) or Knative (Serverless); logger_url
    turns on KServe's payload logger (mode all). Outputs: url, prediction (JSON: label, score and per-label
    scores for smoke_text) and revision (KServe's latest ready revision; empty for local).
    """
    if target == "local":
        from components.deploy.local import deploy_locally

        return deploy_locally(model.path, report.path, model_name, smoke_text)
    if target != "kserve":
        raise ValueError(f"target {target!r} is not 'local' or 'kserve'")
    from components.deploy.kserve_client import deploy_with_kserve

    return deploy_with_kserve(
        report.path,
        model.uri,
        model_name,
        smoke_text,
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
    )
