"""The sha256 manifest of a model directory."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from components.register.manifest import (
    MANIFEST_NAME,
    REGISTRY_FILE,
    ModelArtifactError,
    build_manifest,
    read_manifest,
    verified_manifest,
)


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"num_labels": 2}')
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return folder


def test_the_manifest_lists_every_file_with_its_sha256_and_size(small_dir):
    manifest = build_manifest(small_dir)
    assert manifest["files"] == {
        "config.json": {"sha256": hashlib.sha256(b'{"num_labels": 2}').hexdigest(), "size": 17},
        "tokenizer/vocab.txt": {"sha256": hashlib.sha256(b"[PAD]\n[UNK]\n").hexdigest(), "size": 12},
    }
    lines = "".join(f"{path} {entry['sha256']}\n" for path, entry in sorted(manifest["files"].items()))
    assert manifest["digest"] == hashlib.sha256(lines.encode()).hexdigest()


def test_the_digest_depends_on_content_not_location_or_registry_files(small_dir, tmp_path):
    digest = build_manifest(small_dir)["digest"]
    copy = Path(shutil.copytree(small_dir, tmp_path / "elsewhere"))
    (copy / MANIFEST_NAME).write_text(json.dumps(build_manifest(small_dir)))
    (copy / REGISTRY_FILE).write_text('{"version": "3"}')
    assert build_manifest(copy)["digest"] == digest
    (copy / "config.json").write_text('{"num_labels": 3}')
    assert build_manifest(copy)["digest"] != digest


def test_a_carried_manifest_must_match_file_by_file(small_dir):
    (small_dir / MANIFEST_NAME).write_text(json.dumps(build_manifest(small_dir)))
    assert verified_manifest(small_dir) == build_manifest(small_dir)

    (small_dir / "tokenizer" / "vocab.txt").write_text("[PAD]\n")
    (small_dir / "config.json").unlink()
    (small_dir / "extra.bin").write_bytes(b"\x00")
    with pytest.raises(ModelArtifactError) as raised:
        verified_manifest(small_dir)
    message = str(raised.value)
    assert f"model directory {small_dir} does not match its checksum manifest" in message
    assert "config.json is missing" in message and "extra.bin is not in the manifest" in message
    assert "tokenizer/vocab.txt has sha256" in message and "(size 6), the manifest says" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "unreadable"), ('{"algorithm": "md5", "files": {}}', "not a sha256 manifest")],
)
def test_a_broken_manifest_is_named(small_dir, content, problem):
    (small_dir / MANIFEST_NAME).write_text(content)
    with pytest.raises(ModelArtifactError, match=f"checksum manifest {small_dir / MANIFEST_NAME} is unreadable: .*"):
        verified_manifest(small_dir)
    with pytest.raises(ModelArtifactError, match=problem if problem != "unreadable" else "Expecting property name"):
        read_manifest(small_dir / MANIFEST_NAME)


def test_a_manifest_whose_file_list_was_edited_is_refused(small_dir):
    manifest = build_manifest(small_dir)
    manifest["files"]["config.json"]["sha256"] = "0" * 64
    (small_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="its digest does not match its file list"):
        verified_manifest(small_dir)


def test_missing_empty_and_non_directory_models_are_refused(tmp_path):
    with pytest.raises(ModelArtifactError, match=f"model directory {tmp_path / 'nope'} is missing"):
        build_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / MANIFEST_NAME).write_text("{}")
    with pytest.raises(ModelArtifactError, match="holds no model files"):
        build_manifest(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelArtifactError, match="is a file, not a directory"):
        build_manifest(tmp_path / "file")
