"""The registry commands (`python -m components.register.cli`) and their forwarding from `kfp-mlops`."""

from __future__ import annotations

import argparse
import json

import pytest

from components.register import cli
from components.register.locations import embedded_tracking_uri
from components.register.registry import DataVersion, ModelRegistry, PipelineRun
from components.register.tests.samples import INGEST_METADATA
from kfp_mlops import models_cli
from kfp_mlops.paths import ENVS_DIR


@pytest.fixture
def two_versions(embedded_uri, model_name, model_dir):
    registry = ModelRegistry(embedded_uri)
    for run in ("run-a", "run-b"):
        registry.register(
            model_name, model_dir, data=DataVersion.from_metadata(INGEST_METADATA), pipeline_run=PipelineRun(run, "t")
        )
    return embedded_uri


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_promote_show_rollback_lineage_and_download(two_versions, model_name, capsys, tmp_path):
    uri = ["--tracking-uri", two_versions]
    assert run(capsys, "models", "promote", model_name, "1", "--reason", "first", "--actor", "alice", *uri)[0] == 0
    status, out, _ = run(capsys, "models", "promote", model_name, "2", "--reason", "better F1", "--actor", "bob", *uri)
    assert status == 0 and "champion set v1 -> v2  by bob: better F1" in out

    status, out, _ = run(capsys, "models", "list", *uri)
    assert status == 0 and f"{model_name}" in out and "latest v2" in out and "champion=v2" in out

    status, out, _ = run(capsys, "models", "rollback", model_name, "--reason", "p99 latency", *uri)
    assert status == 0 and "champion rollback v2 -> v1" in out and "p99 latency" in out

    ModelRegistry(two_versions).record_declined(model_name, "champion", "2", reason="not blessed by gate: x", actor="r9")
    status, out, _ = run(capsys, "models", "show", model_name, *uri)
    assert status == 0 and "champion declined v2 (stays v1)  by r9: not blessed by gate: x" in out

    status, out, _ = run(capsys, "models", "show", model_name, "--json", *uri)
    shown = json.loads(out)
    assert [v["aliases"] for v in shown["versions"]] == [["champion"], []]
    assert [e["action"] for e in shown["alias_history"]] == ["set", "set", "rollback", "declined"]

    status, out, _ = run(capsys, "lineage", model_name, *uri)  # the champion by default
    assert status == 0
    assert f"model version   models:/{model_name}/1  aliases: champion" in out
    assert f"data version    sha256 {'a' * 64} (ingest-content)" in out
    assert "pipeline run    run-a  task t" in out

    target = tmp_path / "serving" / "model"
    status, out, _ = run(capsys, "models", "download", model_name, "--version", "2", "--out", str(target), *uri)
    assert status == 0 and (target / "registry.json").exists()
    status, out, _ = run(capsys, "lineage", "--model-dir", str(target), "--json", *uri)
    assert [(entry["model"]["name"], entry["model"]["version"]) for entry in json.loads(out)] == [
        (model_name, "1"), (model_name, "2"),
    ]  # fmt: skip  (both versions hold the same files)


def test_errors_are_one_line_and_exit_1(two_versions, model_name, capsys):
    status, out, err = run(capsys, "models", "promote", model_name, "9", "--reason", "x", "--tracking-uri", two_versions)
    assert status == 1 and err.strip() == f"kfp-mlops models promote: model '{model_name}' has no version 9 (versions: 1, 2)"
    status, _, err = run(capsys, "lineage", model_name, "--alias", "champion", "--tracking-uri", two_versions)
    assert status == 1 and f"model '{model_name}' has no alias 'champion'; pass --version" in err


def test_ui_prints_the_mlflow_ui_command_of_the_train_venv(capsys):
    status, out, _ = run(capsys, "ui", "--port", "5055", "--tracking-uri", "")
    assert status == 0
    assert f"{ENVS_DIR / 'train' / 'bin' / 'mlflow'} ui --backend-store-uri {embedded_tracking_uri()}" in out
    assert "http://127.0.0.1:5055" in out
    _, out, _ = run(capsys, "ui", "--tracking-uri", "http://mlflow.kfp-mlops:5000")
    assert "open http://mlflow.kfp-mlops:5000" in out and "port-forward svc/mlflow" in out


def kfp_mlops_parser() -> argparse.ArgumentParser:
    """The shape of kfp_mlops/cli.py's parser, with the registry commands added the way the lead adds them."""
    parser = argparse.ArgumentParser(prog="kfp-mlops")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models_cli.add_commands(commands)
    return parser


def test_kfp_mlops_forwards_the_commands_to_the_train_venv(two_versions, model_name, capfd):
    args = kfp_mlops_parser().parse_args(["models", "list", "--json", "--tracking-uri", two_versions])
    args.func(args)
    listed = json.loads(capfd.readouterr().out)
    assert listed == [{"name": model_name, "latest_version": "2", "aliases": {}}]

    args = kfp_mlops_parser().parse_args(["models", "show", "no-such-model", "--tracking-uri", two_versions])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    assert exited.value.code == 1
    assert "kfp-mlops models show: no registered model named 'no-such-model'" in capfd.readouterr().err


def test_ui_runs_without_the_train_venv():
    args = kfp_mlops_parser().parse_args(["ui"])
    assert args.func is cli.cmd_ui
