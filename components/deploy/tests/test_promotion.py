"""deploy with the registry: champion moves only when the deployment succeeded, a failed or rolled-back one is
recorded as declined, and an unreachable registry stops the task before anything is deployed. Real model
servers on the tiny model, a real MLflow SQLite store, the fake KServe API for the rollout."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from kubernetes import client as k8s

from components.deploy.inference_service import MODEL_VERSION_ANNOTATION, REGISTERED_MODEL_ANNOTATION
from components.deploy.kserve_client import version_annotations
from components.deploy.local import prediction_summary
from components.deploy.promotion import deploy_model
from components.deploy.smoke import DeployError, is_prediction, smoke_instance
from components.deploy.tests.fake_kserve import FakeKServeApi
from components.register.registry import ModelRegistry, RegistryUnavailableError
from serving.process import ServerProcess

NAME = "text-classifier"
NAMESPACE = "ml"
V1 = "gs://models/text-classifier/v1"
BROKEN = "gs://models/text-classifier/never-uploaded"
SMOKE = "my card payment was declined twice"
KSERVE = {"namespace": NAMESPACE, "ready_timeout_s": 30.0, "poll_s": 0.01}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables created once (that takes seconds); tests copy it."""
    database = tmp_path_factory.mktemp("template") / "mlflow.db"
    ModelRegistry(f"sqlite:///{database}").models()
    return database


@pytest.fixture
def registry(tmp_path: Path, empty_store: Path, tiny_model_dir: Path) -> ModelRegistry:
    """Two registered versions of the tiny model; no champion yet."""
    (tmp_path / "registry").mkdir()
    shutil.copy(empty_store, tmp_path / "registry" / "mlflow.db")
    store = ModelRegistry(f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}")
    for _ in range(2):
        store.register(NAME, tiny_model_dir, alias="challenger", actor="test")
    return store


@pytest.fixture(scope="module")
def model_server(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess.start(tiny_model_dir, NAME)
    try:
        yield server
    finally:
        server.stop()


def deploy_locally_with(registry: ModelRegistry, tiny_model_dir: Path, tmp_path: Path, version: str, **options):
    options = {"smoke_input": SMOKE, "promotion_reason": "blessed: no champion yet; min_accuracy: ...", **options}
    return deploy_model(
        "local", str(tiny_model_dir), "", str(tmp_path / "report.md"), NAME, options.pop("smoke_input"),
        kserve_settings={}, registry_model_name=NAME, model_version=version, tracking_uri=registry.tracking_uri,
        kfp_run_id="run-1", kfp_task_id="task-9", **options,
    )  # fmt: skip


def test_a_successful_deployment_moves_champion_recording_who_and_why(registry, tiny_model_dir, tmp_path):
    outputs = deploy_locally_with(registry, tiny_model_dir, tmp_path, "1")
    assert is_prediction(json.loads(outputs.prediction))
    assert registry.get_alias(NAME, "champion").version == "1"
    [moved] = registry.alias_history(NAME, "champion")
    assert (moved.action, moved.previous_version, moved.version) == ("set", None, "1")
    assert moved.actor == "kfp run run-1 task task-9"
    assert moved.reason == "deployed (local), blessed by gate: no champion yet; min_accuracy: ..."

    deploy_locally_with(registry, tiny_model_dir, tmp_path, "2", promotion_reason="blessed: champion x version 1; ...")
    assert registry.get_alias(NAME, "champion").version == "2"
    assert registry.alias_history(NAME, "champion")[-1].previous_version == "1"


def test_a_failed_deployment_leaves_champion_and_records_the_decline(registry, tiny_model_dir, tmp_path):
    registry.set_alias(NAME, "champion", "1", reason="first", actor="alice")
    with pytest.raises(DeployError, match=r"smoke request .* failed: HTTP 400"):
        deploy_locally_with(registry, tiny_model_dir, tmp_path, "2", smoke_input="   ")
    assert registry.get_alias(NAME, "champion").version == "1"
    declined = registry.alias_history(NAME, "champion")[-1]
    assert (declined.action, declined.previous_version, declined.version) == ("declined", "1", "2")
    cause = "deployment (local) failed, champion unchanged: smoke request to http://127.0.0.1:"
    assert declined.reason.startswith(cause)
    assert declined.actor == "kfp run run-1 task task-9"
    assert not (tmp_path / "report.md").exists()


def test_a_rolled_back_kserve_rollout_does_not_move_champion(registry, model_server, tiny_model_dir, tmp_path):
    with FakeKServeApi({V1: model_server.url}) as fake:
        api = k8s.CustomObjectsApi(k8s.ApiClient(k8s.Configuration(host=fake.url)))
        settings = {**KSERVE, "api": api}
        deploy_model("kserve", "", V1, str(tmp_path / "r1.md"), NAME, SMOKE, kserve_settings=settings,
                     registry_model_name=NAME, model_version="1", tracking_uri=registry.tracking_uri,
                     promotion_reason="blessed: no champion yet")  # fmt: skip
        assert registry.get_alias(NAME, "champion").version == "1"
        assert version_annotations(fake.stored(NAMESPACE, NAME)) == {
            REGISTERED_MODEL_ANNOTATION: NAME, MODEL_VERSION_ANNOTATION: "1",
        }  # fmt: skip

        rolled_back = r"(?s)BlockedByFailedLoad.*rolled InferenceService ml/text-classifier back"
        with pytest.raises(DeployError, match=rolled_back):
            deploy_model("kserve", "", BROKEN, str(tmp_path / "r2.md"), NAME, SMOKE, kserve_settings=settings,
                         registry_model_name=NAME, model_version="2", tracking_uri=registry.tracking_uri)  # fmt: skip
        assert fake.stored(NAMESPACE, NAME)["spec"]["predictor"]["containers"][0]["env"][0]["value"] == V1
        assert version_annotations(fake.stored(NAMESPACE, NAME))[MODEL_VERSION_ANNOTATION] == "1"
    assert registry.get_alias(NAME, "champion").version == "1"
    declined = registry.alias_history(NAME, "champion")[-1]
    assert (declined.action, declined.previous_version, declined.version) == ("declined", "1", "2")
    cause = "deployment (kserve) failed, champion unchanged: InferenceService ml/text-classifier failed"
    assert declined.reason.startswith(cause)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_registry_fails_before_anything_is_deployed(tiny_model_dir, tmp_path):
    before = set(psutil.Process().children(recursive=True))
    unreachable = f"http://127.0.0.1:{free_port()}"
    with FakeKServeApi({}) as fake:
        api = k8s.CustomObjectsApi(k8s.ApiClient(k8s.Configuration(host=fake.url)))
        with pytest.raises(RegistryUnavailableError, match=rf"{unreachable} is unreachable after 3 attempts"):
            deploy_model("kserve", "", V1, str(tmp_path / "r.md"), NAME, SMOKE, kserve_settings={**KSERVE, "api": api},
                         registry_model_name=NAME, model_version="1", tracking_uri=unreachable)  # fmt: skip
        assert fake.requests == []
    with pytest.raises(RegistryUnavailableError):
        deploy_model("local", str(tiny_model_dir), "", str(tmp_path / "r.md"), NAME, SMOKE, kserve_settings={},
                     registry_model_name=NAME, model_version="1", tracking_uri=unreachable)  # fmt: skip
    assert [child for child in psutil.Process().children(recursive=True) if child not in before] == []
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"registry_model_name": NAME}, "give registry_model_name and model_version together"),
        ({"model_version": "3"}, "give registry_model_name and model_version together"),
        ({"tracking_uri": "https://ci:s3cret@mlflow.example.com"}, "must not carry credentials"),
    ],
)
def test_inconsistent_registry_settings_are_refused(options, error, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=error):
        deploy_model("local", str(tiny_model_dir), "", str(tmp_path / "r.md"), NAME, SMOKE, kserve_settings={},
                     **options)  # fmt: skip


def test_the_smoke_input_is_a_text_or_one_json_instance():
    assert smoke_instance(SMOKE) == SMOKE
    assert smoke_instance(' {"duration_s": 12.5, "channel": "web"}') == {"duration_s": 12.5, "channel": "web"}
    with pytest.raises(DeployError, match=r"smoke_input starts with '\{' but is not a JSON object"):
        smoke_instance('{"duration_s": 12.5,')


@pytest.mark.parametrize(
    ("prediction", "valid"),
    [
        ({"label": "lost_card", "score": 0.9, "scores": {"lost_card": 0.9}}, True),
        ({"value": 31.5, "p10": 20.0, "p90": 44.0}, True),
        ({"score": 4.2, "anomaly": True}, True),
        ({"label": 3}, False),
        ({"value": True}, False),
        ({"score": 0.3}, False),
        ("lost_card", False),
    ],
)
def test_a_prediction_is_a_label_a_value_or_an_anomaly_flag(prediction, valid):
    assert is_prediction(prediction) is valid


def test_the_report_line_fits_each_kind_of_prediction():
    assert prediction_summary({"label": "lost_card", "score": 0.912, "scores": {}}) == "**lost_card** (score 0.912)"
    assert prediction_summary({"value": 31.5, "p10": 20.0, "p90": 44.0}) == "**31.5** (p10 20, p90 44)"
    assert prediction_summary({"score": 4.2, "anomaly": True}) == "**anomaly** (score 4.2)"
