"""``python -m components.train_tabular.tabular_trainer --config JSON``: the command a tuning trial runs."""

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from components.train_tabular import tabular_model
from components.train_tabular.hyperparameters import TabularError
from components.train_tabular.tabular_trainer import config_arguments, train_tabular_model

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# What Katib's StdOut collector and the Optuna backend read: an RFC 3339 time, then name=value.
KATIB_LINE = re.compile(r"(\S+) (\w+)=([-+0-9.eE]+)")


def run_trainer(config: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.train_tabular.tabular_trainer", "--config", config],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )


def test_config_trains_with_hyperparameter_fields_and_prints_katib_lines(breast_cancer_files, tmp_path):
    train_path, eval_path = breast_cancer_files
    config = {
        "train_path": str(train_path), "eval_path": str(eval_path), "model_dir": str(tmp_path / "model"),
        "target_column": "diagnosis", "algorithm": "random_forest", "num_threads": 1,
        "hyperparameters": {"n_estimators": 20}, "max_depth": 3, "min_samples_leaf": 2,
    }
    done = run_trainer(json.dumps(config))
    assert done.returncode == 0, done.stderr
    metrics = {}
    for line in done.stdout.splitlines():
        time, name, value = KATIB_LINE.fullmatch(line).groups()
        datetime.fromisoformat(time.replace("Z", "+00:00"))
        metrics[name] = float(value)
    assert metrics["eval_macro_f1"] > 0.85 and {"eval_accuracy", "eval_roc_auc"} <= set(metrics)
    saved = tabular_model.load(tmp_path / "model").manifest["hyperparameters"]
    assert (saved["n_estimators"], saved["max_depth"], saved["min_samples_leaf"]) == (20, 3, 2)


def test_data_at_a_uri(breast_cancer_files, tmp_path):
    """Katib trial pods read the splits at their artifact URIs; file:// stands in for gs:// and s3://."""
    train_path, eval_path = (Path(path).resolve().as_uri() for path in breast_cancer_files)
    arguments = config_arguments(json.dumps({
        "train_path": train_path, "eval_path": eval_path, "model_dir": str(tmp_path / "model"),
        "target_column": "diagnosis", "algorithm": "linear", "num_threads": 1,
    }))
    result = train_tabular_model(**arguments)
    assert result.metrics["eval_rows"] == 143 and result.metrics["eval_accuracy"] > 0.9


def test_config_from_a_file(diabetes_files, tmp_path):
    train_path, eval_path = diabetes_files
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "train_path": str(train_path), "eval_path": str(eval_path), "model_dir": str(tmp_path / "model"),
        "task": "regression", "target_column": "progression", "algorithm": "linear", "alpha": 3.0,
    }))
    done = run_trainer(str(config))
    assert done.returncode == 0, done.stderr
    assert "eval_rmse=" in done.stdout
    assert tabular_model.load(tmp_path / "model").manifest["hyperparameters"]["alpha"] == 3.0


def test_unknown_field_is_a_clear_error_and_writes_nothing(breast_cancer_files, tmp_path):
    train_path, eval_path = breast_cancer_files
    config = {"train_path": str(train_path), "eval_path": str(eval_path), "model_dir": str(tmp_path / "model"),
              "target_column": "diagnosis", "epochs": 3}
    done = run_trainer(json.dumps(config))
    assert done.returncode == 1
    assert "unknown field(s) ['epochs']" in done.stderr
    assert not (tmp_path / "model").exists()


def test_bad_configs_name_the_field(tmp_path):
    base = {"train_path": "t", "eval_path": "e", "model_dir": "m"}
    (tmp_path / "list.json").write_text("[1]")
    cases = {
        json.dumps({"train_path": "t"}): "missing field(s) ['eval_path', 'model_dir']",
        json.dumps({**base, "seed": "7"}): "field 'seed' must be a JSON integer",
        json.dumps({**base, "max_depth": 3, "hyperparameters": {"max_depth": 4}}): "['max_depth'] given both",
        str(tmp_path / "list.json"): "must be a JSON object, got list",
        str(tmp_path / "absent.json"): "neither a JSON object nor a readable file",
    }
    for text, message in cases.items():
        try:
            config_arguments(text)
        except TabularError as error:
            assert message in str(error), (text, str(error))
        else:
            raise AssertionError(f"{text} was accepted")


def test_out_of_range_hyperparameter_exits_non_zero(breast_cancer_files, tmp_path):
    train_path, eval_path = breast_cancer_files
    config = {"train_path": str(train_path), "eval_path": str(eval_path), "model_dir": str(tmp_path / "model"),
              "target_column": "diagnosis", "max_depth": 0}
    done = run_trainer(json.dumps(config))
    assert done.returncode == 1 and "hyperparameter 'max_depth' must be in [1, 32]" in done.stderr
