"""The anomaly-detection pipeline end to end on this machine with its defaults (the seeded demo host metrics),
each task in its image's venv, with its own MLflow registry (a SQLite store in a temporary folder)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from kfp_mlops import local_runner
from kfp_mlops.paths import PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")
MODEL_NAME = "host-anomaly"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tracking_uri):
    root = tmp_path_factory.mktemp("runs")
    result = run_cli("run", "anomaly_detection", "--local", "--pipeline-root", str(root), "--param", f"tracking_uri={tracking_uri}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(root, "anomaly-detection")
    # tasks of the train → release sub-pipeline carry a suffix (gate-2): drop it
    return result, {re.sub(r"-\d+$", "", task.task): task for task in local_runner.run_outputs(run_dir)}


def test_every_step_ran_on_the_demo_metrics(finished_run):
    result, tasks = finished_run
    assert {"ingest", "validate", "train-anomaly", "register", "gate", "deploy", "fit-drift-detector"} <= set(tasks)
    assert re.search(r"source: demo data set 'metrics' written to \S+metrics\.csv", result.stdout)
    train, test = (tasks["ingest"].artifacts[f"{split}_data"]["metadata"]["rows"] for split in ("train", "test"))
    assert train == 3 * 2100 and test == 3 * 450  # 3 hosts x 3000 five-minute steps, split 70/15/15 by time


def test_the_detector_is_trained_per_host_and_metric_with_a_threshold_from_eval(finished_run):
    _, tasks = finished_run
    metrics = tasks["train-anomaly"].artifacts["metrics"]["metadata"]
    assert metrics["series"] == 9 and metrics["events"] >= 1 and 0.5 <= metrics["threshold"] < 1
    model_dir = Path(tasks["train-anomaly"].artifacts["model"]["path"])
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["family"] == "anomaly" and manifest["detector"]["kind"] == "ensemble"
    assert manifest["detector"]["parameters"]["memory"] == 288 and manifest["threshold_method"] == "eval_f1"
    assert sorted(manifest["hosts"]) == ["host-0", "host-1", "host-2"]


def test_the_gate_scores_per_event_on_the_test_split_and_blesses_the_first_model(finished_run, tracking_uri):
    _, tasks = finished_run
    scored = tasks["gate"].artifacts["challenger_metrics"]["metadata"]
    assert scored["test_rows"] == 3 * 450 and scored["events"] >= 1 and 0 <= scored["f1"] <= 1
    assert tasks["gate"].parameters["Output"] is True
    assert tasks["gate"].parameters["reason"].startswith("blessed: no champion yet")
    assert tasks["register"].parameters["model_uri"] == f"models:/{MODEL_NAME}/1"
    shown = run_cli("models", "show", MODEL_NAME, "--tracking-uri", tracking_uri, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [v["aliases"] for v in json.loads(shown.stdout)["versions"]] == [["challenger", "champion"]]


def test_the_deployed_detector_flags_the_smoke_point(finished_run):
    result, tasks = finished_run
    prediction = json.loads(tasks["deploy"].parameters["prediction"])
    assert prediction["host"] == "host-0" and prediction["anomaly"] is True  # CPU 97%, latency 900 ms, errors 20%
    assert prediction["score"] >= prediction["threshold"] and set(prediction["scores"]) == {"cpu", "latency_ms", "error_rate"}
    assert "prediction" in result.stdout


def test_a_drift_detector_watches_the_metrics_as_time_series(finished_run):
    _, tasks = finished_run
    detector = tasks["fit-drift-detector"].artifacts["detector"]["metadata"]
    assert detector["tests"] == ["series"] and detector["columns"]["numeric"] == ["cpu", "latency_ms", "error_rate"]
    assert detector["columns"]["time"] == "timestamp" and detector["columns"]["group"] == "host"
    assert detector["reference_rows"] == 3 * 2100  # every training row: like windows as dense as the tested one


def test_continuous_training_on_an_undrifted_day_does_not_retrain(finished_run, tracking_uri, tmp_path):
    """One CT cycle: the last day of the demo's test split (a table of metric rows, later than the training split),
    against the training split the registry recorded for the champion (no reference_data given)."""
    _, tasks = finished_run
    split = {name: tasks["ingest"].artifacts[f"{name}_data"]["path"] for name in ("train", "test")}
    result = run_cli(
        "run", "anomaly_detection_ct", "--local", "--pipeline-root", str(tmp_path),
        "--param", f"payloads={split['test']}", "--param", "payload_format=table", "--param", "payload_time_column=timestamp",
        "--param", "window_end=2024-01-11T10:00:00+00:00",  # after the last of the 3000 five-minute steps
        "--param", f"tracking_uri={tracking_uri}",
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(tmp_path, "anomaly-detection-ct")
    ct = {task.task: task for task in local_runner.run_outputs(run_dir)}
    reference = ct["resolve-reference-data"].artifacts["reference"]["metadata"]
    assert (reference["resolved_by"], reference["model_name"], reference["model_version"]) == ("registry", MODEL_NAME, "1")
    assert reference["source_uri"].removeprefix("file://") == split["train"] and reference["rows"] == 3 * 2100
    assert reference["data_sha256"] == tasks["ingest"].artifacts["train_data"]["metadata"]["sha256"]
    assert ct["drift"].parameters["Output"] is False
    metrics = ct["drift"].artifacts["metrics"]["metadata"]
    assert metrics["window_rows"] == 3 * 288 and metrics["series_drift"] == 0.0
    assert {"fit-drift-detector", "tfdv-drift", "drift-report"} <= set(ct) and "train-anomaly" not in ct


@pytest.fixture(scope="module")
def ct_spec(tmp_path_factory):
    import yaml
    from kfp import compiler

    from kfp_mlops import catalog

    path = tmp_path_factory.mktemp("compiled") / "ct.yaml"
    compiler.Compiler().compile(catalog.pipeline("anomaly_detection_ct"), package_path=str(path))
    pipeline_spec, *_ = yaml.safe_load_all(path.read_text())
    return pipeline_spec


def test_continuous_training_retrains_only_on_drift_of_the_metric_columns(ct_spec):
    root = ct_spec["root"]["dag"]["tasks"]
    assert set(root) == {"resolve-reference-data", "fit-drift-detector", "drift", "tfdv-drift", "drift-report", "condition-1"}
    condition = root["condition-1"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--drift-Output'] == true"
    retrain = ct_spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(retrain) == {"ingest", "validate", "anomaly-train-release"}
    for task in ("fit-drift-detector", "tfdv-drift"):
        columns = root[task]["inputs"]["parameters"]
        assert columns.get("numeric_columns", columns.get("columns")) == {"componentInputParameter": "metric_columns"}
    fit = root["fit-drift-detector"]["inputs"]["parameters"]
    assert fit["time_column"] == {"componentInputParameter": "timestamp_column"}
    assert fit["group_column"] == {"componentInputParameter": "host_column"}


def test_continuous_training_deploys_all_at_once_to_keep_each_hosts_stream_on_one_server(ct_spec):
    defaults = {name: p.get("defaultValue") for name, p in ct_spec["root"]["inputDefinitions"]["parameters"].items()}
    assert defaults["canary_traffic_percent"] == 0 and defaults["deployment_mode"] == "Standard"
    assert defaults["source"] == "demo:metrics" and defaults["detector"] == "ensemble"
