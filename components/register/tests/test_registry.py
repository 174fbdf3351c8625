"""ModelRegistry against a real MLflow tracking server and against the embedded SQLite store.

Tests taking the ``registry`` fixture run against both; those that only check local logic use the embedded store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

import kfp_mlops
from components.register.manifest import MANIFEST_NAME, REGISTRY_FILE, ModelArtifactError, build_manifest
from components.register.registry import (
    CodeVersion,
    DataVersion,
    ModelRegistry,
    PipelineRun,
    RegistryError,
)
from components.register.tests.samples import INGEST_METADATA, MODEL_METADATA
from kfp_mlops import images

FINAL_METRICS = {"eval_accuracy": 0.9375, "eval_macro_f1": 0.9373, "eval_loss": 0.21}


@pytest.fixture
def embedded(embedded_uri: str) -> ModelRegistry:
    return ModelRegistry(embedded_uri)


def register(registry: ModelRegistry, name: str, model_dir: Path, **options):
    options.setdefault("params", MODEL_METADATA)
    options.setdefault("metrics", FINAL_METRICS)
    options.setdefault("data", DataVersion.from_metadata(INGEST_METADATA, artifact_uri="gs://root/ingest/train_data"))
    options.setdefault("pipeline_run", PipelineRun("run-7f3a", "task-register-1"))
    return registry.register(name, model_dir, **options)


def test_a_registration_records_run_data_code_pipeline_and_the_model_files(registry, model_name, model_dir):
    registration = register(
        registry, model_name, model_dir, step_metrics={"train_loss": [0.7, 0.5, 0.3]}, alias=""
    )
    version = registration.version
    assert (version.version, version.model_uri) == ("1", f"models:/{model_name}/1")
    assert version.run_id == registration.run_id

    tags = version.tags
    assert tags["data.sha256"] == "a" * 64 and tags["data.hash_of"] == "ingest-content"
    assert json.loads(tags["data.source_uris"]) == INGEST_METADATA["source_uris"]
    assert tags["data.schema_fingerprint"] == "b" * 64 and tags["data.data_version"] == "c" * 64
    assert tags["data.rows"] == "48" and tags["data.artifact_uri"] == "gs://root/ingest/train_data"
    assert tags["kfp.run_id"] == "run-7f3a" and tags["kfp.task_id"] == "task-register-1"
    assert tags["code.version"] == kfp_mlops.__version__
    assert tags["image.train"] == images.image("train") and tags["image.serve"] == images.image("serve")
    assert tags["model.sha256"] == build_manifest(model_dir)["digest"]

    client = MlflowClient(tracking_uri=registry.tracking_uri)
    run = client.get_run(registration.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["base_model"] == "tiny" and json.loads(run.data.params["labels"]) == ["neg", "pos"]
    assert run.data.metrics == pytest.approx({**FINAL_METRICS, "train_loss": 0.3})
    history = client.get_metric_history(registration.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 0.7), (1, 0.5), (2, 0.3)]
    assert run.data.tags["kfp.run_id"] == "run-7f3a"
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == ["a" * 36]

    stored = {entry.path for entry in client.list_artifacts(registration.run_id, "model")}
    expected = {f"model/{name}" for name in build_manifest(model_dir)["files"]} | {f"model/{MANIFEST_NAME}"}
    assert stored == expected
    facts = json.loads(Path(client.download_artifacts(registration.run_id, REGISTRY_FILE)).read_text())
    assert facts["data"]["source_uris"] == INGEST_METADATA["source_uris"]
    assert facts["pipeline_run"] == {"run_id": "run-7f3a", "task_id": "task-register-1", "run_name": ""}

    assert register(registry, model_name, model_dir).version.version == "2"
    assert [info.version for info in registry.versions(model_name)] == ["1", "2"]


def test_the_git_commit_and_code_version_are_recorded(embedded, model_name, model_dir, monkeypatch):
    monkeypatch.setenv("KFP_MLOPS_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    registration = register(embedded, model_name, model_dir, code=None)
    assert registration.version.tags["code.git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    run = MlflowClient(tracking_uri=embedded.tracking_uri).get_run(registration.run_id)
    assert run.data.tags["mlflow.source.git.commit"] == "0123456789abcdef0123456789abcdef01234567"


def test_registering_with_an_alias_records_the_move(embedded, model_name, model_dir):
    registration = register(embedded, model_name, model_dir, alias="challenger", actor="kfp run run-7f3a")
    assert embedded.get_alias(model_name, "challenger").version == "1"
    assert embedded.get_alias(model_name, "champion") is None
    [event] = embedded.alias_history(model_name, "challenger")
    assert (event.action, event.version, event.previous_version, event.actor) == ("set", "1", None, "kfp run run-7f3a")
    assert registration.alias_event == event


def test_alias_moves_are_recorded_and_rollback_restores_the_previous_champion(registry, model_name, model_dir):
    for _ in range(3):
        register(registry, model_name, model_dir)
    moved = registry.set_alias(model_name, "champion", "1", reason="first release", actor="alice")
    registry.set_alias(model_name, "champion", "2", reason="better macro F1", actor="bob")
    registry.set_alias(model_name, "champion", "3", reason="fresh data", actor="kfp run r3")
    assert (moved.previous_version, moved.version, moved.actor, moved.reason) == (None, "1", "alice", "first release")
    assert registry.set_alias(model_name, "champion", "3", reason="again", actor="bob") is None  # not a move

    back = registry.rollback(model_name, "champion", reason="latency regression", actor="oncall")
    assert (back.action, back.previous_version, back.version) == ("rollback", "3", "2")
    assert registry.get_alias(model_name, "champion").version == "2"
    assert registry.rollback(model_name, "champion", actor="oncall").version == "1"
    with pytest.raises(RegistryError, match="has held only version 1; nothing to roll back to"):
        registry.rollback(model_name, "champion")

    history = registry.alias_history(model_name, "champion")
    assert [(e.action, e.previous_version, e.version) for e in history] == [
        ("set", None, "1"), ("set", "1", "2"), ("set", "2", "3"), ("rollback", "3", "2"), ("rollback", "2", "1"),
    ]  # fmt: skip
    assert [e.actor for e in history] == ["alice", "bob", "kfp run r3", "oncall", "oncall"]
    assert history[3].reason == "latency regression" and all(e.at for e in history)

    registry.set_alias(model_name, "champion", "3", reason="fixed", actor="bob")
    assert registry.rollback(model_name, "champion").version == "1"  # the rolled-back 2 and 3 are off the stack


def test_a_declined_version_is_recorded_and_leaves_the_alias_and_its_rollback_stack_alone(embedded, model_name, model_dir):
    for _ in range(3):
        register(embedded, model_name, model_dir)
    first = embedded.record_declined(model_name, "champion", "1", reason="not blessed by gate: x", actor="kfp run r1")
    assert (first.action, first.version, first.previous_version) == ("declined", "1", None)
    assert embedded.get_alias(model_name, "champion") is None
    embedded.set_alias(model_name, "champion", "1", reason="blessed", actor="kfp run r2")
    embedded.set_alias(model_name, "champion", "2", reason="blessed", actor="kfp run r3")
    declined = embedded.record_declined(model_name, "champion", "3", reason="deployment (kserve) failed", actor="kfp run r4")
    assert (declined.previous_version, declined.version, declined.reason) == ("2", "3", "deployment (kserve) failed")
    assert embedded.get_alias(model_name, "champion").version == "2"
    history = embedded.alias_history(model_name, "champion")
    assert [(e.action, e.previous_version, e.version) for e in history] == [
        ("declined", None, "1"), ("set", None, "1"), ("set", "1", "2"), ("declined", "2", "3"),
    ]  # fmt: skip
    assert embedded.rollback(model_name, "champion").version == "1"  # the declined 3 never held the alias
    lineage = embedded.lineage(model_name, "3")
    assert [e["action"] for e in lineage["alias_history"]] == ["declined"]
    with pytest.raises(RegistryError, match="has no version 9"):
        embedded.record_declined(model_name, "champion", "9", reason="x", actor="y")


def test_rollback_refuses_an_alias_moved_outside_the_registry(embedded, model_name, model_dir):
    for _ in range(2):
        register(embedded, model_name, model_dir)
    with pytest.raises(RegistryError, match="no recorded history"):
        embedded.rollback(model_name, "champion")
    embedded.set_alias(model_name, "champion", "1", reason="first", actor="alice")
    MlflowClient(tracking_uri=embedded.tracking_uri, registry_uri=embedded.tracking_uri).set_registered_model_alias(
        model_name, "champion", "2"
    )
    with pytest.raises(RegistryError, match="points at version 2, but its recorded history ends at version 1"):
        embedded.rollback(model_name, "champion")


def test_unknown_models_versions_and_bad_names_are_clear_errors(embedded, model_name, model_dir):
    with pytest.raises(RegistryError, match=f"no registered model named '{model_name}'"):
        embedded.versions(model_name)
    register(embedded, model_name, model_dir)
    with pytest.raises(RegistryError, match=r"has no version 7 \(versions: 1\)"):
        embedded.set_alias(model_name, "champion", "7", reason="typo", actor="alice")
    with pytest.raises(RegistryError, match="alias 'latest' is not allowed"):
        embedded.set_alias(model_name, "latest", "1", reason="", actor="alice")
    with pytest.raises(RegistryError, match="model name 'a/b' is not allowed"):
        embedded.register("a/b", model_dir)


def test_lineage_goes_from_version_to_run_to_data_to_pipeline_run(registry, model_name, model_dir):
    register(registry, model_name, model_dir)
    registry.set_alias(model_name, "champion", "1", reason="first release", actor="alice")
    lineage = registry.lineage(model_name, "1")
    assert lineage["model"]["uri"] == f"models:/{model_name}/1" and lineage["model"]["aliases"] == ["champion"]
    assert lineage["training_run"]["experiment"] == model_name
    assert lineage["training_run"]["metrics"]["eval_accuracy"] == pytest.approx(0.9375)
    assert lineage["data"]["sha256"] == "a" * 64 and lineage["data"]["source_uris"] == INGEST_METADATA["source_uris"]
    assert lineage["code"]["images"]["train"] == images.image("train")
    assert lineage["pipeline_run"] == {"run_id": "run-7f3a", "task_id": "task-register-1", "run_name": ""}
    assert [e["reason"] for e in lineage["alias_history"]] == ["first release"]


def test_download_is_verified_and_found_again_by_its_content(registry, model_name, model_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    (model_dir / "extra").mkdir()  # a nested file, unique among this session's models
    (model_dir / "extra" / "training_args.json").write_text(json.dumps({"run": model_name}))
    register(registry, model_name, model_dir)
    downloaded = registry.download(model_name, "1", tmp_path / "champion")
    record = json.loads((downloaded / REGISTRY_FILE).read_text())
    assert (record["model_name"], record["version"], record["model_uri"]) == (model_name, "1", f"models:/{model_name}/1")
    assert build_manifest(downloaded) == build_manifest(model_dir)
    assert [(info.name, info.version) for info in registry.find_by_content(downloaded)] == [(model_name, "1")]

    tokenizer = AutoTokenizer.from_pretrained(downloaded)
    batch = tokenizer(["a great card", "declined twice"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        original = AutoModelForSequenceClassification.from_pretrained(model_dir)(**batch).logits
        restored = AutoModelForSequenceClassification.from_pretrained(downloaded)(**batch).logits
    assert torch.equal(original, restored)

    with pytest.raises(RegistryError, match="already exists"):
        registry.download(model_name, "1", downloaded)


def test_a_corrupted_stored_model_fails_the_download(embedded, model_name, model_dir, tmp_path):
    registration = register(embedded, model_name, model_dir)
    stored = Path(registration.version.source.removeprefix("file://")) / "config.json"
    stored.write_text(stored.read_text().replace('"hidden_size": 32', '"hidden_size": 33'))
    with pytest.raises(ModelArtifactError, match=r"downloaded models:/.*/1 does not match .*config\.json has sha256"):
        embedded.download(model_name, "1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["missing", "empty", "altered", "extra"])
def test_a_missing_or_altered_model_registers_nothing(registry, model_name, model_dir, tmp_path, damage):
    (model_dir / MANIFEST_NAME).write_text(json.dumps(build_manifest(model_dir)))
    expected = {
        "missing": "model directory .* is missing",
        "empty": "holds no model files",
        "altered": r"does not match its checksum manifest: model\.safetensors has sha256",
        "extra": r"does not match its checksum manifest: notes\.txt is not in the manifest",
    }[damage]
    if damage == "missing":
        shutil.rmtree(model_dir)
    elif damage == "empty":
        shutil.rmtree(model_dir)
        model_dir.mkdir()
    elif damage == "altered":
        with (model_dir / "model.safetensors").open("r+b") as weights:
            weights.seek(-4, 2)
            weights.write(b"\x00\x01\x02\x03")
    else:
        (model_dir / "notes.txt").write_text("not part of the model")
    with pytest.raises(ModelArtifactError, match=expected):
        register(registry, model_name, model_dir)
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    assert client.search_registered_models(filter_string=f"name = '{model_name}'") == []
    assert client.get_experiment_by_name(model_name) is None


def test_names_mlflow_refuses_are_made_safe(embedded, model_name, model_dir):
    metrics = {"slice:channel=web:accuracy": 0.9, "eval_accuracy": 0.8}
    registration = register(embedded, model_name, model_dir, metrics=metrics, params={"lr@peak": 1e-4})
    run = MlflowClient(tracking_uri=embedded.tracking_uri).get_run(registration.run_id)
    assert run.data.metrics == pytest.approx({"slice:channel_web:accuracy": 0.9, "eval_accuracy": 0.8})
    assert run.data.params == {"lr_peak": "0.0001"}


def test_non_numeric_metrics_register_nothing(embedded, model_name, model_dir):
    with pytest.raises(ValueError, match=r"not numeric: eval_accuracy, train_loss\[1\]"):
        register(embedded, model_name, model_dir, metrics={"eval_accuracy": "high"}, step_metrics={"train_loss": [0.5, None]})
    assert MlflowClient(tracking_uri=embedded.tracking_uri).get_experiment_by_name(model_name) is None


def test_code_version_of_this_checkout():
    code = CodeVersion.current()
    assert code.package_version == kfp_mlops.__version__
    assert code.images == {"train": images.image("train"), "serve": images.image("serve")}
