"""The tabular classification and regression pipelines end to end on this machine, each task in its image's venv.

The classification run takes every default but where state goes: its source is `demo:tasks`, the seeded demo
records the CLI writes (no download). The regression run gets a smaller demo file. Feast's sources, registry and
online store and the MLflow registry live in temporary folders."""

import json
import re
import subprocess

import pytest

from kfp_mlops import demo_data, demo_tasks, local_runner
from kfp_mlops.paths import PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")
DATA_PYTHON = str(PROJECT_ROOT / ".envs" / "data" / "bin" / "python")  # pandas: not in the authoring env
STEPS = {"ingest", "validate", "task-stats", "feature-apply", "feature-materialize", "training-set",
         "fit-drift-detector", "train-tabular", "register", "evaluate", "gate", "deploy"}  # fmt: skip
HISTORY = ["queue_task_count", "queue_avg_duration_s", "queue_failure_rate",
           "user_task_count", "user_avg_duration_s", "user_failure_rate"]  # fmt: skip


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def state_params(folder) -> list[str]:
    """Feast and MLflow state in ``folder`` instead of the checkout."""
    values = {
        "feature_sources": folder / "sources",
        "feature_state": folder / "feast",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
    }
    return [arg for name, value in values.items() for arg in ("--param", f"{name}={value}")]


def tasks_of(run_dir) -> dict:
    """Tasks by name without kfp.local's suffixes (train-tabular-2 inside the sub-pipeline; training-set-3)."""
    tasks: dict = {}
    for task in local_runner.run_outputs(run_dir):
        tasks.setdefault(re.sub(r"-\d+$", "", task.task), []).append(task)
    return tasks


def finished(root, pipeline: str, *params: str):
    result = run_cli("run", pipeline, "--local", "--pipeline-root", str(root / "runs"), *state_params(root), *params)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result, tasks_of(local_runner.latest_run_dir(root / "runs", pipeline.replace("_", "-")))


@pytest.fixture(scope="module")
def classification(tmp_path_factory):
    return finished(tmp_path_factory.mktemp("classification"), "tabular_classification")


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    root = tmp_path_factory.mktemp("regression")
    source = demo_data.write("tasks", root / "tasks.csv", rows=800, seed=3)
    return finished(root, "tabular_regression", "--param", f"source={source}", "--param", "algorithm=linear",
                    "--param", "hyperparameters={\"target_transform\": \"log1p\"}")  # fmt: skip


def test_classification_runs_every_step_on_the_demo_default(classification):
    result, tasks = classification
    assert STEPS <= set(tasks) and len(tasks["training-set"]) == 3
    assert "source: demo data set 'tasks' written to" in result.stdout
    assert tasks["ingest"][0].artifacts["train_data"]["metadata"]["rows"] == 2100  # 3000 demo records, 70 % oldest


def test_training_sets_carry_the_history_joined_point_in_time(classification):
    _, tasks = classification
    for task in tasks["training-set"]:
        metadata = task.artifacts["training_data"]["metadata"]
        assert [feature.split(":")[1] for feature in metadata["features"]] == HISTORY
        assert all(metadata["null_fraction"][name] < 0.2 for name in HISTORY)  # only the first hours lack history
    # Rows submitted before the first tick (ticks are on the hour) had no history yet: every feature is null.
    check = (
        "import json, sys, pandas as pd; train = pd.read_parquet(sys.argv[1]); "
        "early = train['submit_time'] < train['submit_time'].min().ceil('h'); "
        f"print(json.dumps([int(early.sum()), bool(train.loc[early, {HISTORY!r}].isna().all().all())]))"
    )
    train = next(t for t in tasks["training-set"] if t.artifacts["training_data"]["metadata"]["source"].endswith(
        "train_entities"))  # fmt: skip
    result = subprocess.run([DATA_PYTHON, "-c", check, train.artifacts["training_data"]["path"]],
                            capture_output=True, text=True, check=True)  # fmt: skip
    early_rows, all_null = json.loads(result.stdout)
    assert early_rows > 0 and all_null


def test_classification_is_evaluated_gated_and_served(classification):
    _, tasks = classification
    metrics = tasks["evaluate"][0].artifacts["metrics"]["metadata"]
    assert {"accuracy", "macro_f1", "weighted_f1", "roc_auc", "ece"} <= set(metrics)
    assert metrics["roc_auc"] > 0.55 and "slice:queue=batch:rows" in metrics  # four priorities, weak signals
    confusion = tasks["evaluate"][0].artifacts["classification_metrics"]["metadata"]["confusionMatrix"]
    assert {spec["displayName"] for spec in confusion["annotationSpecs"]} == set(demo_tasks.PRIORITIES)
    assert tasks["gate"][0].parameters["Output"] is True  # no champion yet, no bars
    prediction = json.loads(tasks["deploy"][0].parameters["prediction"])
    assert prediction["label"] in demo_tasks.PRIORITIES and set(prediction["scores"]) == set(demo_tasks.PRIORITIES)
    assert "detector" in tasks["fit-drift-detector"][0].artifacts


def test_regression_reports_intervals_and_serves_a_value(regression):
    _, tasks = regression
    assert STEPS <= set(tasks)
    metrics = tasks["evaluate"][0].artifacts["metrics"]["metadata"]
    assert {"rmse", "mae", "r2", "rows", "interval_coverage", "interval_width"} <= set(metrics)
    assert metrics["r2"] > 0.1 and 0.3 < metrics["interval_coverage"] <= 1.0
    trained = tasks["train-tabular"][0].artifacts["metrics"]["metadata"]
    assert trained["eval_mae"] < trained["baseline_mae"]
    prediction = json.loads(tasks["deploy"][0].parameters["prediction"])
    assert set(prediction) == {"value", "p10", "p90"} and 0 < prediction["p10"] <= prediction["p90"]


WINDOW_END = "2026-01-09T00:00:00+00:00"  # after every demo record written below (they start on 2026-01-05)
WRITE_WINDOW = (
    "import sys, pandas as pd; from pathlib import Path; from kfp_mlops import demo_data; "
    "out, seed, drift = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == 'drift'; "
    "frame = pd.read_csv(demo_data.write('tasks', out.with_suffix('.csv'), rows=600, seed=seed, drift=drift)); "
    "frame['submit_time'] = pd.to_datetime(frame['submit_time'], utc=True); "
    "frame.assign(prediction=frame['priority']).to_parquet(out)"  # as if the served model had predicted them
)


def continuous_training(classification, root, seed: int, drift: bool):
    """One cycle of tabular_classification_ct on a table of demo records, against the first run's training set."""
    window = root / "window.parquet"
    subprocess.run([DATA_PYTHON, "-c", WRITE_WINDOW, str(window), str(seed), "drift" if drift else "same"],
                   check=True, capture_output=True)  # fmt: skip
    _, tasks = classification
    reference = next(t for t in tasks["training-set"] if t.artifacts["training_data"]["metadata"]["source"].endswith(
        "train_entities")).artifacts["training_data"]["path"]  # fmt: skip
    return finished(
        root, "tabular_classification_ct", "--param", f"payloads={window}", "--param", "payload_format=table",
        "--param", "payload_time_column=submit_time", "--param", f"window_end={WINDOW_END}",
        "--param", "window_hours=168", "--param", f"reference_data={reference}",
    )  # fmt: skip


def test_continuous_training_without_drift_does_not_retrain(classification, tmp_path):
    _, tasks = continuous_training(classification, tmp_path, seed=8, drift=False)
    assert tasks["drift"][0].parameters["Output"] is False
    assert {"fit-drift-detector", "tfdv-drift", "drift-report"} <= set(tasks) and "train-tabular" not in tasks


def test_continuous_training_on_drift_retrains_and_deploys(classification, tmp_path):
    _, tasks = continuous_training(classification, tmp_path, seed=7, drift=True)
    metrics = tasks["drift"][0].artifacts["metrics"]["metadata"]
    assert tasks["drift"][0].parameters["Output"] is True and metrics["tabular_drift"] == 1
    assert STEPS - {"fit-drift-detector"} <= set(tasks)  # the retraining branch ran every step
    prediction = json.loads(tasks["deploy"][0].parameters["prediction"])
    assert prediction["label"] in demo_tasks.PRIORITIES


def test_a_missing_target_column_fails_ingest_naming_it(tmp_path):
    source = demo_data.write("tasks", tmp_path / "tasks.csv", rows=50, seed=1)
    result = run_cli("run", "tabular_regression", "--local", "--pipeline-root", str(tmp_path / "runs"),
                     *state_params(tmp_path), "--param", f"source={source}", "--param", "target_column=runtime_s")
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == "kfp-mlops run: task 'ingest' failed (its log is above)"
    assert "runtime_s" in result.stdout + result.stderr
    assert not (tmp_path / "sources").exists()  # no feature source was written


def test_demo_data_cannot_be_submitted_to_a_cluster():
    result = run_cli("submit", "tabular_classification", "--host", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "source (demo:tasks): demo data exists only on this machine" in result.stderr


def test_demo_data_writes_task_records_and_their_drifted_variant(tmp_path, capsys):
    import csv
    from collections import Counter

    from kfp_mlops import cli

    for name, flags in (("base", []), ("drifted", ["--drift"])):
        assert cli.main(["demo-data", "tasks", "--out", str(tmp_path / f"{name}.csv"), "--rows", "400", *flags]) == 0
    base, drifted = (list(csv.DictReader((tmp_path / f"{name}.csv").open())) for name in ("base", "drifted"))
    assert len(base) == len(drifted) == 400 and list(base[0]) == demo_tasks.FIELDS
    heavy = [sum(r["task_type"] in ("training", "etl") for r in rows) / 400 for rows in (base, drifted)]
    assert heavy[1] > heavy[0] + 0.2, heavy  # the mix moves to heavy work
    assert Counter(r["task_type"] for r in base) == Counter(r["task_type"] for r in demo_tasks.tasks(400, seed=0))


def test_demo_sources_stand_for_written_files_given_or_default(tmp_path):
    resolved = demo_data.with_demo_data({"source": "demo:tasks", "rows": 3}, {"other": "demo:tickets"}, tmp_path)
    assert resolved == {"source": str(tmp_path / "tasks.csv"), "other": str(tmp_path / "tickets.csv")}
    assert (tmp_path / "tasks.csv").read_text().count("\n") == 3001
    with pytest.raises(ValueError, match="parameter 'source': unknown demo data set 'demo:jobs'; known: tickets, tasks"):
        demo_data.with_demo_data({"source": "demo:jobs"}, {}, tmp_path)
