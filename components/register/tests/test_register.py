"""The register component's logic: KFP artifact metadata in, a model version (with challenger alias) out."""

from __future__ import annotations

import hashlib
import json

import pytest

from components.register.manifest import ModelArtifactError
from components.register.register import register_trained_model
from components.register.registry import ModelRegistry
from components.register.tests.samples import INGEST_METADATA, MODEL_METADATA, free_port

KFP_METRICS = {"eval_loss": 0.21, "eval_accuracy": 0.9375, "eval_macro_f1": 0.9373, "train_seconds": 4.2}


def test_the_component_logic_registers_with_the_pipeline_facts(embedded_uri, model_name, model_dir, tmp_path):
    train_data = tmp_path / "train_data"
    train_data.write_bytes(b"PAR1 stand-in")
    registered = register_trained_model(
        str(model_dir),
        MODEL_METADATA,
        str(train_data),
        "gs://root/pipeline/ingest/train_data",
        INGEST_METADATA,
        {**KFP_METRICS, "display_name": "metrics"},  # non-numbers in a Metrics artifact's metadata are not metrics
        model_name,
        tracking_uri=embedded_uri,
        kfp_run_id="3f1c-run",
        kfp_task_id="9a2e-task",
        kfp_run_name="text-classification-2026-05-01-10-00-00-000000",
    )
    assert registered == (("1", f"models:/{model_name}/1"))
    registry = ModelRegistry(embedded_uri)
    lineage = registry.lineage(model_name, "1")
    assert lineage["pipeline_run"] == {
        "run_id": "3f1c-run", "task_id": "9a2e-task", "run_name": "text-classification-2026-05-01-10-00-00-000000",
    }  # fmt: skip
    assert lineage["data"]["sha256"] == INGEST_METADATA["sha256"]
    assert lineage["data"]["artifact_uri"] == "gs://root/pipeline/ingest/train_data"
    assert lineage["training_run"]["metrics"] == pytest.approx(KFP_METRICS)
    assert lineage["training_run"]["params"]["max_length"] == "32"
    [event] = registry.alias_history(model_name, "challenger")
    assert (event.version, event.actor) == ("1", "kfp run 3f1c-run task 9a2e-task")

    again = register_trained_model(
        str(model_dir), MODEL_METADATA, str(train_data), "", INGEST_METADATA, KFP_METRICS, model_name,
        tracking_uri=embedded_uri, alias="",
    )  # fmt: skip
    assert again.version == "2"
    assert registry.get_alias(model_name, "challenger").version == "1"


def test_a_dataset_without_ingest_metadata_is_versioned_by_its_bytes(embedded_uri, model_name, model_dir, tmp_path):
    train_data = tmp_path / "imported.parquet"
    train_data.write_bytes(b"rows from an importer")
    register_trained_model(
        str(model_dir), MODEL_METADATA, str(train_data), "gs://bucket/imported.parquet", {}, KFP_METRICS, model_name,
        tracking_uri=embedded_uri,
    )  # fmt: skip
    data = ModelRegistry(embedded_uri).lineage(model_name, "1")["data"]
    assert data["sha256"] == hashlib.sha256(b"rows from an importer").hexdigest()
    assert data["hash_of"] == "file-bytes" and data["source_uris"] == []


def test_a_missing_model_fails_before_the_registry_is_contacted(model_name, tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelArtifactError, match="model directory .*/model is missing"):
        register_trained_model(
            str(tmp_path / "model"), MODEL_METADATA, str(tmp_path / "data"), "", INGEST_METADATA, KFP_METRICS,
            model_name, tracking_uri=unreachable,
        )  # fmt: skip


def test_credentials_in_the_tracking_uri_are_refused(model_name, model_dir, tmp_path):
    with pytest.raises(ValueError, match="must not carry credentials .* MLFLOW_TRACKING_USERNAME"):
        register_trained_model(
            str(model_dir), MODEL_METADATA, str(tmp_path / "data"), "", INGEST_METADATA, KFP_METRICS, model_name,
            tracking_uri="https://admin:s3cret@mlflow.example.com",
        )  # fmt: skip


def test_ingest_metadata_becomes_the_data_version_and_long_source_lists_are_cut_to_fit_a_tag(tmp_path):
    from components.register.register import data_version

    data = data_version(INGEST_METADATA, str(tmp_path / "not-read"), "gs://root/train_data")
    assert data.rows == 48 and data.hash_of == "ingest-content"
    assert data.tags()["data.source_uris"] == json.dumps(INGEST_METADATA["source_uris"])
    assert data.tags()["data.source_count"] == "2"

    many = [f"gs://reviews/day={day:05d}/part-0.parquet" for day in range(10_000)]
    tags = data_version({**INGEST_METADATA, "source_uris": many}, "", "").tags()
    kept = json.loads(tags["data.source_uris"])
    assert kept == many[: len(kept)] and 0 < len(tags["data.source_uris"]) <= 90_000
    assert tags["data.source_count"] == "10000"
