"""The InferenceService builder: every manifest it makes passes the upstream KServe CRD (strictly), and the
settings KServe would reject or ignore are refused with the setting named."""

import copy
from dataclasses import replace

import pytest

from components.deploy.inference_service import (
    DEPLOYMENT_MODE_ANNOTATION,
    GPU_RESOURCE,
    MODEL_VERSION_ANNOTATION,
    REGISTERED_MODEL_ANNOTATION,
    TAG_ROUTING_ANNOTATION,
    InferenceServiceConfig,
    InferenceServiceSpecError,
    Resources,
    build_inference_service,
    example_inference_service,
    merge_patch_between,
    update_patch,
)
from kfp_mlops import crd_schema
from components.deploy.tests.fake_kserve import apply_merge_patch

needs_crds = pytest.mark.skipif(
    not (crd_schema.CRD_DIR / crd_schema.INFERENCE_SERVICE_CRD).exists(),
    reason=f"needs the upstream KServe CRDs at {crd_schema.CRD_DIR} (present in CI)",
)

BASE = InferenceServiceConfig(
    name="text-classifier", namespace="ml", storage_uri="gs://models/text-classifier/v1", image="registry/serve:1"
)
CONFIGS = {
    "standard-defaults": BASE,
    "knative-canary": replace(
        BASE, deployment_mode="Knative", canary_traffic_percent=25, min_replicas=0, max_replicas=4
    ),
    "gpu-logger-service-account": replace(
        BASE,
        resources=Resources(cpu="500m", memory="3Gi", gpu=1),
        logger_url="http://payload-sink.ml.svc.cluster.local",
        service_account_name="model-reader",
        max_replicas=2,
    ),
    "registered-version": replace(BASE, registered_model="text-classifier", model_version="7"),
}


@needs_crds
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_built_manifest_passes_the_inference_service_crd(config):
    assert crd_schema.manifest_errors(build_inference_service(config), crd_schema.INFERENCE_SERVICE_CRD, "v1beta1") == []


@needs_crds
@pytest.mark.parametrize(
    "typo",
    [
        ("spec", "predictor", "minReplica"),
        ("spec", "predictor", "containers", 0, "imagePullPolicyy"),
        ("spec", "predicter"),
        ("spec", "predictor", "logger", "urls"),
    ],
    ids=lambda path: ".".join(map(str, path)),
)
def test_the_schema_check_is_strict_a_typo_d_field_is_rejected(typo):
    manifest = build_inference_service(CONFIGS["gpu-logger-service-account"])
    node = manifest
    for key in typo[:-1]:
        node = node[key]
    node[typo[-1]] = "1"
    assert crd_schema.manifest_errors(manifest, crd_schema.INFERENCE_SERVICE_CRD, "v1beta1") == [
        f"{'.'.join(map(str, typo[:-1]))}: Additional properties are not allowed ('{typo[-1]}' was unexpected)"
    ]


@needs_crds
def test_the_schema_check_rejects_bad_values_too():
    manifest = build_inference_service(BASE)
    manifest["spec"]["predictor"]["logger"] = {"mode": "everything", "url": "http://sink"}
    manifest["metadata"]["annotations"]["replicas"] = 3
    assert crd_schema.manifest_errors(manifest, crd_schema.INFERENCE_SERVICE_CRD, "v1beta1") == [
        "metadata.annotations.replicas: 3 is not of type 'string'",
        "spec.predictor.logger.mode: 'everything' is not one of ['all', 'request', 'response']",
    ]


def test_the_predictor_runs_the_serve_image_on_the_downloaded_model():
    manifest = build_inference_service(CONFIGS["gpu-logger-service-account"])
    predictor = manifest["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["image"] == "registry/serve:1"
    assert container["command"] + container["args"] == [
        "python", "-m", "serving.server",
        "--model_dir", "/mnt/models", "--model_name", "text-classifier", "--http_port", "8080",
    ]  # fmt: skip
    # KServe's storage initializer downloads the STORAGE_URI of the kserve-container to /mnt/models.
    assert container["name"] == "kserve-container"
    assert container["env"] == [{"name": "STORAGE_URI", "value": "gs://models/text-classifier/v1"}]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "3Gi", GPU_RESOURCE: "1"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert predictor["logger"] == {"mode": "all", "url": "http://payload-sink.ml.svc.cluster.local"}
    assert predictor["serviceAccountName"] == "model-reader"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 2)
    assert "canaryTrafficPercent" not in predictor
    assert manifest["metadata"]["annotations"] == {DEPLOYMENT_MODE_ANNOTATION: "Standard"}


def test_a_knative_canary_sets_the_traffic_share_and_tag_routing():
    manifest = build_inference_service(CONFIGS["knative-canary"])
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert manifest["metadata"]["annotations"] == {
        DEPLOYMENT_MODE_ANNOTATION: "Knative",
        TAG_ROUTING_ANNOTATION: "true",
    }


@pytest.mark.parametrize(("given", "written"), [("Serverless", "Knative"), ("RawDeployment", "Standard")])
def test_legacy_mode_names_are_written_as_kserve_0_21_names_them(given, written):
    manifest = build_inference_service(replace(BASE, deployment_mode=given))
    assert manifest["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"canary_traffic_percent": 10}, "canary_traffic_percent 10 needs deployment_mode Knative"),
        ({"canary_traffic_percent": 10, "deployment_mode": "RawDeployment"}, "needs deployment_mode Knative"),
        ({"min_replicas": 0}, "min_replicas 0 is not allowed in Standard mode: scale to zero needs Knative mode"),
        ({"max_replicas": 0}, r"max_replicas 0 must be at least 1"),
        ({"min_replicas": 3, "max_replicas": 2}, r"max_replicas 2 must be at least 1 and at least min_replicas \(3\)"),
        ({"canary_traffic_percent": 120, "deployment_mode": "Knative"}, "canary_traffic_percent 120 must be between"),
        ({"deployment_mode": "ModelMesh"}, "deployment_mode 'ModelMesh' is not a KServe deployment mode"),
        ({"name": "Text_Classifier"}, "name 'Text_Classifier' must be a DNS label"),
        ({"name": "x" * 54}, "at most 53 characters"),
        ({"namespace": ""}, "namespace is empty"),
        ({"storage_uri": "/tmp/model"}, "storage_uri '/tmp/model' is not a URI"),
        ({"storage_uri": "ftp://host/model"}, "does not download ftp:// URIs"),
        ({"resources": Resources(memory="2 GB")}, "memory '2 GB' is not a Kubernetes quantity"),
        ({"resources": Resources(gpu=-1)}, "gpu -1 cannot be negative"),
        ({"logger_url": "payload-sink:8080"}, "logger_url 'payload-sink:8080' must be an http"),
    ],
)
def test_settings_kserve_rejects_or_ignores_are_refused_with_the_setting_named(change, message):
    with pytest.raises(InferenceServiceSpecError, match=message):
        build_inference_service(replace(BASE, **change))


def test_an_update_patch_removes_the_optional_fields_the_new_manifest_leaves_out():
    deployed = build_inference_service(replace(CONFIGS["gpu-logger-service-account"], deployment_mode="Knative"))
    deployed["spec"]["predictor"]["canaryTrafficPercent"] = 10
    deployed["metadata"]["annotations"]["kept.example.com/note"] = "set by someone else"
    wanted = build_inference_service(replace(BASE, deployment_mode="Knative"))
    patched = apply_merge_patch(deployed, update_patch(wanted))
    assert patched["spec"] == wanted["spec"]
    assert patched["metadata"]["annotations"] == {
        **wanted["metadata"]["annotations"],
        "kept.example.com/note": "set by someone else",
    }


def test_a_registered_version_is_annotated_and_an_unregistered_update_removes_the_annotations():
    registered = build_inference_service(CONFIGS["registered-version"])
    assert registered["metadata"]["annotations"] == {
        DEPLOYMENT_MODE_ANNOTATION: "Standard",
        REGISTERED_MODEL_ANNOTATION: "text-classifier",
        MODEL_VERSION_ANNOTATION: "7",
    }
    unregistered = build_inference_service(BASE)
    assert apply_merge_patch(registered, update_patch(unregistered))["metadata"] == unregistered["metadata"]
    with pytest.raises(InferenceServiceSpecError, match="registered_model and model_version go together"):
        build_inference_service(replace(BASE, model_version="7"))


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}}),
        ({"a": [1, 2], "x": {"y": 1}}, {"a": [2], "z": {"w": 1}}),
        ({"a": 1}, {"a": 1}),
    ],
)
def test_merge_patch_between_turns_current_into_target(current, target):
    assert apply_merge_patch(copy.deepcopy(current), merge_patch_between(current, target)) == target


def test_the_example_manifest_is_a_knative_canary_with_a_payload_logger():
    predictor = example_inference_service()["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["logger"]["mode"] == "all"
