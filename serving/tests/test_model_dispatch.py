"""How `serving.server` picks its predictor from the model directory, and how it refuses one it cannot serve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from serving.model_kind import ModelLoadError, model_kind
from serving.process import ServerProcess, ServerStartError
from serving.server import build_model, parse_args
from serving.tabular_model import TabularPredictor
from serving.tests import tabular_models


@pytest.fixture(scope="module")
def tabular_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tabular_models.diabetes_regressor(tmp_path_factory.mktemp("dispatch"))


def manifest_dir(folder: Path, manifest: object) -> Path:
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder


def test_kinds_are_told_apart_by_their_files(tiny_model_dir: Path, tabular_dir: Path, tmp_path: Path) -> None:
    assert model_kind(str(tiny_model_dir)) == "text"
    assert model_kind(str(tabular_dir)) == "tabular"
    assert model_kind(str(manifest_dir(tmp_path / "anomaly", {"family": "anomaly"}))) == "anomaly"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: str(tmp / "absent"), "does not exist"),
        (lambda tmp: "gs://bucket/model", "only local directories are supported, not gs:// URIs"),
        (lambda tmp: str(tmp), "config.json is missing and so is"),
        (lambda tmp: str(manifest_dir(tmp / "other", {"family": "images"})), "'family' is 'images'"),
        (lambda tmp: str(manifest_dir(tmp / "list", [1])), "is not a JSON object"),
    ],
    ids=["missing", "uri", "no manifest", "unknown family", "not an object"],
)
def test_a_directory_of_no_known_kind_is_named(make, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as raised:
        model_kind(make(tmp_path))
    assert problem in str(raised.value)


def test_server_exits_naming_the_family_it_cannot_serve(tmp_path: Path) -> None:
    model_dir = manifest_dir(tmp_path / "model", {"family": "images"})
    result = subprocess.run(
        [sys.executable, "-m", "serving.server", "--model_dir", str(model_dir), "--model_name", "m"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"serving.server: {model_dir / 'model.json'}: 'family' is 'images'; a model server serves "
        "['tabular', 'anomaly']"
    )


def test_a_tampered_tabular_model_is_refused_by_its_checksum(tabular_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tabular_dir, tmp_path / "model")
    with (model_dir / "model.ubj").open("ab") as weights:
        weights.write(b"\0")
    with pytest.raises(ServerStartError, match=r"(?s)exited with code 1.*cannot load the tabular model.*sha256"):
        ServerProcess.start(model_dir, "tampered")


def test_a_tabular_directory_gets_the_tabular_predictor_with_the_server_flags(tabular_dir: Path) -> None:
    args = parse_args(["--model_dir", str(tabular_dir), "--model_name", "m", "--max_instances", "5"])
    model = build_model(args)
    assert isinstance(model, TabularPredictor) and model.ready
    assert (model.task, model.max_instances, model.batcher.max_batch_size) == ("regression", 5, 32)


def test_an_anomaly_directory_is_served_by_the_anomaly_detector(tmp_path: Path) -> None:
    from components.anomaly.demo import demo_host_metrics
    from components.train_anomaly.trainer import train_anomaly_model

    data = demo_host_metrics(hosts=1, steps=3 * 288, anomalies_per_series=2, seed=3)
    stamps = sorted(data["timestamp"].unique())
    data[data["timestamp"] < stamps[2 * 288]].to_parquet(tmp_path / "train.parquet")
    data[data["timestamp"] >= stamps[2 * 288]].to_parquet(tmp_path / "eval.parquet")
    train_anomaly_model(str(tmp_path / "train.parquet"), str(tmp_path / "eval.parquet"), str(tmp_path / "model"),
                        detector="zscore")  # fmt: skip
    assert model_kind(str(tmp_path / "model")) == "anomaly"
    with ServerProcess.start(tmp_path / "model", "hosts") as server:
        metadata = requests.get(f"{server.url}/v2/models/hosts", timeout=10)
        assert metadata.status_code == 200 and metadata.json()["name"] == "hosts"
