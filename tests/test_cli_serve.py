"""`kfp-mlops serve` runs the KServe model server from the serve image's venv, answering real HTTP clients."""

import signal
import socket
import subprocess
import time

import pytest
import requests

from kfp_mlops.envs import venv_python
from kfp_mlops.paths import PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")
BUILD_TINY_MODEL = "import sys, pathlib; from serving.tests.tiny_model import build_tiny_text_classifier as b; b(pathlib.Path(sys.argv[1]))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    model_dir = tmp_path / "model"
    subprocess.run([str(venv_python("serve")), "-c", BUILD_TINY_MODEL, str(model_dir)], check=True, cwd=PROJECT_ROOT)
    port = free_port()
    server = subprocess.Popen(
        [CLI, "serve", "--model", str(model_dir), "--name", "tickets", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if requests.get(f"{url}/v2/models/tickets/ready", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)  # polling interval while the server starts, not synchronisation
    else:
        server.kill()
        pytest.fail(f"server did not become ready: {server.stdout.read()[-3000:]}")
    yield url
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)


def test_serve_answers_v1_predictions(served):
    response = requests.post(f"{served}/v1/models/tickets:predict", json={"instances": ["my card was declined"]}, timeout=30)
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert prediction["label"] in prediction["scores"]
