"""Pure builders for the KServe InferenceService (``serving.kserve.io/v1beta1``) that serves a text classifier.

The predictor is a custom container: the ``serve`` image running ``python -m serving.server --model_dir
/mnt/models --model_name NAME``. KServe's storage initializer downloads the ``STORAGE_URI`` of that container
to ``/mnt/models`` before the server starts. A ServingRuntime is deliberately not used: the server image and
its flags then live in the InferenceService itself, so a new server image rolls out (and canaries, and rolls
back) together with the model, per service, instead of switching every service of a shared runtime at once;
and the image is the one the pipeline was compiled against (``KFP_MLOPS_REGISTRY``), with no cluster object
to keep in step.

Deployment modes are KServe 0.21's ``Knative`` (legacy name ``Serverless``) and ``Standard`` (legacy name
``RawDeployment``); the legacy names are accepted here and written as the current ones, because KServe's
webhook compares the annotation with the normalised mode in the status and rejects updates that differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.images import image

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"

KNATIVE = "Knative"
STANDARD = "Standard"
DEPLOYMENT_MODES = {"Knative": KNATIVE, "Serverless": KNATIVE, "Standard": STANDARD, "RawDeployment": STANDARD}
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Knative mode: tags the latest revision `latest` (and the rolled-out one `prev`) with their own URLs,
# so a canary can be smoke-tested on its own.
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
# Which registered model version the service serves (set when deploy is given one), so the cluster itself
# answers "what is serving?"; `kfp-mlops lineage MODEL --version VERSION` goes on to the training run.
REGISTERED_MODEL_ANNOTATION = "kfp-mlops.io/registered-model"
MODEL_VERSION_ANNOTATION = "kfp-mlops.io/model-version"

MODEL_MOUNT_PATH = "/mnt/models"  # where KServe's storage initializer puts the STORAGE_URI's content
STORAGE_URI_ENV = "STORAGE_URI"
CONTAINER_NAME = "kserve-container"
HTTP_PORT = 8080
GPU_RESOURCE = "nvidia.com/gpu"
# URI schemes KServe's storage initializer downloads from.
STORAGE_SCHEMES = ("gs", "s3", "pvc", "hf", "oci", "http", "https", "hdfs", "webhdfs")

# The InferenceService name becomes the DNS label `NAME-predictor` (Deployment, Service, Knative route).
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_CHARS = 63 - len("-predictor")
# A Kubernetes resource quantity, as the CRD's pattern has it.
_QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class InferenceServiceSpecError(ValueError):
    """A setting KServe would reject, or silently ignore; the message names the setting."""


@dataclass(frozen=True)
class Resources:
    """Requests and limits of the model server container (equal, for predictable latency)."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        amounts = {"cpu": self.cpu, "memory": self.memory}
        if self.gpu:
            amounts[GPU_RESOURCE] = str(self.gpu)
        return {"requests": dict(amounts), "limits": dict(amounts)}


@dataclass(frozen=True)
class InferenceServiceConfig:
    """Everything the InferenceService is built from; ``name`` is also the model name the server answers to."""

    name: str
    namespace: str
    storage_uri: str
    image: str = field(default_factory=lambda: image("serve"))
    deployment_mode: str = STANDARD
    min_replicas: int = 1
    max_replicas: int = 1
    resources: Resources = Resources()
    canary_traffic_percent: int = 0  # 1..99: the new revision's share of traffic (Knative mode); 0: all of it
    logger_url: str = ""  # where KServe's payload logger posts requests and responses; empty: no logger
    service_account_name: str = ""  # the predictor's service account (credentials for storage_uri)
    registered_model: str = ""  # the registry's name and version of the model served; empty: unregistered
    model_version: str = ""

    @property
    def mode(self) -> str:
        """The deployment mode as KServe 0.21 names it (``Knative`` or ``Standard``)."""
        return normalize_deployment_mode(self.deployment_mode)

    @property
    def is_canary(self) -> bool:
        return 0 < self.canary_traffic_percent < 100


def normalize_deployment_mode(mode: str) -> str:
    try:
        return DEPLOYMENT_MODES[mode]
    except KeyError:
        raise InferenceServiceSpecError(
            f"deployment_mode {mode!r} is not a KServe deployment mode; use one of {', '.join(DEPLOYMENT_MODES)}"
        ) from None


def validate(config: InferenceServiceConfig) -> None:
    """Raise :class:`InferenceServiceSpecError` for settings KServe 0.21 rejects or does not honour."""
    if not _NAME.match(config.name) or len(config.name) > MAX_NAME_CHARS:
        raise InferenceServiceSpecError(
            f"name {config.name!r} must be a DNS label of lower-case letters, digits and '-', starting with a "
            f"letter, at most {MAX_NAME_CHARS} characters (KServe names the predictor '<name>-predictor')"
        )
    if not config.namespace:
        raise InferenceServiceSpecError("namespace is empty: name the namespace to deploy into")
    _validate_storage_uri(config.storage_uri)
    mode = config.mode
    if not 0 <= config.canary_traffic_percent <= 100:
        raise InferenceServiceSpecError(
            f"canary_traffic_percent {config.canary_traffic_percent} must be between 0 and 100"
        )
    if config.is_canary and mode != KNATIVE:
        raise InferenceServiceSpecError(
            f"canary_traffic_percent {config.canary_traffic_percent} needs deployment_mode Knative: KServe splits "
            f"traffic between revisions only in Knative (Serverless) mode; in {mode} (RawDeployment) mode the field "
            "is ignored and the Deployment replaces every pod. Use 0 for a full rollout in Standard mode."
        )
    if config.min_replicas < 0 or (config.min_replicas == 0 and mode != KNATIVE):
        raise InferenceServiceSpecError(
            f"min_replicas {config.min_replicas} is not allowed in {mode} mode: "
            + ("scale to zero needs Knative mode" if config.min_replicas == 0 else "it cannot be negative")
        )
    if config.max_replicas < max(config.min_replicas, 1):
        raise InferenceServiceSpecError(
            f"max_replicas {config.max_replicas} must be at least 1 and at least min_replicas ({config.min_replicas})"
        )
    for resource, amount in (("cpu", config.resources.cpu), ("memory", config.resources.memory)):
        if not _QUANTITY.match(amount):
            raise InferenceServiceSpecError(f"{resource} {amount!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    if config.resources.gpu < 0:
        raise InferenceServiceSpecError(f"gpu {config.resources.gpu} cannot be negative")
    if bool(config.registered_model) != bool(config.model_version):
        raise InferenceServiceSpecError("registered_model and model_version go together (or neither)")
    if config.logger_url and not config.logger_url.startswith(("http://", "https://")):
        raise InferenceServiceSpecError(f"logger_url {config.logger_url!r} must be an http:// or https:// URL")


def build_inference_service(config: InferenceServiceConfig) -> dict[str, Any]:
    """The InferenceService manifest for ``config`` (validated first)."""
    validate(config)
    annotations = {DEPLOYMENT_MODE_ANNOTATION: config.mode}
    if config.mode == KNATIVE:
        annotations[TAG_ROUTING_ANNOTATION] = "true"
    if config.registered_model:
        annotations[REGISTERED_MODEL_ANNOTATION] = config.registered_model
        annotations[MODEL_VERSION_ANNOTATION] = config.model_version
    predictor: dict[str, Any] = {
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "containers": [model_server_container(config)],
    }
    if config.is_canary:
        predictor["canaryTrafficPercent"] = config.canary_traffic_percent
    if config.logger_url:
        predictor["logger"] = {"mode": "all", "url": config.logger_url}
    if config.service_account_name:
        predictor["serviceAccountName"] = config.service_account_name
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": config.name,
            "namespace": config.namespace,
            "labels": {"app.kubernetes.io/name": config.name, "app.kubernetes.io/part-of": "kfp-mlops"},
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def model_server_container(config: InferenceServiceConfig) -> dict[str, Any]:
    return {
        "name": CONTAINER_NAME,
        "image": config.image,
        "command": ["python", "-m", "serving.server"],
        "args": [
            "--model_dir", MODEL_MOUNT_PATH,
            "--model_name", config.name,
            "--http_port", str(HTTP_PORT),
        ],  # fmt: skip
        "env": [{"name": STORAGE_URI_ENV, "value": config.storage_uri}],
        "ports": [{"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": config.resources.to_kubernetes(),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


# The predictor fields and annotations the builder sets only sometimes: an update must remove them when unset.
OPTIONAL_PREDICTOR_FIELDS = ("canaryTrafficPercent", "logger", "serviceAccountName")
OPTIONAL_ANNOTATIONS = (TAG_ROUTING_ANNOTATION, REGISTERED_MODEL_ANNOTATION, MODEL_VERSION_ANNOTATION)


def update_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that turns an existing InferenceService into ``manifest``'s labels, annotations
    and spec, removing the optional predictor fields and annotations ``manifest`` leaves out (a merge patch
    keeps unnamed keys; other annotations, someone else's, stay)."""
    predictor = dict(manifest["spec"]["predictor"])
    for name in OPTIONAL_PREDICTOR_FIELDS:
        predictor.setdefault(name, None)
    annotations = dict(manifest["metadata"]["annotations"])
    for name in OPTIONAL_ANNOTATIONS:
        annotations.setdefault(name, None)
    metadata = {"labels": manifest["metadata"]["labels"], "annotations": annotations}
    return {"metadata": metadata, "spec": {**manifest["spec"], "predictor": predictor}}


def merge_patch_between(current: Any, target: Any) -> Any:
    """The RFC 7386 JSON merge patch that turns ``current`` into ``target`` (keys only in ``current`` become
    null; lists are replaced whole)."""
    if not isinstance(current, dict) or not isinstance(target, dict):
        return target
    patch: dict[str, Any] = {key: None for key in current if key not in target}
    for key, value in target.items():
        if key not in current:
            patch[key] = value
        elif current[key] != value:
            patch[key] = merge_patch_between(current[key], value)
    return patch


def example_inference_service() -> dict[str, Any]:
    """The example in ``manifests/serving/inferenceservice-example.yaml``: a canary in Knative mode."""
    return build_inference_service(
        InferenceServiceConfig(
            name="text-classifier",
            namespace="kfp-mlops",
            storage_uri="gs://kfp-mlops-models/text-classifier/v2",
            deployment_mode=KNATIVE,
            min_replicas=1,
            max_replicas=3,
            resources=Resources(cpu="1", memory="2Gi"),
            canary_traffic_percent=10,
            logger_url="http://payload-sink.kfp-mlops.svc.cluster.local",
            service_account_name="kfp-mlops-model-reader",
        )
    )


def _validate_storage_uri(uri: str) -> None:
    scheme, separator, rest = uri.partition("://")
    if not separator or not rest:
        raise InferenceServiceSpecError(
            f"storage_uri {uri!r} is not a URI: KServe's storage initializer downloads the model from "
            f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}; a local path of the launcher is not visible to it"
        )
    if scheme not in STORAGE_SCHEMES:
        raise InferenceServiceSpecError(
            f"storage_uri {uri!r}: KServe's storage initializer does not download {scheme}:// URIs; "
            f"use one of {', '.join(s + '://' for s in STORAGE_SCHEMES)}"
        )


if __name__ == "__main__":
    import yaml

    print("# Generated by `python -m components.deploy.inference_service` (the deploy component's builder).")
    print("# What the deploy component applies for a Knative canary; not part of the kustomize base.")
    print(yaml.safe_dump(example_inference_service(), sort_keys=False), end="")
