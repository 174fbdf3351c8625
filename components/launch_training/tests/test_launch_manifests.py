"""The TrainJob and PyTorchJob builders: their content, their checks, and validity under the real CRD schemas."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from components.launch_training.manifests import (
    LaunchSpecError,
    job_manifest,
    pytorchjob_manifest,
    resolve_storage,
    trainjob_manifest,
)
from kfp_mlops.crd_schema import cel_rules, crd_validator, errors

KINDS = ["trainjob", "pytorchjob"]


def trainer_container(kind: str, manifest: dict) -> dict:
    if kind == "trainjob":
        return manifest["spec"]["trainer"]
    return manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]


def config_of(kind: str, manifest: dict) -> dict:
    args = trainer_container(kind, manifest)["args"]
    assert args[0] == "--config"
    return json.loads(args[1])


def volumes_and_mounts(kind: str, manifest: dict) -> tuple[list[dict], list[dict]]:
    if kind == "trainjob":
        override = manifest["spec"]["podSpecOverrides"][0]
        return override["volumes"], override["containers"][0]["volumeMounts"]
    pod = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    return pod["volumes"], pod["containers"][0]["volumeMounts"]


VARIANTS = {
    "default": {},
    "one cpu node": {"num_nodes": 1, "gpus_per_node": 0, "train_data_uri": "gs://b/train.parquet"},
    "everything set": {
        "service_account": "trainer-sa",
        "cpu_per_node": "15500m",
        "memory_per_node": "120Gi",
        "shm_size": "32Gi",
        "env": {"NCCL_DEBUG": "INFO", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"},
        "active_deadline_seconds": 7200,
        "runtime_name": "torch-distributed-h100",
    },
    "model from a claim": {"training_params": {"base_model": "pvc://models/base/minilm", "epochs": 1}},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_manifest_is_valid_under_the_upstream_crd(kind, variant, spec, crds):
    crd, version = crds[kind]
    manifest = job_manifest(kind, dataclasses.replace(spec, **VARIANTS[variant]))
    assert errors(crd_validator(crd, version), manifest) == []


@pytest.mark.parametrize("kind", KINDS)
def test_only_update_time_cel_rules_guard_the_fields_we_set(kind, spec, crds):
    """CEL rules are not evaluated by the validator: the ones on our paths compare with oldSelf (updates only)."""
    crd, version = crds[kind]
    manifest = job_manifest(kind, dataclasses.replace(spec, **VARIANTS["everything set"]))
    assert all("oldSelf" in rule for _, rule in cel_rules(crd, version, manifest))


def test_trainjob_runs_torchrun_on_the_runtime_with_nodes_and_gpus(spec):
    manifest = trainjob_manifest(spec)
    trainer = manifest["spec"]["trainer"]
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and manifest["kind"] == "TrainJob"
    assert manifest["metadata"]["name"] == "text-clf-1a2b3c4d" and manifest["metadata"]["namespace"] == "team-a"
    assert manifest["spec"]["runtimeRef"] == {
        "name": "torch-distributed", "apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime"
    }
    assert trainer["image"] == spec.image
    # Node rank and master come from the PET_* variables Trainer v2's torch plugin sets.
    assert trainer["command"] == ["torchrun", "--nnodes=3", "--nproc_per_node=8", "-m", "components.train.text_trainer"]
    assert trainer["numNodes"] == 3 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": 8}}
    assert {"name": "PYTHONUNBUFFERED", "value": "1"} in trainer["env"]
    assert manifest["spec"]["podSpecOverrides"][0]["targetJobs"] == [{"name": "node"}]
    assert manifest["spec"]["podSpecOverrides"][0]["containers"][0]["name"] == "node"
    assert manifest["spec"]["labels"]["app.kubernetes.io/part-of"] == "kfp-mlops"


def test_pytorchjob_has_one_master_and_the_other_nodes_as_workers(spec):
    manifest = pytorchjob_manifest(spec)
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    assert {role: r["replicas"] for role, r in replicas.items()} == {"Master": 1, "Worker": 2}
    assert manifest["spec"]["nprocPerNode"] == "8"
    assert manifest["spec"]["runPolicy"] == {
        "cleanPodPolicy": "None", "backoffLimit": 0, "ttlSecondsAfterFinished": 86400
    }
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        container = replica["template"]["spec"]["containers"][0]
        assert container["name"] == "pytorch"
        assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"}]
        assert container["resources"] == {"limits": {"nvidia.com/gpu": 8}}
        # The Training Operator sets RANK, MASTER_ADDR and MASTER_PORT but not PET_MASTER_ADDR: pass them.
        assert container["command"] == [
            "torchrun", "--nnodes=3", "--nproc_per_node=8",
            "--node_rank=$(RANK)", "--master_addr=$(MASTER_ADDR)", "--master_port=$(MASTER_PORT)",
            "-m", "components.train.text_trainer",
        ]
    master, worker = replicas["Master"]["template"], replicas["Worker"]["template"]
    assert master == worker and master is not worker  # equal, and not one object YAML would alias


def test_a_single_node_pytorchjob_has_no_workers(spec):
    replicas = pytorchjob_manifest(dataclasses.replace(spec, num_nodes=1))["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"]


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_nodes_run_one_process_and_ask_for_no_gpu(kind, spec):
    manifest = job_manifest(kind, dataclasses.replace(spec, gpus_per_node=0, cpu_per_node="4", memory_per_node="8Gi"))
    container = trainer_container(kind, manifest)
    assert "--nproc_per_node=1" in container["command"]
    resources = container["resourcesPerNode" if kind == "trainjob" else "resources"]
    assert resources == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}


@pytest.mark.parametrize("kind", KINDS)
def test_claims_are_mounted_read_only_unless_the_trainer_writes_to_them(kind, spec):
    manifest = job_manifest(kind, spec)
    config = config_of(kind, manifest)
    assert config["train_path"] == "/mnt/pvc/datasets/banking77/train.parquet"
    assert config["eval_path"] == "gs://bucket/banking77/eval.parquet"
    assert config["model_dir"] == "/mnt/pvc/models/runs/42/model"
    volumes, mounts = volumes_and_mounts(kind, manifest)
    assert {v["name"]: v.get("persistentVolumeClaim") or v.get("emptyDir") for v in volumes} == {
        "dshm": {"medium": "Memory", "sizeLimit": "8Gi"},
        "shared-0": {"claimName": "datasets", "readOnly": True},
        "shared-1": {"claimName": "models", "readOnly": False},
    }
    assert mounts == [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "shared-0", "mountPath": "/mnt/pvc/datasets", "readOnly": True},
        {"name": "shared-1", "mountPath": "/mnt/pvc/models", "readOnly": False},
    ]


def test_a_claim_used_for_input_and_output_is_mounted_once_writable(spec):
    spec = dataclasses.replace(
        spec, train_data_uri="pvc://shared/data/train.parquet", model_output_uri="pvc://shared/model"
    )
    claims = resolve_storage(spec).claims
    assert claims == {"shared": False}


def test_training_params_join_the_config_and_integral_floats_become_ints(spec):
    # KFP hands dict parameters over as a protobuf Struct: every number arrives as a float.
    spec = dataclasses.replace(spec, training_params={"epochs": 3.0, "learning_rate": 1e-4, "base_model": "minilm"})
    config = resolve_storage(spec).config
    assert config == {
        "base_model": "minilm",
        "epochs": 3,
        "eval_path": "gs://bucket/banking77/eval.parquet",
        "learning_rate": 1e-4,
        "model_dir": "/mnt/pvc/models/runs/42/model",
        "train_path": "/mnt/pvc/datasets/banking77/train.parquet",
    }
    assert isinstance(config["epochs"], int)


def test_a_pvc_uri_in_training_params_is_mounted_and_rewritten(spec):
    spec = dataclasses.replace(spec, training_params={"base_model": "pvc://weights/minilm-l6"})
    storage = resolve_storage(spec)
    assert storage.config["base_model"] == "/mnt/pvc/weights/minilm-l6"
    assert storage.claims["weights"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_data_uri": "/data/train.parquet"}, "train_data_uri '/data/train.parquet' is not on shared storage"),
        ({"eval_data_uri": "gs://bucket-only"}, "eval_data_uri 'gs://bucket-only' must name an object"),
        ({"model_output_uri": "gs://bucket/model"}, "model_output_uri is 'gs://bucket/model': the trainer writes it"),
        ({"model_output_uri": "pvc://models/../etc"}, "needs a normalised path inside the claim"),
        ({"model_output_uri": "pvc://Bad_Claim/model"}, "'Bad_Claim' is not a valid PersistentVolumeClaim name"),
        ({"training_params": {"model_dir": "/tmp/m"}}, "training_params must not set ['model_dir']"),
        ({"training_params": {"metrics_path": "/tmp/m.json"}}, "training_params['metrics_path'] must be a pvc://"),
        ({"training_params": {"epochs": float("nan")}}, "training_params['epochs'] is not JSON-serialisable"),
        ({"name": "Train-Job"}, "name 'Train-Job' must be a lowercase DNS label"),
        ({"name": "t" * 41}, "at most 40 characters"),
        ({"namespace": "team_a"}, "namespace 'team_a'"),
        ({"num_nodes": 0}, "num_nodes must be between 1 and 1024, got 0"),
        ({"gpus_per_node": -1}, "gpus_per_node must be between 0 and 64, got -1"),
        ({"memory_per_node": "64GB"}, "memory_per_node '64GB' is not a Kubernetes quantity"),
        ({"env": {"MASTER_ADDR": "x"}}, "env name 'MASTER_ADDR' is set by the training operator"),
        ({"env": {"PET_NNODES": "4"}}, "env name 'PET_NNODES' is set by the training operator"),
        ({"env": {"NCCL-DEBUG": "INFO"}}, "env name 'NCCL-DEBUG' is not a valid"),
        ({"env": {"NCCL_DEBUG": 1}}, "env 'NCCL_DEBUG' must be a string"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_parameters_are_refused_with_the_parameter_named(kind, change, message, spec):
    with pytest.raises(LaunchSpecError) as raised:
        job_manifest(kind, dataclasses.replace(spec, **change))
    assert message in str(raised.value)


def test_an_unknown_kind_is_refused(spec):
    with pytest.raises(LaunchSpecError, match=r"kind must be one of \['pytorchjob', 'trainjob'\], got 'mpijob'"):
        job_manifest("mpijob", spec)


# Each mutation is a mistake the API server would refuse (or silently prune): the validator must refuse it too.
def _set(path: list, value):
    def mutate(manifest: dict) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


TRAINJOB_MISTAKES = {
    "misspelt trainer field": (_set(["spec", "trainer", "numNode"], 2), "spec.trainer: Additional properties"),
    "misspelt spec field": (_set(["spec", "runtimeRefs"], {"name": "x"}), "spec: Additional properties"),
    "misspelt volume source": (
        _set(["spec", "podSpecOverrides", 0, "volumes", 1, "persistentVolumeClaims"], {"claimName": "x"}),
        "spec.podSpecOverrides.0.volumes.1: Additional properties",
    ),
    "numNodes over int32": (
        _set(["spec", "trainer", "numNodes"], 2**31), "spec.trainer.numNodes: 2147483648 is not a 'int32'"
    ),
    "numNodes as a string": (
        _set(["spec", "trainer", "numNodes"], "2"), "spec.trainer.numNodes: '2' is not of type 'integer'"
    ),
    "duplicate env name": (
        _set(["spec", "trainer", "env"], [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "spec.trainer.env: duplicate entry for list-map keys ['name']",
    ),
    "bad GPU quantity": (
        _set(["spec", "trainer", "resourcesPerNode"], {"limits": {"nvidia.com/gpu": "eight"}}),
        "spec.trainer.resourcesPerNode.limits.nvidia.com/gpu",
    ),
    "no runtimeRef": (lambda m: m["spec"].pop("runtimeRef"), "spec: 'runtimeRef' is a required property"),
    "wrong apiVersion": (
        _set(["apiVersion"], "trainer.kubeflow.org/v1"), "apiVersion: 'trainer.kubeflow.org/v1alpha1' was expected"
    ),
    "misspelt metadata": (_set(["metadata", "label"], {"a": "b"}), "metadata: Additional properties"),
}
PYTORCHJOB_MISTAKES = {
    "misspelt run policy field": (
        _set(["spec", "runPolicy", "ttlSecondAfterFinished"], 60), "spec.runPolicy: Additional properties"
    ),
    "misspelt container field": (
        _set(["spec", "pytorchReplicaSpecs", "Master", "template", "spec", "containers", 0, "volumeMount"], []),
        "spec.pytorchReplicaSpecs.Master.template.spec.containers.0: Additional properties",
    ),
    "nprocPerNode as an int": (_set(["spec", "nprocPerNode"], 8), "spec.nprocPerNode: 8 is not of type 'string'"),
    "container without name": (
        lambda m: m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0].pop("name"),
        "spec.pytorchReplicaSpecs.Master.template.spec.containers.0: 'name' is a required property",
    ),
    "duplicate port": (
        _set(
            ["spec", "pytorchReplicaSpecs", "Worker", "template", "spec", "containers", 0, "ports"],
            [{"containerPort": 23456, "protocol": "TCP"}, {"containerPort": 23456, "protocol": "TCP"}],
        ),
        "duplicate entry for list-map keys ['containerPort', 'protocol']",
    ),
}


@pytest.mark.parametrize(
    ("kind", "mistake"),
    [("trainjob", name) for name in TRAINJOB_MISTAKES] + [("pytorchjob", name) for name in PYTORCHJOB_MISTAKES],
)
def test_the_validator_refuses_what_the_api_server_would(kind, mistake, spec, crds):
    crd, version = crds[kind]
    validator = crd_validator(crd, version)
    manifest = job_manifest(kind, spec)
    assert errors(validator, manifest) == []
    mutate, expected = (TRAINJOB_MISTAKES if kind == "trainjob" else PYTORCHJOB_MISTAKES)[mistake]
    broken = copy.deepcopy(manifest)
    mutate(broken)
    found = errors(validator, broken)
    assert any(expected in line for line in found), found


def test_an_optional_output_left_unset_stays_null(spec):
    spec = dataclasses.replace(spec, training_params={"metrics_path": None, "checkpoint_dir": "pvc://models/ckpt"})
    storage = resolve_storage(spec)
    assert storage.config["metrics_path"] is None
    assert storage.config["checkpoint_dir"] == "/mnt/pvc/models/ckpt"
    assert storage.claims == {"datasets": True, "models": False}
