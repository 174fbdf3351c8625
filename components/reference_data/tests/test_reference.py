"""reference_data against a real MLflow registry: an explicit URI wins, the champion's recorded training split is
copied (its file-bytes sha256 verified, an ingest content hash passed on), and every missing piece is a clear
error that leaves no output behind."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from pyarrow import fs

from components.reference_data.reference import ReferenceDataError, fetch_reference_data
from components.reference_data.tests.conftest import MODEL_NAME, write_split
from components.register.register import data_version
from components.register.registry import DataVersion, ModelRegistry, RegistryError
from components.register.tests.samples import free_port

UNREACHABLE = "http://127.0.0.1:9"
"""A tracking server where nothing listens: any registry call would fail."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register_version(registry: ModelRegistry, model_dir: Path, split: Path | None, *, champion: bool = True) -> str:
    """Register a version trained on ``split`` as the register component records an imported dataset
    (file-bytes sha256, the split's URI); with ``champion``, it becomes the served version."""
    data = data_version({}, str(split), str(split)) if split else None
    version = registry.register(MODEL_NAME, model_dir, data=data, alias="challenger", actor="test").version.version
    if champion:
        registry.set_alias(MODEL_NAME, "champion", version, reason="deployed", actor="test")
    return version


def assert_nothing_written(destination: Path) -> None:
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == [], "no partial file is left behind"


def test_an_explicit_uri_wins_and_the_registry_is_not_contacted(tmp_path, destination):
    split = write_split(tmp_path / "train.parquet", rows=6, seed=1)
    metadata = fetch_reference_data(str(destination), f"file://{split}", MODEL_NAME, tracking_uri=UNREACHABLE)
    assert destination.read_bytes() == split.read_bytes()
    assert metadata == {
        "source_uri": f"file://{split}", "resolved_by": "reference_data", "file_sha256": sha256_of(split), "rows": 6,
    }  # fmt: skip


def test_the_champions_training_split_is_copied_and_its_file_bytes_verified(registry, model_dir, tmp_path, destination):
    first = write_split(tmp_path / "run-1" / "train_data", rows=4, seed=1)
    second = write_split(tmp_path / "run-2" / "train_data", rows=8, seed=2)
    register_version(registry, model_dir, first)
    register_version(registry, model_dir, second)  # a retrain promoted a new champion

    metadata = fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert destination.read_bytes() == second.read_bytes()
    assert metadata == {
        "source_uri": str(second), "resolved_by": "registry", "model_name": MODEL_NAME, "model_version": "2",
        "model_uri": f"models:/{MODEL_NAME}/2", "alias": "champion", "data_sha256": sha256_of(second),
        "data_hash_of": "file-bytes", "data_sha256_verified": True, "file_sha256": sha256_of(second), "rows": 8,
    }  # fmt: skip


def test_another_alias_can_be_followed(registry, model_dir, tmp_path, destination):
    served = write_split(tmp_path / "served.parquet", rows=4, seed=1)
    candidate = write_split(tmp_path / "candidate.parquet", rows=6, seed=2)
    register_version(registry, model_dir, served)
    register_version(registry, model_dir, candidate, champion=False)
    metadata = fetch_reference_data(str(destination), "", MODEL_NAME, "challenger", registry.tracking_uri)
    assert (metadata["model_version"], metadata["alias"], metadata["rows"]) == ("2", "challenger", 6)


def test_a_training_split_changed_since_registration_is_refused(registry, model_dir, tmp_path, destination):
    split = write_split(tmp_path / "train.parquet", rows=4, seed=1)
    register_version(registry, model_dir, split)
    recorded = sha256_of(split)
    write_split(split, rows=4, seed=9)  # still Parquet, other rows
    with pytest.raises(ReferenceDataError) as refused:
        fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert str(refused.value) == (
        f"{str(split)!r}, the training data recorded for model {MODEL_NAME!r} version 1 (alias 'champion') has changed "
        f"since it was registered: its sha256 is {sha256_of(split)}, the registry recorded {recorded} "
        "(data.hash_of file-bytes)"
    )
    assert_nothing_written(destination)


def test_an_ingest_content_hash_is_passed_on_as_recorded(registry, model_dir, tmp_path, destination):
    split = write_split(tmp_path / "train_data", rows=4, seed=1)
    data = DataVersion.from_metadata({"sha256": "c" * 64, "rows": 4}, artifact_uri=str(split))
    registry.register(MODEL_NAME, model_dir, data=data, alias="champion", actor="test")
    metadata = fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert (metadata["data_sha256"], metadata["data_hash_of"]) == ("c" * 64, "ingest-content")
    assert metadata["data_sha256_verified"] is False and metadata["file_sha256"] == sha256_of(split)
    assert destination.read_bytes() == split.read_bytes()


def test_the_champion_is_resolved_through_a_tracking_server(mlflow_server, model_dir, tmp_path, destination):
    split = write_split(tmp_path / "train_data", rows=4, seed=3)
    registry = ModelRegistry(mlflow_server)
    name = f"served-{tmp_path.name}"[:60]
    version = registry.register(name, model_dir, data=data_version({}, str(split), str(split)), actor="test").version
    registry.set_alias(name, "champion", version.version, reason="deployed", actor="test")
    metadata = fetch_reference_data(str(destination), "", name, tracking_uri=mlflow_server)
    assert (metadata["model_name"], metadata["data_sha256_verified"]) == (name, True)
    assert destination.read_bytes() == split.read_bytes()


# --- errors: each names what is missing, and nothing is written ----------------------------------------------


def test_neither_reference_data_nor_a_model_name_is_refused(destination):
    with pytest.raises(ReferenceDataError, match=r"^no reference data: reference_data is empty and no registry_model_name"):
        fetch_reference_data(str(destination), "", "")
    assert not destination.exists()


def test_an_alias_not_set_is_refused(registry, model_dir, tmp_path, destination):
    register_version(registry, model_dir, write_split(tmp_path / "train.parquet", 4, 1), champion=False)
    with pytest.raises(ReferenceDataError, match=rf"^alias 'champion' of model '{MODEL_NAME}' is not set: no version"):
        fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert not destination.exists()


def test_an_unknown_model_is_refused_naming_it(registry, destination):
    with pytest.raises(RegistryError, match="no registered model named 'nobody'"):
        fetch_reference_data(str(destination), "", "nobody", tracking_uri=registry.tracking_uri)


def test_a_version_without_a_recorded_training_data_uri_is_refused(registry, model_dir, destination):
    register_version(registry, model_dir, None)
    with pytest.raises(ReferenceDataError) as refused:
        fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert str(refused.value) == (
        f"model {MODEL_NAME!r} version 1 (alias 'champion') has no recorded training data URI "
        "(version tag data.artifact_uri); give reference_data instead"
    )
    assert not destination.exists()


def test_a_recorded_uri_that_no_longer_exists_is_refused_naming_the_version(registry, model_dir, tmp_path, destination):
    split = write_split(tmp_path / "train_data", rows=4, seed=1)
    register_version(registry, model_dir, split)
    split.unlink()
    with pytest.raises(ReferenceDataError, match=rf"^'{split}', the training data recorded for model '{MODEL_NAME}' "
                       r"version 1 \(alias 'champion'\) does not exist$"):  # fmt: skip
        fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert not destination.exists()


def test_an_explicit_uri_that_does_not_exist_is_refused(tmp_path, destination):
    missing = tmp_path / "nowhere" / "train.parquet"
    with pytest.raises(ReferenceDataError, match=rf"^reference_data '{missing}' does not exist$"):
        fetch_reference_data(str(destination), str(missing))
    assert not destination.exists()


def test_a_directory_a_non_parquet_file_and_an_unsupported_scheme_are_refused(tmp_path, destination):
    with pytest.raises(ReferenceDataError, match="is not a file; give the training split's Parquet file"):
        fetch_reference_data(str(destination), str(tmp_path))
    (tmp_path / "train.csv").write_text("text,category\nhello,billing\n")
    with pytest.raises(ReferenceDataError, match=r"train\.csv' is not a Parquet file"):
        fetch_reference_data(str(destination), str(tmp_path / "train.csv"))
    assert_nothing_written(destination)
    with pytest.raises(ReferenceDataError, match=r"only local paths and gs:// URIs are supported, not s3://"):
        fetch_reference_data(str(destination), "s3://bucket/train.parquet")


def test_a_tracking_uri_with_credentials_is_refused(destination):
    with pytest.raises(ValueError, match="tracking_uri must not carry credentials"):
        fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri="http://user:secret@mlflow:5000")


# --- gs:// (gcp-storage-emulator, pyarrow's GCS filesystem) ------------------------------------------------------


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[fs.GcsFileSystem]:
    """A GCS emulator with bucket ``runs``; STORAGE_EMULATOR_HOST points at it."""
    address = f"127.0.0.1:{free_port()}"
    host, port = address.split(":")
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", host, "--port", port, "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _answers(address):
            assert process.poll() is None, "the GCS emulator exited"
            assert time.monotonic() < deadline, "the GCS emulator did not start in 30 s"
            time.sleep(0.05)  # poll interval while the emulator starts
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{address}")
        requests.post(f"http://{address}/storage/v1/b", params={"project": "test"}, json={"name": "runs"}, timeout=5).raise_for_status()
        yield fs.GcsFileSystem(anonymous=True, endpoint_override=address, scheme="http")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(address: str) -> bool:
    try:
        return requests.get(f"http://{address}/", timeout=1).text == "OK"
    except requests.ConnectionError:
        return False


def test_a_champion_trained_on_gcs_data_is_copied_from_gcs(gcs, registry, model_dir, tmp_path, destination):
    split = write_split(tmp_path / "train_data", rows=6, seed=4)
    uri = "gs://runs/text-classification-1/ingest/train_data"
    with gcs.open_output_stream(uri.removeprefix("gs://")) as upload:
        upload.write(split.read_bytes())
    data = DataVersion(sha256=sha256_of(split), hash_of="file-bytes", artifact_uri=uri)
    registry.register(MODEL_NAME, model_dir, data=data, alias="champion", actor="test")
    metadata = fetch_reference_data(str(destination), "", MODEL_NAME, tracking_uri=registry.tracking_uri)
    assert (metadata["source_uri"], metadata["data_sha256_verified"]) == (uri, True)
    assert pq.read_table(destination).equals(pq.read_table(split))

    with pytest.raises(ReferenceDataError, match="^reference_data 'gs://runs/elsewhere/train_data' does not exist$"):
        fetch_reference_data(str(destination.with_name("other")), "gs://runs/elsewhere/train_data")
