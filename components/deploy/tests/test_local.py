"""Local deployment: a real model server process on the tiny model, smoke-tested over HTTP."""

import json
import shutil
from pathlib import Path

import psutil
import pytest

from components.deploy.local import DeployError, deploy_locally, serve_locally
from serving.tests.tiny_model import LABELS

SMOKE_TEXTS = ["my card payment was declined twice", "i lost my card"]


def new_children(before: set) -> list:
    """Processes this test started that are still running."""
    return [child for child in psutil.Process().children(recursive=True) if child not in before]


def test_serve_locally_returns_predictions_from_the_label_set(tiny_model_dir: Path) -> None:
    with serve_locally(tiny_model_dir, "tiny", SMOKE_TEXTS) as deployment:
        assert deployment.url.startswith("http://127.0.0.1:")
        assert deployment.predict_url == f"{deployment.url}/v1/models/tiny:predict"
        assert deployment.request == {"instances": SMOKE_TEXTS}
        assert [p["label"] in LABELS for p in deployment.predictions] == [True, True]
        assert sum(deployment.predictions[0]["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert deployment.latency_ms > 0
        assert deployment.server.is_ready()
    assert deployment.server.process.returncode is not None
    assert not deployment.server.is_ready()


def test_deploy_locally_writes_the_report_and_returns_url_and_prediction(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = set(psutil.Process().children(recursive=True))  # servers other tests keep running
    report = tmp_path / "report" / "deploy.md"
    outputs = deploy_locally(str(tiny_model_dir), str(report), "text-classifier", SMOKE_TEXTS[0])
    prediction = json.loads(outputs.prediction)
    assert prediction["label"] in LABELS and list(prediction["scores"]) == LABELS
    assert outputs.url.startswith("http://127.0.0.1:")
    text = report.read_text()
    assert f"POST {outputs.url}/v1/models/text-classifier:predict" in text
    assert SMOKE_TEXTS[0] in text and prediction["label"] in text and " ms" in text
    assert not new_children(before)  # the server was stopped


def test_a_model_dir_without_config_is_a_clear_error_and_leaves_no_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = set(psutil.Process().children(recursive=True))  # servers other tests keep running
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model_dir / "config.json").unlink()
    with pytest.raises(DeployError, match=f"(?s)exited with code 1.*{model_dir / 'config.json'} is missing"):
        serve_locally(model_dir, "tiny", SMOKE_TEXTS)
    assert not new_children(before)


def test_smoke_inputs_are_required(tiny_model_dir: Path) -> None:
    with pytest.raises(DeployError, match="smoke_inputs is empty"):
        serve_locally(tiny_model_dir, "tiny", [])


def test_a_failed_smoke_request_raises_with_the_response_and_stops_the_server(tiny_model_dir: Path) -> None:
    before = set(psutil.Process().children(recursive=True))  # servers other tests keep running
    with pytest.raises(DeployError, match=r"smoke request to .* failed: HTTP 400 .*instances\[0\] is blank"):
        serve_locally(tiny_model_dir, "tiny", ["   "])
    assert not new_children(before)
