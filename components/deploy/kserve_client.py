"""Roll an InferenceService out through the Kubernetes API: create or merge-patch it, wait until it is ready,
smoke-test it, then promote the canary to all traffic, or roll back to the spec it had before.

Only the ``serving.kserve.io`` ``inferenceservices`` verbs get, create, patch and delete are used (the Role in
``manifests/serving/role.yaml`` grants exactly these).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from components.deploy.inference_service import (
    DEPLOYMENT_MODE_ANNOTATION,
    GROUP,
    KNATIVE,
    MODEL_VERSION_ANNOTATION,
    PLURAL,
    REGISTERED_MODEL_ANNOTATION,
    VERSION,
    InferenceServiceConfig,
    Resources,
    build_inference_service,
    merge_patch_between,
    normalize_deployment_mode,
    update_patch,
    validate,
)
from components.deploy.local import DeployOutputs, prediction_summary, write_atomically
from components.deploy.smoke import (
    DeployError,
    Instance,
    SmokeResult,
    send_smoke_request,
    smoke_instance,
    v1_predict_url,
)

POLL_INTERVAL_S = 2.0
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MERGE_PATCH = "application/merge-patch+json"
# Model load failures KServe reports in status.modelStatus.transitionStatus: waiting longer will not help.
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")


def load_custom_objects_api() -> k8s.CustomObjectsApi:
    """The API of the cluster this runs in (a pipeline task), else of the current kubeconfig context."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.CustomObjectsApi()


def current_namespace(namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    """The namespace this pod runs in (its service account's)."""
    try:
        return namespace_file.read_text().strip()
    except OSError as error:
        raise DeployError(
            f"namespace is empty and {namespace_file} cannot be read ({error.strerror}): "
            "give the namespace to deploy into when running outside a pod"
        ) from error


class InferenceServices:
    """get/create/patch/delete of InferenceServices in one namespace; API refusals become DeployError."""

    def __init__(self, api: k8s.CustomObjectsApi, namespace: str):
        self.api = api
        self.namespace = namespace

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _refused("get", self.namespace, name, error) from error

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, manifest, field_validation="Strict"
            )
        except ApiException as error:
            raise _refused("create", self.namespace, manifest["metadata"]["name"], error) from error

    def patch(self, name: str, merge_patch: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.api.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, merge_patch,
                field_validation="Strict", _content_type=MERGE_PATCH,
            )  # fmt: skip
        except ApiException as error:
            raise _refused("patch", self.namespace, name, error) from error

    def delete(self, name: str) -> None:
        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise _refused("delete", self.namespace, name, error) from error


@dataclass(frozen=True)
class Readiness:
    ready: bool
    failed: bool
    reason: str


def readiness(isvc: dict[str, Any], latest_traffic_percent: int | None = None) -> Readiness:
    """Whether the controller has reconciled the current spec and the InferenceService is Ready.

    ``latest_traffic_percent`` (Knative mode) also requires the latest revision to carry that share of traffic.
    """
    generation = isvc.get("metadata", {}).get("generation")
    status = isvc.get("status") or {}
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Readiness(False, False, f"the controller has not observed generation {generation} yet (at {observed})")
    model_status = status.get("modelStatus") or {}
    if model_status.get("transitionStatus") in FAILED_TRANSITIONS:
        failure = model_status.get("lastFailureInfo") or {}
        return Readiness(
            False,
            True,
            f"{model_status['transitionStatus']}: {failure.get('reason', '')} {failure.get('message', '')}".strip(),
        )
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        detail = "no Ready condition yet" if ready is None else f"Ready={ready.get('status')}"
        if ready and (ready.get("reason") or ready.get("message")):
            detail += f" ({ready.get('reason', '')}: {ready.get('message', '')})"
        return Readiness(False, False, detail)
    predictor = (status.get("components") or {}).get("predictor") or {}
    created, ready_revision = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if created and created != ready_revision:
        return Readiness(False, False, f"revision {created} is not ready yet (latest ready: {ready_revision})")
    if latest_traffic_percent is not None:
        percent = next((t.get("percent") for t in predictor.get("traffic", []) if t.get("latestRevision")), None)
        if percent != latest_traffic_percent:
            return Readiness(
                False, False, f"the latest revision has {percent}% of traffic, waiting for {latest_traffic_percent}%"
            )
    return Readiness(True, False, "Ready")


def wait_until_ready(
    services: InferenceServices,
    name: str,
    *,
    timeout_s: float,
    poll_s: float = POLL_INTERVAL_S,
    latest_traffic_percent: int | None = None,
) -> dict[str, Any]:
    """Poll the InferenceService until :func:`readiness` says Ready; raise DeployError when it fails or the
    deadline passes, with the last reason."""
    deadline = time.monotonic() + timeout_s
    while True:
        isvc = services.get(name)
        if isvc is None:
            raise DeployError(f"InferenceService {services.namespace}/{name} disappeared while waiting for it")
        state = readiness(isvc, latest_traffic_percent)
        if state.ready:
            return isvc
        if state.failed:
            raise DeployError(f"InferenceService {services.namespace}/{name} failed: {state.reason}")
        if time.monotonic() > deadline:
            raise DeployError(
                f"InferenceService {services.namespace}/{name} was not ready after {timeout_s:.0f}s: {state.reason}"
            )
        time.sleep(poll_s)


def serving_url(isvc: dict[str, Any]) -> str:
    """The URL the service answers on: the cluster-local address when KServe reports one, else status.url."""
    status = isvc.get("status") or {}
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise DeployError(f"InferenceService {isvc['metadata']['name']} is Ready but reports no URL in its status")
    return url


def canary_url(isvc: dict[str, Any]) -> str:
    """The URL of the latest (canary) revision alone: its `latest` tag in the predictor's traffic."""
    traffic = ((isvc.get("status") or {}).get("components") or {}).get("predictor", {}).get("traffic", [])
    for target in traffic:
        if target.get("tag") == "latest" and target.get("url"):
            return target["url"]
    raise DeployError(
        f"InferenceService {isvc['metadata']['name']} reports no URL tagged 'latest' in "
        f"status.components.predictor.traffic ({traffic}), so the canary cannot be smoke-tested on its own"
    )


def revision(isvc: dict[str, Any]) -> str:
    """The predictor's latest ready revision (Knative); in Standard mode, which has no revisions, the
    generation of the spec being served."""
    status = isvc.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    return predictor.get("latestReadyRevision") or f"generation-{status.get('observedGeneration')}"


@dataclass
class Rollout:
    """What a finished rollout left serving, and how it got there."""

    namespace: str
    name: str
    mode: str
    manifest: dict[str, Any]
    url: str = ""
    revision: str = ""
    previous_revision: str = ""  # empty on a first deployment
    canary_traffic_percent: int = 0  # the share the new revision was smoke-tested at; 0: no canary step
    smoke: SmokeResult | None = None
    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds since the start, what happened)
    started: float = field(default_factory=time.monotonic, init=False, repr=False)

    def log(self, event: str) -> None:
        self.events.append((time.monotonic() - self.started, event))


def roll_out(
    services: InferenceServices,
    config: InferenceServiceConfig,
    smoke_inputs: Sequence[Instance],
    *,
    ready_timeout_s: float = 600.0,
    poll_s: float = POLL_INTERVAL_S,
) -> Rollout:
    """Apply ``config``, wait for Ready, smoke-test, and promote a canary to 100%.

    On any failure after the change is applied, a first deployment is deleted and an update is rolled back to
    the spec it had before; the DeployError says which, with the cause.
    """
    if not smoke_inputs:
        raise DeployError("smoke_inputs is empty: give at least one instance to send to the deployed model")
    validate(config)
    existing = services.get(config.name)
    if existing is None and config.is_canary:
        config = replace(config, canary_traffic_percent=0)
    manifest = build_inference_service(config)
    rollout = Rollout(services.namespace, config.name, config.mode, manifest)
    knative = config.mode == KNATIVE
    if existing is None:
        services.create(manifest)
        rollout.log("created the InferenceService" + (" (first revision: all traffic, no canary)" if knative else ""))
        previous_spec = previous_version = None
    else:
        _check_mode_unchanged(existing, config.mode)
        previous_spec = existing["spec"]
        previous_version = version_annotations(existing)
        rollout.previous_revision = revision(existing)
        services.patch(config.name, update_patch(manifest))
        rollout.log(f"patched the InferenceService (previous revision: {rollout.previous_revision})")
    try:
        if config.is_canary:
            rollout.canary_traffic_percent = config.canary_traffic_percent
            isvc = wait_until_ready(
                services, config.name, timeout_s=ready_timeout_s, poll_s=poll_s,
                latest_traffic_percent=config.canary_traffic_percent,
            )  # fmt: skip
            rollout.log(f"canary revision {revision(isvc)} ready with {config.canary_traffic_percent}% of traffic")
            rollout.smoke = send_smoke_request(v1_predict_url(canary_url(isvc), config.name), smoke_inputs)
            rollout.log(f"smoke request to the canary passed ({rollout.smoke.latency_ms:.0f} ms)")
            services.patch(config.name, {"spec": {"predictor": {"canaryTrafficPercent": None}}})
            isvc = wait_until_ready(
                services, config.name, timeout_s=ready_timeout_s, poll_s=poll_s, latest_traffic_percent=100
            )
            rollout.log(f"promoted revision {revision(isvc)} to 100% of traffic")
        else:
            isvc = wait_until_ready(
                services, config.name, timeout_s=ready_timeout_s, poll_s=poll_s,
                latest_traffic_percent=100 if knative else None,
            )  # fmt: skip
            rollout.log(f"revision {revision(isvc)} ready")
            rollout.smoke = send_smoke_request(v1_predict_url(serving_url(isvc), config.name), smoke_inputs)
            rollout.log(f"smoke request passed ({rollout.smoke.latency_ms:.0f} ms)")
        rollout.url = serving_url(isvc)
        rollout.revision = revision(isvc)
    except Exception as failure:
        raise _undo(
            services, config.name, previous_spec, previous_version, knative, failure, ready_timeout_s, poll_s
        ) from failure
    return rollout


def _undo(
    services: InferenceServices,
    name: str,
    previous_spec: dict[str, Any] | None,
    previous_version: dict[str, str | None] | None,
    knative: bool,
    failure: Exception,
    timeout_s: float,
    poll_s: float,
) -> DeployError:
    """Delete a failed first deployment, or restore the previous spec and model version annotations; the error
    to raise, saying which."""
    where = f"{services.namespace}/{name}"
    cause = str(failure) if isinstance(failure, DeployError) else repr(failure)
    try:
        if previous_spec is None:
            services.delete(name)
            return DeployError(f"{cause}\nthe new InferenceService {where} was deleted")
        current = services.get(name)
        if current is None:
            return DeployError(f"{cause}\nInferenceService {where} is gone, nothing to roll back")
        restore = merge_patch_between(current["spec"], previous_spec)
        metadata = {"annotations": previous_version}
        if knative:
            # A spec without canaryTrafficPercent routes all traffic to the latest ready revision, which is
            # the failed one until the restored revision is up: keep traffic on the last rolled-out revision
            # (canary at 0%) while the restored revision starts, then hand it over.
            restore.setdefault("predictor", {})["canaryTrafficPercent"] = 0
            services.patch(name, {"metadata": metadata, "spec": restore})
            wait_until_ready(services, name, timeout_s=timeout_s, poll_s=poll_s)
            previous_canary = previous_spec.get("predictor", {}).get("canaryTrafficPercent")
            services.patch(name, {"spec": {"predictor": {"canaryTrafficPercent": previous_canary}}})
        else:
            services.patch(name, {"metadata": metadata, "spec": restore})
        restored = wait_until_ready(services, name, timeout_s=timeout_s, poll_s=poll_s)
    except DeployError as undo_failure:
        return DeployError(f"{cause}\nundoing the change of InferenceService {where} failed too: {undo_failure}")
    return DeployError(
        f"{cause}\nrolled InferenceService {where} back to its previous spec (revision {revision(restored)})"
    )


def version_annotations(isvc: dict[str, Any]) -> dict[str, str | None]:
    """The registered model and version an InferenceService is annotated with (None where it is not)."""
    annotations = isvc.get("metadata", {}).get("annotations") or {}
    return {name: annotations.get(name) for name in (REGISTERED_MODEL_ANNOTATION, MODEL_VERSION_ANNOTATION)}


def _check_mode_unchanged(existing: dict[str, Any], mode: str) -> None:
    deployed = existing.get("metadata", {}).get("annotations", {}).get(DEPLOYMENT_MODE_ANNOTATION) or (
        existing.get("status") or {}
    ).get("deploymentMode")
    if deployed and normalize_deployment_mode(deployed) != mode:
        name = existing["metadata"]["name"]
        raise DeployError(
            f"InferenceService {existing['metadata'].get('namespace')}/{name} runs in {deployed} mode and KServe "
            f"cannot change the mode of an existing InferenceService; deploy with deployment_mode "
            f"{normalize_deployment_mode(deployed)}, or delete it first to redeploy in {mode} mode"
        )


def _refused(verb: str, namespace: str, name: str, error: ApiException) -> DeployError:
    try:
        message = json.loads(error.body or "{}").get("message") or error.body
    except ValueError:
        message = error.body
    return DeployError(
        f"the Kubernetes API refused to {verb} InferenceService {namespace}/{name}: HTTP {error.status} "
        f"{error.reason}: {message}"
    )


def storage_uri_for(model_uri: str) -> str:
    """The URI KServe downloads ``model_uri`` (a KFP artifact URI) from: KFP's default MinIO store
    (``minio://``) is S3-compatible, which KServe reads as ``s3://`` with the S3 endpoint and credentials
    of the predictor's service account."""
    if model_uri.startswith("minio://"):
        return "s3://" + model_uri.removeprefix("minio://")
    return model_uri


def deploy_with_kserve(
    report_path: str,
    model_uri: str,
    model_name: str,
    smoke_input: str,
    *,
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
    registered_model: str = "",
    model_version: str = "",
    poll_s: float = POLL_INTERVAL_S,
    api: k8s.CustomObjectsApi | None = None,
) -> DeployOutputs:
    """Roll ``model_uri`` (or ``storage_uri``) out as the InferenceService ``model_name``, smoke-test it with
    ``smoke_input`` (see :func:`smoke_instance`), write the report.

    ``namespace`` defaults to the pod's own; ``api`` to the in-cluster (else kubeconfig) API.
    """
    config = InferenceServiceConfig(
        name=model_name,
        namespace=namespace or current_namespace(),
        storage_uri=storage_uri or storage_uri_for(model_uri),
        deployment_mode=deployment_mode,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        resources=Resources(cpu=cpu, memory=memory, gpu=gpu),
        canary_traffic_percent=canary_traffic_percent,
        logger_url=logger_url,
        service_account_name=service_account_name,
        registered_model=registered_model,
        model_version=model_version,
    )
    validate(config)  # before any call to the cluster
    instance = smoke_instance(smoke_input)
    services = InferenceServices(api or load_custom_objects_api(), config.namespace)
    rollout = roll_out(services, config, [instance], ready_timeout_s=ready_timeout_s, poll_s=poll_s)
    write_atomically(Path(report_path), rollout_report(rollout))
    return DeployOutputs(rollout.url, json.dumps(rollout.smoke.predictions[0]), rollout.revision)


def rollout_report(rollout: Rollout) -> str:
    container = rollout.manifest["spec"]["predictor"]["containers"][0]
    storage_uri = next(e["value"] for e in container["env"] if e["name"] == "STORAGE_URI")
    smoke = rollout.smoke
    prediction = smoke.predictions[0]
    canary = (
        f"{rollout.canary_traffic_percent}% of traffic, smoke-tested on its own URL, then promoted to 100%"
        if rollout.canary_traffic_percent
        else "none (full rollout)"
    )
    lines = [
        f"# Deployment of `{rollout.name}` (KServe, {rollout.mode} mode)",
        "",
        f"- InferenceService: `{rollout.namespace}/{rollout.name}`",
        f"- URL: `{rollout.url}`",
        f"- Revision: `{rollout.revision}` (previous: `{rollout.previous_revision or 'none, first deployment'}`)",
        f"- Canary: {canary}",
        f"- Model: `{storage_uri}`, image `{container['image']}`",
        f"- Smoke request: `POST {smoke.url}` (V1 protocol), {smoke.latency_ms:.1f} ms",
        f"- Prediction: {prediction_summary(prediction)}",
        "",
        "## Timeline",
        "",
        "| t (s) | event |",
        "|---:|---|",
        *(f"| {seconds:.1f} | {event} |" for seconds, event in rollout.events),
        "",
        "## Smoke request and response",
        "",
        "```json",
        json.dumps(smoke.request, indent=2),
        json.dumps(smoke.response, indent=2),
        "```",
        "",
        "## Applied InferenceService",
        "",
        "```yaml",
        yaml.safe_dump(rollout.manifest, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
