"""The compiled continuous-training pipeline: what runs always, what only on drift, and the cluster-side settings
a local run cannot exercise (the canary rollout on KServe, the payload logger, the drift task's allocator)."""

import pytest
import yaml
from kfp import compiler

from kfp_mlops import catalog

MONITOR_TASKS = {"resolve-reference-data", "importer", "fit-drift-detector", "drift", "tfdv-drift", "drift-report"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "ct.yaml"
    compiler.Compiler().compile(catalog.pipeline("text_classification_ct"), package_path=str(path))
    pipeline_spec, *_ = yaml.safe_load_all(path.read_text())
    return pipeline_spec


def test_the_drift_check_runs_always_and_the_retrain_only_on_the_drift_tasks_return_value(spec):
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == MONITOR_TASKS | {"condition-1"}
    condition = root["condition-1"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--drift-Output'] == true"
    retrain = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(retrain) == {"ingest", "validate", "text-train-release"}
    assert retrain["text-train-release"]["dependentTasks"] == ["ingest", "validate"]


def test_the_reports_merge_both_detectors_and_tfdv_reads_the_tested_window(spec):
    root = spec["root"]["dag"]["tasks"]
    window = root["tfdv-drift"]["inputs"]["artifacts"]["window_data"]["taskOutputArtifact"]
    assert window == {"outputArtifactKey": "window_data", "producerTask": "drift"}
    merged = root["drift-report"]["inputs"]
    assert merged["parameters"]["detector_drift"]["taskOutputParameter"] == {"outputParameterKey": "Output", "producerTask": "drift"}
    assert merged["artifacts"]["tfdv_result"]["taskOutputArtifact"]["producerTask"] == "tfdv-drift"


def test_the_drift_task_gets_the_allocator_setting_that_bounds_the_mmd_tests_memory(spec):
    env = spec["deploymentSpec"]["executors"]["exec-drift"]["container"]["env"]
    assert {"name": "MALLOC_MMAP_THRESHOLD_", "value": "1048576"} in env


def test_a_blessed_model_goes_out_as_a_knative_canary_that_keeps_the_payload_logger(spec):
    defaults = {name: p.get("defaultValue") for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert defaults["canary_traffic_percent"] == 10 and defaults["deployment_mode"] == "Knative"
    condition = spec["root"]["dag"]["tasks"]["condition-1"]["componentRef"]["name"]
    retrain = spec["components"][condition]["dag"]["tasks"]["text-train-release"]["inputs"]["parameters"]
    release = spec["components"]["comp-text-train-release"]["dag"]["tasks"]
    blessed = spec["components"][release["condition-1"]["componentRef"]["name"]]["dag"]["tasks"]["deploy"]
    for name in ("canary_traffic_percent", "deployment_mode", "logger_url"):
        assert retrain[name] == {"componentInputParameter": f"pipelinechannel--{name}"}
        assert blessed["inputs"]["parameters"][name] == {"componentInputParameter": f"pipelinechannel--{name}"}


def test_the_reference_is_the_registry_champions_training_split_unless_given_and_never_cached(spec, tmp_path):
    root = spec["root"]["dag"]["tasks"]
    reference = root["resolve-reference-data"]
    assert reference["inputs"]["parameters"] == {
        "reference_data": {"componentInputParameter": "reference_data"},
        "registry_model_name": {"componentInputParameter": "model_name"},
        "tracking_uri": {"componentInputParameter": "tracking_uri"},
    }
    assert reference["cachingOptions"] == {}, "the champion moves between runs: a cached copy would be stale"
    assert spec["root"]["inputDefinitions"]["parameters"]["reference_data"]["defaultValue"] == ""
    for consumer, name in (("fit-drift-detector", "reference"), ("tfdv-drift", "reference_data")):
        produced = root[consumer]["inputs"]["artifacts"][name]["taskOutputArtifact"]
        assert produced == {"outputArtifactKey": "reference", "producerTask": "resolve-reference-data"}
    path = tmp_path / "ct.yaml"
    compiler.Compiler().compile(catalog.pipeline("text_classification_ct"), package_path=str(path))
    _, platform = yaml.safe_load_all(path.read_text())
    secret = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-resolve-reference-data"]
    assert secret["secretAsEnv"][0]["secretName"] == "mlflow-client-credentials" and secret["secretAsEnv"][0]["optional"]
