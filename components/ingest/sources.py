"""Resolve an ingest source (local path, local glob, gs:// object, prefix or glob) to files, and fetch them.

GCS objects are downloaded to a temporary file one at a time, streamed in chunks with the client
library's retry policy and checksum validation, so memory stays bounded whatever the object's size.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from components.ingest.errors import IngestError

FORMATS = ("csv", "parquet", "jsonl")
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
GLOB_CHARS = "*?["
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "local-emulator"


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is (a local path or gs:// URI) and how to parse it."""

    uri: str
    file_format: str
    generation: int | None = None  # the GCS object generation listed, pinned when downloading


def format_of(name: str) -> str | None:
    """The format a file name's extension implies, or None for an unknown extension."""
    return EXTENSIONS.get(os.path.splitext(name)[1].lower())


def resolve_sources(source: str, file_format: str = "auto") -> list[SourceFile]:
    """The files ``source`` names, sorted by URI, each with its format.

    ``source`` is a local file, directory or glob (``data/*.csv``, ``data/**/*.parquet``) or a
    ``gs://bucket/object``, ``gs://bucket/prefix`` (every data file under ``prefix/``) or
    ``gs://bucket/path/*.csv`` (a GCS ``matchGlob``). ``file_format`` is one of :data:`FORMATS` or
    ``"auto"`` (by extension; every file must then have the same one).
    """
    if file_format != "auto" and file_format not in FORMATS:
        raise IngestError(f"file_format {file_format!r} is not one of: auto, {', '.join(FORMATS)}")
    if not source.strip():
        raise IngestError("source is empty: give a local path or glob, or a gs:// URI")
    uris: list[tuple[str, int | None]]
    if source.startswith("gs://"):
        uris, from_listing = _resolve_gcs(source)
    else:
        uris, from_listing = _resolve_local(source)
    if from_listing:
        # A directory or prefix may hold markers such as _SUCCESS: keep the data files only.
        uris = [(uri, gen) for uri, gen in uris if _matches_format(uri, file_format)]
        if not uris:
            wanted = file_format if file_format != "auto" else "/".join(EXTENSIONS)
            raise IngestError(f"no {wanted} files under {source}")
    files = [SourceFile(uri, _format_for(uri, file_format), gen) for uri, gen in sorted(uris)]
    formats = sorted({f.file_format for f in files})
    if len(formats) > 1:
        raise IngestError(f"{source} mixes formats ({', '.join(formats)}); ingest one format at a time")
    return files


def _matches_format(uri: str, file_format: str) -> bool:
    found = format_of(uri)
    return found is not None and file_format in ("auto", found)


def _format_for(uri: str, file_format: str) -> str:
    if file_format != "auto":
        return file_format
    found = format_of(uri)
    if found is None:
        formats = ", ".join(FORMATS)
        raise IngestError(f"{uri}: cannot tell the format from the extension; set file_format to one of {formats}")
    return found


def _resolve_local(source: str) -> tuple[list[tuple[str, int | None]], bool]:
    if any(char in source for char in GLOB_CHARS):
        paths = [p for p in glob.glob(source, recursive=True) if os.path.isfile(p)]
        if not paths:
            raise IngestError(f"no file matches {source}")
        return [(os.path.abspath(p), None) for p in paths], False
    if os.path.isdir(source):
        names = [n for n in os.listdir(source) if not n.startswith(".") and os.path.isfile(os.path.join(source, n))]
        return [(os.path.abspath(os.path.join(source, n)), None) for n in names], True
    if not os.path.isfile(source):
        raise IngestError(f"file not found: {source}")
    return [(os.path.abspath(source), None)], False


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/path`` -> ``("bucket", "path")``."""
    bucket, _, path = uri.removeprefix("gs://").partition("/")
    if not bucket:
        raise IngestError(f"{uri}: no bucket name; expected gs://bucket/path")
    return bucket, path


def storage_client():
    """A GCS client: default credentials, or anonymous ones against ``STORAGE_EMULATOR_HOST`` when set."""
    from google.cloud import storage

    if os.environ.get(EMULATOR_ENV):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
    return storage.Client()


def _resolve_gcs(source: str) -> tuple[list[tuple[str, int | None]], bool]:
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, path = split_gcs_uri(source)
    glob_at = min((path.find(c) for c in GLOB_CHARS if c in path), default=-1)
    client = storage_client()
    if glob_at >= 0:
        blobs = _list(client.list_blobs(bucket, prefix=path[:glob_at], match_glob=path, retry=DEFAULT_RETRY), source)
        found = [(f"gs://{bucket}/{b.name}", b.generation) for b in blobs if not b.name.endswith("/")]
        if not found:
            raise IngestError(f"no object matches {source}")
        return found, False
    blobs = _list(client.list_blobs(bucket, prefix=path, retry=DEFAULT_RETRY), source)
    exact = [b for b in blobs if b.name == path]
    if exact:
        return [(source, exact[0].generation)], False
    folder = path.rstrip("/") + "/" if path else ""
    under = [
        (f"gs://{bucket}/{b.name}", b.generation)
        for b in blobs
        if b.name.startswith(folder) and not b.name.endswith("/")
    ]
    if not under:
        raise IngestError(f"no object {source} (and no objects under it) in bucket {bucket!r}")
    return under, True


def _list(blobs, source: str) -> list:
    """Materialise a blob listing, turning a missing bucket or a denied request into an IngestError."""
    from google.api_core import exceptions

    bucket, _ = split_gcs_uri(source)
    try:
        return list(blobs)
    except exceptions.NotFound as err:
        raise IngestError(f"bucket {bucket!r} does not exist (source {source})") from err
    except exceptions.Forbidden as err:
        raise IngestError(f"access denied listing {source}: {err.message}") from err


@contextlib.contextmanager
def local_copy(file: SourceFile) -> Iterator[str]:
    """A local path holding ``file``'s bytes: the file itself, or a temporary download of a GCS object."""
    if not file.uri.startswith("gs://"):
        yield file.uri
        return
    from google.api_core import exceptions
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, name = split_gcs_uri(file.uri)
    blob = storage_client().bucket(bucket).blob(name)
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        local = os.path.join(tmp, os.path.basename(name) or "object")
        try:
            with open(local, "wb") as out:
                blob.download_to_file(out, if_generation_match=file.generation, retry=DEFAULT_RETRY)
        except exceptions.NotFound as err:
            raise IngestError(f"object {file.uri} does not exist") from err
        except exceptions.PreconditionFailed as err:
            raise IngestError(f"object {file.uri} changed while ingesting; rerun") from err
        except exceptions.Forbidden as err:
            raise IngestError(f"access denied reading {file.uri}: {err.message}") from err
        yield local
