"""The reference_data component's logic: which Parquet file holds the served model's training data, and a copy of it.

An explicit ``reference_data`` URI wins. Otherwise the model registry says: the version that ``alias`` (by default
``champion``, the served version) of ``registry_model_name`` points at, and the train split that register recorded
for it (the version tag ``data.artifact_uri``). When the registry recorded the sha256 of the file's bytes
(``data.hash_of`` = ``file-bytes``) the copy must match it; ingest's content hash (``ingest-content``) is passed on
as recorded.

URIs: a local path, ``file://`` or ``gs://`` (read with pyarrow's filesystems, as the drift component reads its
payload log). The copy is written beside the destination and moved into place only once complete and checked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyarrow import ArrowException, fs

from components.drift.detectors import DriftInputError
from components.drift.payloads import open_location
from components.register.locations import check_task_tracking_uri

FILE_BYTES = "file-bytes"
"""``data.hash_of`` when the registry holds the sha256 of the train split's file: the copy can be verified."""
ARTIFACT_URI_TAG = "data.artifact_uri"
_CHUNK_BYTES = 1 << 20


class ReferenceDataError(ValueError):
    """No reference data can be had as asked; the message names the parameter, model version or URI at fault."""


@dataclass(frozen=True)
class ReferenceSource:
    """Where the reference data comes from: an explicit URI, or a registered model version's train split."""

    uri: str
    model_name: str = ""
    model_version: str = ""
    alias: str = ""
    sha256: str = ""
    """The registry's ``data.sha256`` of the version's train split."""
    hash_of: str = ""
    """The registry's ``data.hash_of``: ``file-bytes`` or ``ingest-content`` (empty when it recorded none)."""

    @property
    def from_registry(self) -> bool:
        return bool(self.model_name)

    def describe(self) -> str:
        if not self.from_registry:
            return f"reference_data {self.uri!r}"
        return (
            f"{self.uri!r}, the training data recorded for model {self.model_name!r} version {self.model_version} "
            f"(alias {self.alias!r})"
        )

    def metadata(self) -> dict[str, Any]:
        if not self.from_registry:
            return {"source_uri": self.uri, "resolved_by": "reference_data"}
        return {
            "source_uri": self.uri,
            "resolved_by": "registry",
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": f"models:/{self.model_name}/{self.model_version}",
            "alias": self.alias,
            "data_sha256": self.sha256,
            "data_hash_of": self.hash_of,
        }


def fetch_reference_data(
    destination: str,
    reference_data: str = "",
    registry_model_name: str = "",
    alias: str = "champion",
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Copy the reference Parquet file to ``destination`` and return the metadata saying where it came from.

    ``reference_data`` (a URI) wins; else the train split recorded for the version ``alias`` of
    ``registry_model_name`` points at (``tracking_uri``: as in register). Nothing is written on an error.
    """
    return copy_reference(resolve_reference(reference_data, registry_model_name, alias, tracking_uri), destination)


def resolve_reference(reference_data: str, registry_model_name: str, alias: str, tracking_uri: str) -> ReferenceSource:
    if reference_data.strip():
        return ReferenceSource(uri=reference_data.strip())
    if not registry_model_name.strip():
        raise ReferenceDataError(
            "no reference data: reference_data is empty and no registry_model_name is given; give reference_data "
            "(the training split's Parquet file: a local path or gs:// URI) or registry_model_name (the served "
            "model, whose champion's training split is used)"
        )
    return registered_training_data(registry_model_name.strip(), alias, tracking_uri)


def registered_training_data(model_name: str, alias: str, tracking_uri: str) -> ReferenceSource:
    """The train split register recorded for the version ``alias`` of ``model_name`` points at."""
    from components.register.registry import ModelRegistry, check_alias

    check_task_tracking_uri(tracking_uri)
    check_alias(alias)
    version = ModelRegistry(tracking_uri).get_alias(model_name, alias)
    if version is None:
        raise ReferenceDataError(
            f"alias {alias!r} of model {model_name!r} is not set: no version holds it yet (deploy one first), "
            "so there is no training data to compare with; give reference_data instead"
        )
    uri = version.tags.get(ARTIFACT_URI_TAG, "")
    if not uri:
        raise ReferenceDataError(
            f"model {model_name!r} version {version.version} (alias {alias!r}) has no recorded training data URI "
            f"(version tag {ARTIFACT_URI_TAG}); give reference_data instead"
        )
    return ReferenceSource(
        uri=uri,
        model_name=model_name,
        model_version=version.version,
        alias=alias,
        sha256=version.tags.get("data.sha256", ""),
        hash_of=version.tags.get("data.hash_of", ""),
    )


def copy_reference(source: ReferenceSource, destination: str) -> dict[str, Any]:
    """Copy ``source``'s file to ``destination`` (via a partial file beside it), checked: it exists, matches the
    registry's file-bytes sha256 when one was recorded, and is Parquet. Returns the copy's metadata."""
    filesystem, path = _open(source)
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as copy:
            file_sha256 = _copy_hashing(filesystem, path, copy, source)
        verified = _verify(source, file_sha256)
        rows = _parquet_rows(partial, source)
        os.replace(partial, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(partial)
        raise
    metadata = source.metadata() | {"file_sha256": file_sha256, "rows": rows}
    if source.from_registry:
        metadata["data_sha256_verified"] = verified
    return metadata


def _open(source: ReferenceSource) -> tuple[fs.FileSystem, str]:
    try:
        filesystem, path = open_location(source.uri)
    except DriftInputError as error:
        raise ReferenceDataError(f"{source.describe()}: {error}") from None
    try:
        kind = filesystem.get_file_info(path).type
    except OSError as error:
        raise ReferenceDataError(f"cannot reach {source.describe()}: {error}") from error
    if kind == fs.FileType.NotFound:
        raise ReferenceDataError(f"{source.describe()} does not exist")
    if kind != fs.FileType.File:
        raise ReferenceDataError(f"{source.describe()} is not a file; give the training split's Parquet file")
    return filesystem, path


def _copy_hashing(filesystem: fs.FileSystem, path: str, copy, source: ReferenceSource) -> str:
    digest = hashlib.sha256()
    try:
        with filesystem.open_input_stream(path) as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
                copy.write(chunk)
    except OSError as error:
        raise ReferenceDataError(f"cannot read {source.describe()}: {error}") from error
    return digest.hexdigest()


def _verify(source: ReferenceSource, file_sha256: str) -> bool:
    """True when the bytes were checked against the registry's record (only a file-bytes sha256 can be)."""
    if source.hash_of != FILE_BYTES:
        return False
    if file_sha256 != source.sha256:
        raise ReferenceDataError(
            f"{source.describe()} has changed since it was registered: its sha256 is {file_sha256}, the registry "
            f"recorded {source.sha256} (data.hash_of {FILE_BYTES})"
        )
    return True


def _parquet_rows(path: str, source: ReferenceSource) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except (ArrowException, OSError) as error:
        raise ReferenceDataError(f"{source.describe()} is not a Parquet file: {error}") from None
