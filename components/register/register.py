"""The register component's logic: KFP artifacts (model, train data, metrics) in, a registered model version out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from components.register.locations import check_task_tracking_uri
from components.register.manifest import file_sha256
from components.register.registry import DataVersion, ModelRegistry, PipelineRun


class Registered(NamedTuple):
    version: str
    model_uri: str


def data_version(metadata: Mapping[str, Any], path: str, uri: str) -> DataVersion:
    """Ingest's data version from the Dataset's metadata; for a dataset without one (e.g. imported with
    ``dsl.importer``), the sha256 of the file's bytes."""
    data = DataVersion.from_metadata(metadata, artifact_uri=uri)
    if data.sha256 or not Path(path).is_file():
        return data
    return replace(data, sha256=file_sha256(Path(path)), hash_of="file-bytes")


def kfp_actor(kfp_run_id: str, kfp_task_id: str) -> str:
    """Who moves an alias from a pipeline task: ``kfp run <id> task <id>`` (empty without ids)."""
    return " ".join(f"{what} {value}" for what, value in (("kfp run", kfp_run_id), ("task", kfp_task_id)) if value)


def register_trained_model(
    model_dir: str,
    model_metadata: Mapping[str, Any],
    train_data_path: str,
    train_data_uri: str,
    train_data_metadata: Mapping[str, Any],
    metrics: Mapping[str, Any],
    model_name: str,
    *,
    tracking_uri: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
    kfp_run_name: str = "",
    alias: str = "challenger",
) -> Registered:
    """Register ``model_dir`` as a new version of ``model_name``; parameters are the model artifact's metadata
    (base model, labels, max_length, ...), metrics the numeric entries of the Metrics artifact. A missing
    model directory, or one that does not match its carried checksum manifest, fails before the registry is
    contacted. A ``tracking_uri`` with credentials in it is refused: they belong in the environment."""
    check_task_tracking_uri(tracking_uri)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    actor = kfp_actor(kfp_run_id, kfp_task_id)
    registration = ModelRegistry(tracking_uri).register(
        model_name,
        model_dir,
        params=dict(model_metadata),
        metrics=numbers,
        data=data_version(train_data_metadata, train_data_path, train_data_uri),
        pipeline_run=PipelineRun(kfp_run_id, kfp_task_id, kfp_run_name),
        alias=alias,
        actor=actor,
    )
    return Registered(registration.version.version, registration.version.model_uri)
