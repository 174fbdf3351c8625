"""The rollout logic with the real kubernetes client against a fake KServe API server (tests/fake_kserve.py),
and smoke requests to real model servers on the tiny model: first deployment, canary then promotion, a
canary whose smoke request fails rolled back, a model that fails to load, deadlines and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from components.deploy.inference_service import InferenceServiceConfig, build_inference_service
from components.deploy.kserve_client import (
    InferenceServices,
    current_namespace,
    deploy_with_kserve,
    roll_out,
    storage_uri_for,
)
from components.deploy.smoke import DeployError
from components.deploy.tests.fake_kserve import FakeKServeApi
from kfp_mlops.paths import PROJECT_ROOT
from serving.process import ServerProcess
from serving.tests.tiny_model import LABELS

NAME = "text-classifier"
NAMESPACE = "ml"
V1 = "gs://models/text-classifier/v1"
V2 = "gs://models/text-classifier/v2"
REJECTING = "gs://models/text-classifier/v3-rejects-long-texts"
MISSING = "gs://models/text-classifier/never-uploaded"
SMOKE = ["my card payment was declined twice"]
FAST = {"ready_timeout_s": 30.0, "poll_s": 0.01}


@dataclass
class Servers:
    good: ServerProcess
    rejecting: ServerProcess  # serves the same model but refuses texts over 5 characters: the smoke text fails

    @property
    def good_alias(self) -> str:
        """The good server under another loopback address, so a test can tell which URL a request went to."""
        return self.good.url.replace("127.0.0.1", "127.0.0.2")


@pytest.fixture(scope="module")
def servers(tiny_model_dir: Path) -> Iterator[Servers]:
    # Module scope: they stop before test_local.py, which checks that it leaves no child process.
    with ThreadPoolExecutor(2) as pool:
        good = pool.submit(ServerProcess.start, tiny_model_dir, NAME)
        rejecting = pool.submit(ServerProcess.start, tiny_model_dir, NAME, extra_args=["--max_text_chars", "5"])
        started = [good.result(), rejecting.result()]
    try:
        yield Servers(*started)
    finally:
        for server in started:
            server.stop()


@pytest.fixture()
def fake(servers: Servers) -> Iterator[FakeKServeApi]:
    model_servers = {V1: servers.good.url, V2: servers.good_alias, REJECTING: servers.rejecting.url}
    with FakeKServeApi(model_servers) as api:
        yield api


@pytest.fixture()
def services(fake: FakeKServeApi) -> InferenceServices:
    return InferenceServices(k8s.CustomObjectsApi(k8s.ApiClient(k8s.Configuration(host=fake.url))), NAMESPACE)


def config(storage_uri: str, **settings) -> InferenceServiceConfig:
    return InferenceServiceConfig(
        name=NAME, namespace=NAMESPACE, storage_uri=storage_uri, image="registry/serve:1", **settings
    )


def storage_uri_of(isvc: dict) -> str:
    return isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"]


def test_first_deployment_creates_waits_for_the_new_generation_and_smoke_tests(fake, services, servers):
    rollout = roll_out(services, config(V1), SMOKE, **FAST)
    assert rollout.url == servers.good.url
    assert rollout.revision == "generation-1"
    assert rollout.previous_revision == ""
    assert rollout.smoke.url == f"{servers.good.url}/v1/models/{NAME}:predict"
    assert rollout.smoke.predictions[0]["label"] in LABELS
    stored = fake.stored(NAMESPACE, NAME)
    assert stored["spec"] == build_inference_service(config(V1))["spec"]
    methods = [(method, path.split("?")[0].rsplit("/", 1)[-1]) for method, path, _ in fake.requests]
    # get (404), create, then reads until the controller has observed generation 1 (two stale reads).
    assert methods == [("GET", NAME), ("POST", "inferenceservices"), ("GET", NAME), ("GET", NAME), ("GET", NAME)]
    assert "fieldValidation=Strict" in fake.requests[1][1]


def test_a_canary_is_smoke_tested_on_its_own_url_then_promoted(fake, services, servers):
    first = roll_out(services, config(V1, deployment_mode="Knative", canary_traffic_percent=20), SMOKE, **FAST)
    assert first.canary_traffic_percent == 0  # nothing to split with on a first deployment
    assert first.revision == f"{NAME}-predictor-00001"

    rollout = roll_out(services, config(V2, deployment_mode="Knative", canary_traffic_percent=20), SMOKE, **FAST)

    assert rollout.canary_traffic_percent == 20
    assert rollout.smoke.url == f"{servers.good_alias}/v1/models/{NAME}:predict"  # the canary's URL, not the service's
    assert (rollout.previous_revision, rollout.revision) == (f"{NAME}-predictor-00001", f"{NAME}-predictor-00002")
    canary_patch, promotion = fake.patches
    assert canary_patch["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert promotion == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    stored = fake.stored(NAMESPACE, NAME)
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]
    assert storage_uri_of(stored) == V2
    (traffic,) = stored["status"]["components"]["predictor"]["traffic"]
    assert (traffic["revisionName"], traffic["percent"]) == (f"{NAME}-predictor-00002", 100)
    assert rollout.url == servers.good_alias


def test_a_canary_whose_smoke_request_fails_is_rolled_back_to_the_previous_spec(fake, services, servers):
    roll_out(services, config(V1, deployment_mode="Knative"), SMOKE, **FAST)
    previous_spec = fake.stored(NAMESPACE, NAME)["spec"]

    with pytest.raises(DeployError) as raised:
        roll_out(services, config(REJECTING, deployment_mode="Knative", canary_traffic_percent=10), SMOKE, **FAST)

    message = str(raised.value)
    assert f"smoke request to {servers.rejecting.url}/v1/models/{NAME}:predict failed: HTTP 400" in message
    restored = f"{NAME}-predictor-00003"
    assert f"rolled InferenceService {NAMESPACE}/{NAME} back to its previous spec (revision {restored})" in message
    stored = fake.stored(NAMESPACE, NAME)
    assert stored["spec"] == previous_spec
    # Traffic is pinned to the rolled-out revision (canary at 0%) while the restored one starts, then handed over.
    canary_patch, restore, handover = fake.patches
    assert canary_patch["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert restore["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert handover == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    (traffic,) = stored["status"]["components"]["predictor"]["traffic"]
    assert (traffic["revisionName"], traffic["percent"], traffic["url"]) == (restored, 100, servers.good.url)


def test_an_update_whose_model_fails_to_load_is_rolled_back_without_waiting_for_the_deadline(fake, services):
    roll_out(services, config(V1), SMOKE, **FAST)
    previous_spec = fake.stored(NAMESPACE, NAME)["spec"]
    cause = rf"(?s)failed: BlockedByFailedLoad: ModelLoadFailed .*download {MISSING}.*rolled"
    with pytest.raises(DeployError, match=cause):
        roll_out(services, config(MISSING), SMOKE, ready_timeout_s=3600, poll_s=0.01)
    assert fake.stored(NAMESPACE, NAME)["spec"] == previous_spec
    assert storage_uri_of(fake.stored(NAMESPACE, NAME)) == V1


def test_a_first_deployment_that_fails_is_deleted(fake, services):
    deleted = rf"(?s)BlockedByFailedLoad.*the new InferenceService {NAMESPACE}/{NAME} was deleted"
    with pytest.raises(DeployError, match=deleted):
        roll_out(services, config(MISSING), SMOKE, **FAST)
    assert fake.services == {}


def test_a_service_not_ready_by_the_deadline_fails_with_the_last_reason(servers, tiny_model_dir):
    with FakeKServeApi({V1: servers.good.url}, reads_until_reconciled=10**9) as fake:
        services = InferenceServices(k8s.CustomObjectsApi(k8s.ApiClient(k8s.Configuration(host=fake.url))), NAMESPACE)
        with pytest.raises(DeployError, match="was not ready after 0s: the controller has not observed generation 1"):
            roll_out(services, config(V1), SMOKE, ready_timeout_s=0.2, poll_s=0.01)
        assert fake.services == {}


def test_the_deployment_mode_of_an_existing_service_is_not_changed(fake, services):
    roll_out(services, config(V1), SMOKE, **FAST)
    with pytest.raises(DeployError, match="runs in Standard mode and KServe cannot change the mode"):
        roll_out(services, config(V2, deployment_mode="Serverless"), SMOKE, **FAST)
    assert fake.patches == []


def test_an_api_refusal_names_the_object_the_status_and_the_reason(services):
    manifest = build_inference_service(config(V1))
    manifest["spec"]["predictor"]["minReplica"] = 1
    refusal = rf"refused to create InferenceService {NAMESPACE}/{NAME}: HTTP 422 .*'minReplica' was unexpected"
    with pytest.raises(DeployError, match=refusal):
        services.create(manifest)


def test_deploy_with_kserve_writes_the_report_and_returns_url_prediction_and_revision(
    fake, services, servers, tmp_path
):
    report = tmp_path / "report.md"
    outputs = deploy_with_kserve(
        str(report), V1, NAME, SMOKE[0], namespace=NAMESPACE, deployment_mode="Knative", api=services.api, **FAST
    )
    assert outputs.url == servers.good.url
    assert outputs.revision == f"{NAME}-predictor-00001"
    prediction = json.loads(outputs.prediction)
    assert prediction["label"] in LABELS and list(prediction["scores"]) == LABELS
    text = report.read_text()
    assert f"# Deployment of `{NAME}` (KServe, Knative mode)" in text
    assert f"`{NAMESPACE}/{NAME}`" in text and V1 in text and prediction["label"] in text
    assert "promoted" not in text and "| created the InferenceService" in text


def test_invalid_settings_fail_before_any_call_to_the_cluster(fake, services, tmp_path):
    with pytest.raises(ValueError, match="storage_uri '/tmp/model' is not a URI"):
        deploy_with_kserve(str(tmp_path / "r.md"), "/tmp/model", NAME, SMOKE[0], namespace=NAMESPACE, api=services.api)
    assert fake.requests == []
    assert not (tmp_path / "r.md").exists()


def test_the_role_grants_exactly_the_verbs_the_rollouts_use(fake, services):
    roll_out(services, config(V1, deployment_mode="Knative"), SMOKE, **FAST)
    with pytest.raises(DeployError):
        roll_out(services, config(REJECTING, deployment_mode="Knative", canary_traffic_percent=10), SMOKE, **FAST)
    with pytest.raises(DeployError):
        roll_out(InferenceServices(services.api, "other"), config(MISSING), SMOKE, **FAST)
    role = yaml.safe_load((PROJECT_ROOT / "manifests" / "serving" / "role.yaml").read_text())
    (rule,) = role["rules"]
    assert (rule["apiGroups"], rule["resources"]) == (["serving.kserve.io"], ["inferenceservices"])
    assert set(rule["verbs"]) == fake.verbs() == {"get", "create", "patch", "delete"}


def test_the_namespace_defaults_to_the_pods_own(tmp_path):
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("team-a\n")
    assert current_namespace(namespace_file) == "team-a"
    with pytest.raises(DeployError, match="give the namespace to deploy into when running outside a pod"):
        current_namespace(tmp_path / "missing")


def test_kfp_minio_artifacts_are_read_through_kserve_s3_storage():
    assert storage_uri_for("minio://mlpipeline/v2/artifacts/run/model") == "s3://mlpipeline/v2/artifacts/run/model"
    assert storage_uri_for("gs://bucket/model") == "gs://bucket/model"
