"""The kfp-mlops command line: help, listing, compiling, parameter checks before anything runs."""

import subprocess

import pytest

from kfp_mlops import cli, demo_data
from kfp_mlops.paths import PROJECT_ROOT

COMMANDS = ["envs", "list", "compile", "run", "run-component", "submit", "serve", "models", "lineage", "ui", "demo-data"]
CLI = str(PROJECT_ROOT / ".envs" / "authoring" / "bin" / "kfp-mlops")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = subprocess.run([CLI, command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"usage: kfp-mlops {command}" in result.stdout


def test_list_prints_one_line_per_pipeline_and_component(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["pipeline", "text_classification"] for line in lines)
    ingest = next(line for line in lines if line.split()[:2] == ["component", "ingest"])
    assert "[data]" in ingest


def test_compile_writes_yaml_with_the_chosen_registry(tmp_path):
    # A fresh process: image references are fixed when component modules are first imported.
    result = subprocess.run(
        [CLI, "compile", "text_classification", "--registry", "registry.example.com/ml", "--output-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    compiled = (tmp_path / "text_classification.yaml").read_text()
    assert "image: registry.example.com/ml/kfp-mlops-train:" in compiled


def test_compile_without_a_name_says_what_to_do(capsys):
    assert cli.main(["compile"]) == 1
    assert "name a pipeline or pass --all" in capsys.readouterr().err


def test_unknown_pipeline_is_named_with_the_known_ones(capsys):
    assert cli.main(["run", "nope", "--local"]) == 1
    err = capsys.readouterr().err
    assert "unknown pipeline 'nope'" in err and "text_classification" in err


@pytest.mark.parametrize(
    "param, message",
    [
        ("epochs=many", "parameter 'epochs' expects Integer, got 'many'"),
        ("colour=red", "has no parameter 'colour'"),
        ("fail_on_anomalies=perhaps", "expects Boolean"),
        ("source", "expected name=value"),
    ],
)
def test_submit_checks_parameters_before_contacting_the_host(param, message, capsys):
    # The host does not exist: a parameter error must come first, without any connection attempt.
    args = ["submit", "text_classification", "--host", "http://127.0.0.1:9", "--param", "source=gs://b/t.csv", "--param", param]
    assert cli.main(args) == 1
    assert message in capsys.readouterr().err


def test_submit_names_a_missing_required_parameter(capsys):
    assert cli.main(["submit", "text_classification", "--host", "http://127.0.0.1:9"]) == 1
    assert "needs 'source'" in capsys.readouterr().err


def test_demo_tickets_are_reproducible_and_drift_shifts_the_mix():
    first, again = demo_data.tickets(500, seed=3), demo_data.tickets(500, seed=3)
    assert first == again
    assert first != demo_data.tickets(500, seed=4)
    share = lambda rows, c: sum(r["category"] == c for r in rows) / len(rows)  # noqa: E731
    drifted = demo_data.tickets(2000, seed=3, drift=True)
    base = demo_data.tickets(2000, seed=3)
    assert share(drifted, "outage") > 2 * share(base, "outage")
    assert not any(demo_data.DRIFT_PRODUCT in r["text"] for r in base)
    assert any(demo_data.DRIFT_PRODUCT in r["text"] for r in drifted)


def test_demo_data_file_has_header_and_rows(tmp_path, capsys):
    out = tmp_path / "tickets.csv"
    assert cli.main(["demo-data", "tickets", "--out", str(out), "--rows", "25"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(demo_data.FIELDS) and len(lines) == 26


def test_run_component_takes_parameters_and_artifact_paths(tmp_path, capsys):
    source = demo_data.write("tickets", tmp_path / "tickets.csv", rows=300, seed=2)
    root = tmp_path / "runs"
    assert cli.main(["run-component", "ingest", "--local", "--pipeline-root", str(root),
                     "--param", f"source={source}", "--param", "label_column=category"]) == 0
    out = capsys.readouterr().out
    train_path = next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["train_data"])
    eval_path = next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["eval_data"])

    # Artifact inputs come in through importers: validate reads the two Parquet files written above.
    assert cli.main(["run-component", "validate", "--local", "--pipeline-root", str(root),
                     "--param", f"train_data={train_path}", "--param", f"eval_data={eval_path}"]) == 0
    assert "anomalies=0" in capsys.readouterr().out
