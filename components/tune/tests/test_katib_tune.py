"""The Katib backend end to end against a stand-in Kubernetes API (no cluster can run here): the real
KatibClient creates the Experiment, waits for it and reads the trials, and the outputs are written."""

import json
from pathlib import Path

import pytest
import yaml
from kubeflow.katib import KatibClient
from kubernetes import client as k8s

from components.tune.experiment import TrialSettings
from components.tune.katib_tune import experiment_name, run_tune, trial_data_path, tune_with_katib
from components.tune.results import TuneError
from components.tune.search_space import parse_search_space
from components.tune.tests.fake_katib import FakeKatibApi, Outcome
from components.tune.webhook import NAME_PATTERN
from kfp_mlops.paths import PROJECT_ROOT

SPACE = {
    "objective": {"type": "maximize", "objectiveMetricName": "eval_accuracy", "additionalMetricNames": ["eval_loss"]},
    "algorithm": {"algorithmName": "random"},
    "parameters": [
        {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-3"}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
        {
            "name": "base_model",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["tiny", "minilm", "/models/x"]},
        },
    ],
    "maxTrialCount": 3,
    "parallelTrialCount": 3,
    "maxFailedTrialCount": 1,
}
TRIAL = TrialSettings("gs://bucket/train.parquet", "gs://bucket/eval.parquet", {"epochs": 2}, image="train:test")


def outcome(assignments):
    """minilm does best, tiny next, and the local-path model fails; accuracy peaks before the last epoch."""
    if assignments["base_model"] == "/models/x":
        return Outcome("Failed", message="Trial has failed. Job message: BackoffLimitExceeded")
    accuracy = {"tiny": [0.6, 0.7], "minilm": [0.9, 0.85]}[assignments["base_model"]]
    return Outcome("Succeeded", {"eval_accuracy": accuracy, "eval_loss": [0.5, 0.4]})


def katib_client(api):
    configuration = k8s.Configuration()
    configuration.host = api.url
    return KatibClient(client_configuration=configuration, namespace="team-a")


def tune(api, space=SPACE, **options):
    options = {"name": "text-tune", "seed": 3, "timeout_seconds": 5, "poll_seconds": 0.05, **options}
    return tune_with_katib(parse_search_space(space), TRIAL, client=katib_client(api), **options)


def test_the_experiment_is_created_waited_for_and_its_best_trial_read_back():
    with FakeKatibApi(outcome) as api:
        result = tune(api)
    created = api.experiments[("team-a", "text-tune")]
    assert created["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "3"}]
    assert result.backend == "katib"
    assert result.best_parameters == {"learning_rate": 0.00050500, "batch_size": 32, "base_model": "minilm"}
    assert result.best.name == "text-tune-00000001"
    # The best epoch's accuracy (metricStrategies max) and the lowest loss.
    assert result.best.metrics == {"eval_accuracy": 0.9, "eval_loss": 0.4}
    assert [(t.name, t.state) for t in result.trials] == [
        ("text-tune-00000000", "Succeeded"),
        ("text-tune-00000001", "Succeeded"),
        ("text-tune-00000002", "Failed"),
    ]
    assert result.trials[2].message == "Trial has failed. Job message: BackoffLimitExceeded"
    assert result.trials[2].metrics == {}


def test_each_trial_job_runs_the_trainer_with_its_own_values():
    with FakeKatibApi(outcome) as api:
        tune(api)
    configs = [json.loads(job["spec"]["template"]["spec"]["containers"][0]["command"][4]) for job in api.jobs]
    assert [(c["batch_size"], c["base_model"]) for c in configs] == [(16, "tiny"), (32, "minilm"), (64, "/models/x")]
    assert all(c["epochs"] == 2 and c["train_path"] == "gs://bucket/train.parquet" for c in configs)
    assert [c["learning_rate"] for c in configs] == pytest.approx([0.000175, 0.000505, 0.000835])


def test_the_client_calls_are_exactly_what_the_katib_role_grants():
    with FakeKatibApi(outcome) as api:
        tune(api)
    role = yaml.safe_load((PROJECT_ROOT / "manifests" / "katib" / "role.yaml").read_text())
    granted = {(verb, resource) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert set(api.requests) == granted
    assert all(rule["apiGroups"] == ["kubeflow.org"] for rule in role["rules"])


def test_an_experiment_that_fails_raises_with_katib_s_reason():
    with FakeKatibApi(outcome) as api:
        with pytest.raises(TuneError, match="Experiment team-a/text-tune failed") as raised:
            tune(api, {**SPACE, "maxFailedTrialCount": 0})
    assert "ExperimentMaxFailedTrialsReached: max failed count has reached); 1 of 3 trials failed" in str(raised.value)


def test_an_experiment_still_running_at_the_timeout_raises_and_is_left_to_inspect():
    with FakeKatibApi(outcome, reads_until_done=None) as api:
        with pytest.raises(TuneError, match="did not finish within 0.3 s .0 of 0 trials succeeded so far.; it is left"):
            tune(api, timeout_seconds=0.3, poll_seconds=0.05)
    assert ("team-a", "text-tune") in api.experiments
    assert api.requests.count(("get", "experiments")) >= 2


def test_an_experiment_without_a_successful_trial_raises():
    failing = {**SPACE, "maxFailedTrialCount": 3}
    with FakeKatibApi(lambda assignments: Outcome("Failed", message="OOMKilled")) as api:
        with pytest.raises(TuneError, match="succeeded without an optimal trial") as raised:
            tune(api, failing)
    assert "text-tune-00000000 Failed" in str(raised.value)


def test_an_experiment_the_webhook_would_refuse_is_not_sent():
    with FakeKatibApi(outcome) as api:
        with pytest.raises(TuneError, match="metadata.name: 'Text_Tune'"):
            tune(api, name="Text_Tune")
    assert api.requests == []


def test_a_name_already_taken_is_reported():
    with FakeKatibApi(outcome) as api:
        tune(api)
        with pytest.raises(TuneError, match="could not create Experiment team-a/text-tune"):
            tune(api)


def test_fresh_experiment_names_are_valid_and_distinct():
    names = {experiment_name(), experiment_name(), experiment_name("a-very-long-prefix-" * 3)}
    assert len(names) == 3
    assert all(NAME_PATTERN.fullmatch(name) and len(name) <= 40 for name in names)


def test_trial_pods_read_object_store_uris_but_not_minio():
    assert trial_data_path("gs://bucket/train.parquet") == "gs://bucket/train.parquet"
    with pytest.raises(TuneError, match="cannot open minio:// URIs"):
        trial_data_path("minio://mlpipeline/v2/artifacts/train")


def test_the_component_entry_writes_best_parameters_metrics_and_the_trials_page(tmp_path: Path):
    html, best = tmp_path / "trials.html", tmp_path / "best_parameters"
    with FakeKatibApi(outcome) as api:
        logged = run_tune(
            search_space=json.dumps(SPACE),
            train_uri="gs://bucket/train.parquet",
            eval_uri="gs://bucket/eval.parquet",
            settings={"epochs": 2, "base_model": "tiny"},
            trials_html_path=str(html),
            best_parameters_path=str(best),
            seed=3,
            timeout_seconds=5,
            name="text-tune",
            poll_seconds=0.05,
            client=katib_client(api),
        )
    assert json.loads(best.read_text()) == {"learning_rate": 0.000505, "batch_size": 32, "base_model": "minilm"}
    assert logged == {
        "eval_accuracy": 0.9,
        "eval_loss": 0.4,
        "trials_total": 3.0,
        "trials_succeeded": 1.0 + 1.0,
        "trials_failed": 1.0,
        "trials_early_stopped": 0.0,
        "trials_killed": 0.0,
        "param_learning_rate": 0.000505,
        "param_batch_size": 32.0,
    }
    page = html.read_text()
    assert '<tr class="best"><td>text-tune-00000001</td><td>Succeeded</td>' in page
    assert "backend: katib" in page and "BackoffLimitExceeded" in page


def test_the_component_entry_refuses_a_bad_search_space_before_any_call(tmp_path: Path):
    with FakeKatibApi(outcome) as api:
        with pytest.raises(ValueError, match="maxTrialCount: must be at least 1"):
            run_tune(
                search_space=json.dumps({**SPACE, "maxTrialCount": 0}),
                train_uri="gs://b/t",
                eval_uri="gs://b/e",
                settings={},
                trials_html_path=str(tmp_path / "t.html"),
                best_parameters_path=str(tmp_path / "best"),
                seed=0,
                timeout_seconds=1,
                client=katib_client(api),
            )
    assert api.requests == [] and not (tmp_path / "best").exists()
