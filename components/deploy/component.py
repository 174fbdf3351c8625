"""KFP definition of deploy (image `serve`); the logic is in local.py."""

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
) -> NamedTuple("DeployOutputs", [("url", str), ("prediction", str)]):
    """Serve a trained text classifier with the KServe model server inside this task and smoke-test it.

    The model is the Hugging Face directory written by train. The server answers the V1 and V2 inference
    protocols under model_name; one V1 request with smoke_text must succeed. The report shows the URL,
    the request, the response and its latency; the server is stopped when the task ends. Outputs: url (the
    server's base URL) and prediction (JSON: label, score and per-label scores for smoke_text).
    """
    from components.deploy.local import deploy_locally

    return deploy_locally(model.path, report.path, model_name, smoke_text)
