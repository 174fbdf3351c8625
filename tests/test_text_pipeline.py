"""The text-classification pipeline end to end on this machine, each task in its image's venv."""

import json
import re
import subprocess

import pytest

from kfp_mlops import demo_data, local_runner
from kfp_mlops.paths import PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    source = demo_data.write("tickets", root / "tickets.csv", rows=400, seed=1)
    result = run_cli(
        "run", "text_classification", "--local", "--pipeline-root", str(root),
        "--param", f"source={source}", "--param", "base_model=tiny", "--param", "epochs=1",
        "--param", "max_length=32",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(root, "text-classification")
    # Tasks inside the sub-pipeline that the chosen branch runs carry a suffix (train-3): drop it.
    return result, {re.sub(r"-\d+$", "", task.task): task for task in local_runner.run_outputs(run_dir)}


def test_every_step_ran(finished_run):
    _, tasks = finished_run
    assert {"ingest", "validate", "train", "evaluate", "gate", "deploy"} <= set(tasks)
    assert not {"tune", "tune-local"} & set(tasks), "tune_backend defaults to none"


def test_splits_carry_their_data_version(finished_run):
    _, tasks = finished_run
    train = tasks["ingest"].artifacts["train_data"]["metadata"]
    assert train["rows"] > 250 and len(train["sha256"]) == 64


def test_evaluation_reports_metrics_and_a_confusion_matrix(finished_run):
    _, tasks = finished_run
    metrics = tasks["evaluate"].artifacts["metrics"]["metadata"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    confusion = tasks["evaluate"].artifacts["classification_metrics"]["metadata"]["confusionMatrix"]
    assert {c["displayName"] for c in confusion["annotationSpecs"]} == set(demo_data.CATEGORIES)
    assert sum(map(sum, (r["row"] for r in confusion["rows"]))) == metrics["test_rows"]


def test_the_served_model_answers_with_a_known_category(finished_run):
    result, tasks = finished_run
    prediction = json.loads(tasks["deploy"].parameters["prediction"])
    assert prediction["label"] in demo_data.CATEGORIES and 0.0 < prediction["score"] <= 1.0
    assert "prediction" in result.stdout  # the CLI's summary shows it


@pytest.mark.parametrize("case", ["missing file", "absent label column", "malformed row", "empty data set"])
def test_bad_input_fails_the_ingest_task_naming_the_problem(case, tmp_path):
    source = demo_data.write("tickets", tmp_path / "tickets.csv", rows=50, seed=1)
    params = {"source": str(source)}
    if case == "missing file":
        params["source"] = expected = str(tmp_path / "nowhere.csv")
    elif case == "absent label column":
        params["label_column"] = expected = "priority"
    elif case == "malformed row":
        with source.open("a") as f:
            f.write('T9,2026-01-01T00:00:00+00:00,email,free,"unterminated\n')
        expected = "line 52"
    else:
        source.write_text(",".join(demo_data.FIELDS) + "\n")
        expected = "no rows"
    args = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    result = run_cli("run", "text_classification", "--local", "--pipeline-root", str(tmp_path / "runs"), *args)
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == "kfp-mlops run: task 'ingest' failed (its log is above)"
    assert expected in result.stdout + result.stderr
    # No step after ingest ran, so nothing downstream looks successful.
    run_dir = local_runner.latest_run_dir(tmp_path / "runs", "text-classification")
    assert not any(run_dir.glob("train/*")) and not (run_dir / "ingest" / "executor_output.json").exists()


TINY_SEARCH = {
    "objective": {"type": "maximize", "objectiveMetricName": "eval_accuracy"},
    "algorithm": {"algorithmName": "random"},
    "parameters": [
        {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-4", "max": "5e-4"}}
    ],
    "maxTrialCount": 2,
    "parallelTrialCount": 1,
    "maxFailedTrialCount": 0,
}


def test_tuned_run_trains_with_the_best_parameters_and_an_unblessed_model_is_not_deployed(tmp_path):
    source = demo_data.write("tickets", tmp_path / "tickets.csv", rows=300, seed=4)
    root = tmp_path / "runs"
    result = run_cli(
        "run", "text_classification", "--local", "--pipeline-root", str(root),
        "--param", f"source={source}", "--param", "base_model=tiny", "--param", "epochs=1",
        "--param", "max_length=32", "--param", "tune_backend=optuna",
        "--param", f"search_space={json.dumps(TINY_SEARCH)}",
        "--param", "min_accuracy=1.0",  # about 3% of demo tickets are mislabelled: no model is perfect
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(root, "text-classification")
    tasks = {re.sub(r"-\d+$", "", t.task): t for t in local_runner.run_outputs(run_dir)}
    best = json.loads(tasks["tune-local"].parameters["best_parameters"])
    assert set(best) == {"learning_rate"} and 1e-4 <= best["learning_rate"] <= 5e-4
    assert "train" in tasks and tasks["gate"].parameters["Output"] is False
    reason = tasks["gate"].parameters["reason"]
    assert reason.startswith("not blessed") and "min_accuracy: accuracy" in reason and "< 1.0000" in reason
    assert "deploy" not in tasks
