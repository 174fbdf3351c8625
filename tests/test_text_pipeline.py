"""The text-classification pipeline end to end on this machine, each task in its image's venv.

Two runs share one MLflow registry (a SQLite store in a temporary folder): the first registers v1, which, blessed
with no champion yet, is deployed and becomes the champion; the second (tuned, with a bar no model meets) is
compared against that champion, not deployed, and recorded as declined."""

import json
import re
import socket
import subprocess

import pytest
import yaml

from kfp_mlops import demo_data, local_runner
from kfp_mlops.paths import COMPILED_DIR, PROJECT_ROOT

CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")
MODEL_NAME = "text-classifier"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def tasks_of(run_dir) -> dict:
    # Tasks inside the sub-pipeline that the chosen branch runs carry a suffix (train-3): drop it.
    return {re.sub(r"-\d+$", "", task.task): task for task in local_runner.run_outputs(run_dir)}


def registry_json(tracking_uri: str, *args: str):
    result = run_cli(*args, "--tracking-uri", tracking_uri, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tracking_uri):
    root = tmp_path_factory.mktemp("runs")
    source = demo_data.write("tickets", root / "tickets.csv", rows=400, seed=1)
    result = run_cli(
        "run", "text_classification", "--local", "--pipeline-root", str(root),
        "--param", f"source={source}", "--param", "base_model=tiny", "--param", "epochs=1",
        "--param", "max_length=32", "--param", f"tracking_uri={tracking_uri}",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(root, "text-classification")
    return result, tasks_of(run_dir), run_dir


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


@pytest.fixture(scope="module")
def second_run(tmp_path_factory, tracking_uri, finished_run):
    """A tuned run against the first run's champion, with a bar no model meets (about 3% of demo tickets are
    mislabelled: no model is perfect)."""
    root = tmp_path_factory.mktemp("second")
    source = demo_data.write("tickets", root / "tickets.csv", rows=300, seed=4)
    result = run_cli(
        "run", "text_classification", "--local", "--pipeline-root", str(root),
        "--param", f"source={source}", "--param", "base_model=tiny", "--param", "epochs=1",
        "--param", "max_length=32", "--param", "tune_backend=optuna",
        "--param", f"search_space={json.dumps(TINY_SEARCH)}",
        "--param", "min_accuracy=1.0", "--param", f"tracking_uri={tracking_uri}",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    run_dir = local_runner.latest_run_dir(root, "text-classification")
    return result, tasks_of(run_dir), run_dir


def test_every_step_ran(finished_run):
    _, tasks, _ = finished_run
    assert {"ingest", "validate", "train", "register", "evaluate", "gate", "deploy"} <= set(tasks)
    assert not {"tune", "tune-local"} & set(tasks), "tune_backend defaults to none"


def test_splits_carry_their_data_version(finished_run):
    _, tasks, _ = finished_run
    train = tasks["ingest"].artifacts["train_data"]["metadata"]
    assert train["rows"] > 250 and len(train["sha256"]) == 64


def test_evaluation_reports_metrics_and_a_confusion_matrix(finished_run):
    _, tasks, _ = finished_run
    metrics = tasks["evaluate"].artifacts["metrics"]["metadata"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    confusion = tasks["evaluate"].artifacts["classification_metrics"]["metadata"]["confusionMatrix"]
    assert {c["displayName"] for c in confusion["annotationSpecs"]} == set(demo_data.CATEGORIES)
    assert sum(map(sum, (r["row"] for r in confusion["rows"]))) == metrics["test_rows"]


def test_the_served_model_answers_with_a_known_category(finished_run):
    result, tasks, _ = finished_run
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


def test_the_first_run_registers_v1_and_its_deployment_makes_it_the_champion(finished_run, tracking_uri):
    _, tasks, run_dir = finished_run
    assert tasks["register"].parameters["version"] == "1"
    assert tasks["register"].parameters["model_uri"] == f"models:/{MODEL_NAME}/1"
    assert tasks["gate"].parameters["reason"].startswith("blessed: no champion yet; ")
    shown = registry_json(tracking_uri, "models", "show", MODEL_NAME)
    first_run = [e for e in shown["alias_history"] if e["version"] == "1"]
    assert [(e["alias"], e["action"], e["previous_version"]) for e in first_run] == [
        ("challenger", "set", None), ("champion", "set", None),
    ]  # fmt: skip
    champion = first_run[1]
    assert champion["reason"].startswith("deployed (local), blessed by gate: no champion yet; min_accuracy: accuracy")
    lineage = registry_json(tracking_uri, "lineage", MODEL_NAME)  # the champion: the model being served
    run_id = lineage["pipeline_run"]["run_id"]
    assert run_id.isdigit() and lineage["pipeline_run"]["run_name"] == run_dir.name
    assert re.fullmatch(rf"kfp run {run_id} task \d+", champion["actor"])  # the deploy task of the same run
    assert lineage["data"]["sha256"] == tasks["ingest"].artifacts["train_data"]["metadata"]["sha256"]
    assert lineage["training_run"]["status"] == "FINISHED" and "eval_accuracy" in lineage["training_run"]["metrics"]
    assert lineage["model"]["aliases"] == ["challenger", "champion"]  # the newest candidate, now also serving
    # The trained model's own directory leads to the same version, by the hash of its files.
    [by_content] = registry_json(tracking_uri, "lineage", "--model-dir", tasks["train"].artifacts["model"]["path"])
    assert by_content["model"]["version"] == "1"


def test_a_tuned_run_compared_with_the_champion_is_not_deployed_and_the_decline_is_recorded(second_run, tracking_uri):
    _, tasks, _ = second_run
    best = json.loads(tasks["tune-local"].parameters["best_parameters"])
    assert set(best) == {"learning_rate"} and 1e-4 <= best["learning_rate"] <= 5e-4
    assert tasks["register"].parameters["version"] == "2"
    assert tasks["gate"].parameters["Output"] is False
    reason = tasks["gate"].parameters["reason"]
    assert reason.startswith(f"not blessed: champion {MODEL_NAME} version 1; min_accuracy: accuracy")
    assert "< 1.0000" in reason
    assert tasks["gate"].artifacts["champion_metrics"]["metadata"]["test_rows"] > 0  # the champion was scored
    assert "deploy" not in tasks
    shown = registry_json(tracking_uri, "models", "show", MODEL_NAME)
    history = shown["alias_history"]
    champions = [(e["action"], e["previous_version"], e["version"]) for e in history if e["alias"] == "champion"]
    assert champions == [("set", None, "1"), ("declined", "1", "2")]
    assert shown["alias_history"][-1]["reason"] == "not blessed by gate: " + reason.removeprefix("not blessed: ")
    assert [v["aliases"] for v in shown["versions"]] == [["champion"], ["challenger"]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_tracking_server_fails_the_run_before_anything_is_deployed(tmp_path):
    source = demo_data.write("tickets", tmp_path / "tickets.csv", rows=300, seed=4)
    unreachable = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        "run", "text_classification", "--local", "--pipeline-root", str(tmp_path / "runs"),
        "--param", f"source={source}", "--param", "base_model=tiny", "--param", "max_steps=1",
        "--param", "max_length=16", "--param", f"tracking_uri={unreachable}",
    )
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == "kfp-mlops run: task 'register' failed (its log is above)"
    assert f"RegistryUnavailableError: MLflow tracking server {unreachable} is unreachable after 3 attempts" in (
        result.stdout + result.stderr
    )
    tasks = tasks_of(local_runner.latest_run_dir(tmp_path / "runs", "text-classification"))
    assert "train" in tasks and not {"register", "gate", "deploy"} & set(tasks)


def test_tasks_that_talk_to_mlflow_get_the_optional_secret_and_no_credential_is_compiled():
    text = (COMPILED_DIR / "text_classification.yaml").read_text()
    spec, platform = yaml.safe_load_all(text)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    with_secret = {name for name, config in executors.items() if config.get("secretAsEnv")}
    assert {re.sub(r"-\d+$", "", name) for name in with_secret} == {"exec-register", "exec-gate", "exec-deploy"}
    assert len(with_secret) == 9  # three tasks in each of the three tuning branches
    for name in with_secret:
        [secret] = executors[name]["secretAsEnv"]
        assert secret["secretName"] == "mlflow-client-credentials" and secret["optional"] is True
        assert {entry["envVar"] for entry in secret["keyToEnv"]} == {
            "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
        }  # fmt: skip
    assert spec["root"]["inputDefinitions"]["parameters"]["tracking_uri"]["defaultValue"] == ""
    assert not re.search(r"(?i)https?://[^/\s'\"]*:[^/\s'\"]*@", text), "a URL with credentials in it"
    assert "MLFLOW_TRACKING_PASSWORD:" not in text and "value: " not in text.split("platforms:")[1]
