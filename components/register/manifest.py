"""A sha256 manifest of a model directory: what was registered is byte for byte what was trained.

The manifest lists every file under the directory (relative POSIX path → sha256 and size), except the
manifest itself and ``registry.json`` (registry facts written next to a downloaded copy). Its digest, the
sha256 of the sorted ``path sha256`` lines, identifies the model's content: the same files give the same
digest wherever they are, so a local model directory can be traced back to its registered version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "sha256_manifest.json"
REGISTRY_FILE = "registry.json"
_NOT_MODEL_FILES = {MANIFEST_NAME, REGISTRY_FILE}
_CHUNK = 1 << 20


class ModelArtifactError(ValueError):
    """The model directory is missing, empty, or does not match its checksum manifest."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(model_dir: str | Path) -> dict[str, Any]:
    """``{"algorithm": "sha256", "digest": ..., "files": {path: {"sha256", "size"}}}`` of a model directory."""
    root = Path(model_dir)
    if not root.is_dir():
        what = "a file, not a directory" if root.exists() else "missing"
        raise ModelArtifactError(f"model directory {root} is {what}")
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative not in _NOT_MODEL_FILES:
            files[relative] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    if not files:
        raise ModelArtifactError(f"model directory {root} holds no model files")
    return {"algorithm": "sha256", "digest": manifest_digest(files), "files": files}


def manifest_digest(files: dict[str, dict[str, Any]]) -> str:
    lines = "".join(f"{path} {entry['sha256']}\n" for path, entry in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if manifest.get("algorithm") != "sha256" or not isinstance(files, dict):
            raise ValueError("not a sha256 manifest")
        if manifest.get("digest") != manifest_digest(files):
            raise ValueError("its digest does not match its file list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelArtifactError(f"checksum manifest {path} is unreadable: {error}") from error
    return manifest


def compare(expected: dict[str, Any], actual: dict[str, Any], where: str) -> None:
    """Raise naming every missing, unexpected or changed file when two manifests differ."""
    want, have = expected["files"], actual["files"]
    problems = [f"{name} is missing" for name in sorted(want.keys() - have.keys())]
    problems += [f"{name} is not in the manifest" for name in sorted(have.keys() - want.keys())]
    problems += [
        f"{name} has sha256 {have[name]['sha256'][:12]}… (size {have[name]['size']}), "
        f"the manifest says {want[name]['sha256'][:12]}… (size {want[name]['size']})"
        for name in sorted(want.keys() & have.keys())
        if want[name]["sha256"] != have[name]["sha256"]
    ]
    if problems:
        raise ModelArtifactError(f"{where} does not match its checksum manifest: " + "; ".join(problems))


def verified_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The directory's manifest; when it carries ``sha256_manifest.json``, every file must match it."""
    actual = build_manifest(model_dir)
    carried = Path(model_dir) / MANIFEST_NAME
    if carried.exists():
        compare(read_manifest(carried), actual, f"model directory {model_dir}")
    return actual


def write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
