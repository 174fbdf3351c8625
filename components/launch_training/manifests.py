"""Pure builders for the multi-node training job: a Kubeflow Trainer v2 TrainJob or a Training Operator PyTorchJob.

Both run the train component's entrypoint under torchrun on every node::

    torchrun --nnodes=N --nproc_per_node=G -m components.train.text_trainer --config '{...}'

Node rank and rendezvous address come from each operator. Trainer v2's torch plugin sets PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT, and torchrun reads PET_* as
defaults for its flags. The Training Operator (v1.9) sets MASTER_ADDR, MASTER_PORT and RANK, but not
PET_MASTER_ADDR, so the PyTorchJob command passes them explicitly as ``$(VAR)`` references, which the
kubelet expands from the container's environment.

Data and model live on shared storage that every node reaches: ``gs://BUCKET/PATH`` (read by pyarrow
with the pod's credentials) or ``pvc://CLAIM/PATH`` (KServe's notation). A claim is mounted on every
node at ``/mnt/pvc/CLAIM`` and the path is rewritten for the trainer. A plain local path is refused,
because it would differ from node to node.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRAINER_MODULE = "components.train.text_trainer"
PVC_MOUNT_ROOT = "/mnt/pvc"
SHM_VOLUME = "dshm"
LABELS = {
    "app.kubernetes.io/name": "text-trainer",
    "app.kubernetes.io/component": "training",
    "app.kubernetes.io/part-of": "kfp-mlops",
}
LAUNCHER_SERVICE_ACCOUNT = "kfp-mlops-training-launcher"

# Trainer v2's runtimes name the trainer's ReplicatedJob and its container "node" (constants.Node).
TRAINJOB_NODE = "node"
# The Training Operator requires this container name; the port is its default master port.
PYTORCHJOB_CONTAINER = "pytorch"
PYTORCHJOB_PORT = {"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"}

# The trainer fields that get their values from the URI parameters, and those it writes to a local filesystem.
URI_FIELDS = ("train_path", "eval_path", "model_dir")
OUTPUT_FIELDS = ("model_dir", "curves_path", "metrics_path", "result_path", "checkpoint_dir")
# Set by the operators or by torchrun for every process; a user value would break the rendezvous.
RESERVED_ENV = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "PYTHONUNBUFFERED"}

JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Pod hostnames (<name>-worker-<i>, <name>-node-0-<i>) and services must stay within 63 characters.
MAX_JOB_NAME = 40
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes' resource.Quantity syntax, as in the CRDs' schemas.
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class LaunchSpecError(ValueError):
    """Bad launch parameters; the message names the parameter at fault."""


@dataclass(frozen=True)
class CustomResource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


KINDS: dict[str, CustomResource] = {
    "trainjob": CustomResource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"),
    "pytorchjob": CustomResource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
}


def resource_of(kind: str) -> CustomResource:
    if kind not in KINDS:
        raise LaunchSpecError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


@dataclass(frozen=True)
class TrainingJobSpec:
    """One distributed training run: what to train on, where, and on how many nodes and GPUs.

    ``training_params`` are further ``TrainConfig`` fields of the trainer (epochs, batch_size, ...); a string
    value ``pvc://CLAIM/PATH`` in them is mounted and rewritten like the URIs. ``gpus_per_node == 0`` runs one
    CPU process per node. Empty ``service_account``, ``cpu_per_node`` and ``memory_per_node`` leave the
    cluster's defaults. ``ttl_seconds_after_finished`` and ``active_deadline_seconds`` (0: none) apply to a
    PyTorchJob; a TrainJob takes its JobSet's lifetime from the runtime.
    """

    name: str
    namespace: str
    image: str
    train_data_uri: str
    eval_data_uri: str
    model_output_uri: str
    training_params: Mapping[str, Any] = field(default_factory=dict)
    num_nodes: int = 1
    gpus_per_node: int = 1
    runtime_name: str = "torch-distributed"
    service_account: str = ""
    cpu_per_node: str = ""
    memory_per_node: str = ""
    shm_size: str = "8Gi"
    env: Mapping[str, str] = field(default_factory=dict)
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int = 0

    def check(self) -> None:
        """Raise :class:`LaunchSpecError` naming the first bad field."""
        if not (JOB_NAME.match(self.name) and len(self.name) <= MAX_JOB_NAME):
            raise LaunchSpecError(
                f"name {self.name!r} must be a lowercase DNS label of at most {MAX_JOB_NAME} characters "
                "(letters, digits and '-', starting with a letter)"
            )
        if not (DNS_LABEL.match(self.namespace) and len(self.namespace) <= 63):
            raise LaunchSpecError(f"namespace {self.namespace!r} is not a valid Kubernetes namespace name")
        if not self.image:
            raise LaunchSpecError("image is empty")
        if not 1 <= self.num_nodes <= 1024:
            raise LaunchSpecError(f"num_nodes must be between 1 and 1024, got {self.num_nodes}")
        if not 0 <= self.gpus_per_node <= 64:
            raise LaunchSpecError(f"gpus_per_node must be between 0 and 64, got {self.gpus_per_node}")
        if not (DNS_SUBDOMAIN.match(self.runtime_name) and len(self.runtime_name) <= 253):
            raise LaunchSpecError(f"runtime_name {self.runtime_name!r} is not a valid runtime name")
        if self.service_account and not DNS_SUBDOMAIN.match(self.service_account):
            raise LaunchSpecError(f"service_account {self.service_account!r} is not a valid service account name")
        for name in ("cpu_per_node", "memory_per_node", "shm_size"):
            value = getattr(self, name)
            if (value or name == "shm_size") and not QUANTITY.match(value):
                raise LaunchSpecError(f"{name} {value!r} is not a Kubernetes quantity (e.g. '8', '500m', '16Gi')")
        for name in self.env:
            if not ENV_NAME.match(name):
                raise LaunchSpecError(f"env name {name!r} is not a valid environment variable name")
            if name in RESERVED_ENV or name.startswith("PET_"):
                raise LaunchSpecError(f"env name {name!r} is set by the training operator or torchrun")
            if not isinstance(self.env[name], str):
                raise LaunchSpecError(f"env {name!r} must be a string, got {self.env[name]!r}")
        if self.ttl_seconds_after_finished < 0 or self.active_deadline_seconds < 0:
            raise LaunchSpecError("ttl_seconds_after_finished and active_deadline_seconds must not be negative")

    @property
    def processes_per_node(self) -> int:
        return max(self.gpus_per_node, 1)


@dataclass(frozen=True)
class SharedStorage:
    """The trainer config with shared URIs rewritten to what the pods see, and the claims to mount."""

    config: dict[str, Any]
    claims: dict[str, bool]
    """Claim name -> read-only (True when the trainer only reads from it)."""


def resolve_storage(spec: TrainingJobSpec) -> SharedStorage:
    """The trainer config for ``spec``: the URIs and ``training_params``, with ``pvc://`` rewritten to mounts."""
    reserved = sorted(set(URI_FIELDS) & set(spec.training_params))
    if reserved:
        raise LaunchSpecError(
            f"training_params must not set {reserved}: they come from train_data_uri, eval_data_uri and "
            "model_output_uri"
        )
    fields = {
        "train_path": ("train_data_uri", spec.train_data_uri),
        "eval_path": ("eval_data_uri", spec.eval_data_uri),
        "model_dir": ("model_output_uri", spec.model_output_uri),
    }
    fields.update({key: (f"training_params[{key!r}]", value) for key, value in spec.training_params.items()})
    config: dict[str, Any] = {}
    claims: dict[str, bool] = {}
    for key, (parameter, value) in fields.items():
        if isinstance(value, str) and (key in URI_FIELDS or value.startswith("pvc://")):
            value, claim = _shared_path(value, parameter, output=key in OUTPUT_FIELDS)
            if claim:
                claims[claim] = claims.get(claim, True) and key not in OUTPUT_FIELDS
        elif key in OUTPUT_FIELDS and value is not None:
            raise LaunchSpecError(f"{parameter} must be a pvc://CLAIM/PATH URI, got {value!r}")
        config[key] = _json_value(value, parameter)
    return SharedStorage(config=dict(sorted(config.items())), claims=dict(sorted(claims.items())))


def _shared_path(uri: str, parameter: str, output: bool) -> tuple[str, str | None]:
    """(the path the trainer opens, the claim to mount or None) for a gs:// or pvc:// URI."""
    scheme, _, rest = uri.partition("://")
    location, _, path = rest.partition("/")
    if scheme == "gs":
        if output:
            raise LaunchSpecError(
                f"{parameter} is {uri!r}: the trainer writes it to a local filesystem, so it must be a "
                "pvc://CLAIM/PATH URI"
            )
        if not (location and path):
            raise LaunchSpecError(f"{parameter} {uri!r} must name an object: gs://BUCKET/PATH")
        return uri, None
    if scheme == "pvc":
        if not (DNS_SUBDOMAIN.match(location) and len(location) <= 253):
            raise LaunchSpecError(f"{parameter} {uri!r}: {location!r} is not a valid PersistentVolumeClaim name")
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise LaunchSpecError(f"{parameter} {uri!r} needs a normalised path inside the claim: pvc://CLAIM/DIR/FILE")
        return f"{PVC_MOUNT_ROOT}/{location}/{path}", location
    raise LaunchSpecError(
        f"{parameter} {uri!r} is not on shared storage: use gs://BUCKET/PATH or pvc://CLAIM/PATH "
        "(a local path is not shared between nodes)"
    )


def _json_value(value: Any, parameter: str) -> Any:
    """``value`` as the trainer's JSON config takes it.

    KFP passes dict parameters through a protobuf Struct, whose numbers are doubles; an integral float is
    turned back into an int because the trainer's int fields reject 3.0 (its float fields accept ints).
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise LaunchSpecError(f"{parameter} is not JSON-serialisable: {error}") from error
    return value


def trainer_config_json(spec: TrainingJobSpec) -> str:
    """The ``--config`` argument of the trainer: compact, sorted JSON."""
    return json.dumps(resolve_storage(spec).config, sort_keys=True, separators=(",", ":"))


def torchrun_command(spec: TrainingJobSpec, explicit_rendezvous: bool) -> list[str]:
    """``torchrun ... -m components.train.text_trainer``; rank and master from the pod's env when explicit."""
    command = ["torchrun", f"--nnodes={spec.num_nodes}", f"--nproc_per_node={spec.processes_per_node}"]
    if explicit_rendezvous:
        command += ["--node_rank=$(RANK)", "--master_addr=$(MASTER_ADDR)", "--master_port=$(MASTER_PORT)"]
    return [*command, "-m", TRAINER_MODULE]


def _resources(spec: TrainingJobSpec) -> dict[str, dict[str, Any]]:
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if spec.cpu_per_node:
        requests["cpu"] = spec.cpu_per_node
    if spec.memory_per_node:
        requests["memory"] = limits["memory"] = spec.memory_per_node
    if spec.gpus_per_node:
        limits["nvidia.com/gpu"] = spec.gpus_per_node
    return {name: values for name, values in (("requests", requests), ("limits", limits)) if values}


def _volumes(spec: TrainingJobSpec, claims: Mapping[str, bool]) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container volume mounts): /dev/shm in memory, and each shared claim."""
    volumes = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}}]
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    for index, (claim, read_only) in enumerate(claims.items()):
        volume = f"shared-{index}"
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}})
        mounts.append({"name": volume, "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": read_only})
    return volumes, mounts


def _env(spec: TrainingJobSpec, unbuffered: bool) -> list[dict[str, str]]:
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}] if unbuffered else []
    return env + [{"name": name, "value": spec.env[name]} for name in sorted(spec.env)]


def _metadata(spec: TrainingJobSpec) -> dict[str, Any]:
    return {"name": spec.name, "namespace": spec.namespace, "labels": dict(LABELS)}


def trainjob_manifest(spec: TrainingJobSpec) -> dict[str, Any]:
    """A Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on the ClusterTrainingRuntime ``runtime_name``."""
    spec.check()
    storage = resolve_storage(spec)
    volumes, mounts = _volumes(spec, storage.claims)
    overrides: dict[str, Any] = {"targetJobs": [{"name": TRAINJOB_NODE}]}
    if spec.service_account:
        overrides["serviceAccountName"] = spec.service_account
    overrides["volumes"] = volumes
    overrides["containers"] = [{"name": TRAINJOB_NODE, "volumeMounts": mounts}]
    trainer: dict[str, Any] = {
        "image": spec.image,
        "command": torchrun_command(spec, explicit_rendezvous=False),
        "args": ["--config", trainer_config_json(spec)],
        "numNodes": spec.num_nodes,
        "numProcPerNode": spec.processes_per_node,
        # The Training Operator sets PYTHONUNBUFFERED itself; Trainer v2 does not.
        "env": _env(spec, unbuffered=True),
    }
    resources = _resources(spec)
    if resources:
        trainer["resourcesPerNode"] = resources
    resource = KINDS["trainjob"]
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": _metadata(spec),
        "spec": {
            "runtimeRef": {"name": spec.runtime_name, "apiGroup": resource.group, "kind": "ClusterTrainingRuntime"},
            "labels": dict(LABELS),
            "trainer": trainer,
            "podSpecOverrides": [overrides],
        },
    }


def pytorchjob_manifest(spec: TrainingJobSpec) -> dict[str, Any]:
    """A Training Operator PyTorchJob (kubeflow.org/v1): one Master and ``num_nodes - 1`` Workers.

    Pods are not restarted (``restartPolicy: Never``, ``backoffLimit: 0``): a static torchrun rendezvous
    cannot take a replaced node, so one failed node fails the job. Finished pods are kept
    (``cleanPodPolicy: None``) so that the failing one's logs can be read, until the TTL deletes the job.
    """
    spec.check()
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": "None",
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
    }
    if spec.active_deadline_seconds:
        run_policy["activeDeadlineSeconds"] = spec.active_deadline_seconds
    replicas = {"Master": 1, "Worker": spec.num_nodes - 1}
    resource = KINDS["pytorchjob"]
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": _metadata(spec),
        "spec": {
            "nprocPerNode": str(spec.processes_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": {
                role: {"replicas": count, "restartPolicy": "Never", "template": _pytorchjob_pod_template(spec)}
                for role, count in replicas.items()
                if count
            },
        },
    }


def _pytorchjob_pod_template(spec: TrainingJobSpec) -> dict[str, Any]:
    storage = resolve_storage(spec)
    volumes, mounts = _volumes(spec, storage.claims)
    container: dict[str, Any] = {
        "name": PYTORCHJOB_CONTAINER,
        "image": spec.image,
        "command": torchrun_command(spec, explicit_rendezvous=True),
        "args": ["--config", trainer_config_json(spec)],
        "ports": [dict(PYTORCHJOB_PORT)],
        "volumeMounts": mounts,
    }
    env = _env(spec, unbuffered=False)
    if env:
        container["env"] = env
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    return {"metadata": {"labels": dict(LABELS)}, "spec": pod}


def job_manifest(kind: str, spec: TrainingJobSpec) -> dict[str, Any]:
    """The manifest of ``kind`` ("trainjob" or "pytorchjob") for ``spec``."""
    resource_of(kind)
    return trainjob_manifest(spec) if kind == "trainjob" else pytorchjob_manifest(spec)


def service_account_manifest(namespace: str = "", name: str = LAUNCHER_SERVICE_ACCOUNT) -> dict[str, Any]:
    """The launcher's ServiceAccount; without a namespace, kustomize (or ``kubectl -n``) sets it."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _rbac_metadata(name, namespace)}


def rbac_manifests(kind: str, namespace: str = "", service_account: str = LAUNCHER_SERVICE_ACCOUNT) -> list[dict]:
    """A Role and RoleBinding with exactly the calls the launcher makes for ``kind``, in one namespace."""
    resource = resource_of(kind)
    name = f"{service_account}-{kind}"
    subject = {"kind": "ServiceAccount", "name": service_account}
    if namespace:
        subject["namespace"] = namespace
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _rbac_metadata(name, namespace),
            "rules": [
                {"apiGroups": [resource.group], "resources": [resource.plural], "verbs": ["create", "get", "delete"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _rbac_metadata(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        },
    ]


def _rbac_metadata(name: str, namespace: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/part-of": "kfp-mlops"}
    return metadata
