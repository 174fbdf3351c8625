"""The model server on tabular models: a real `python -m serving.server` process, real HTTP clients.

Two real models trained by train_tabular's code: a random-forest priority classifier (skops) on demo task
records and an XGBoost regressor with p10/p90 (UBJSON) on scikit-learn's diabetes data.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

from components.train_tabular import tabular_model
from serving.process import ServerProcess
from serving.tests import tabular_models

MAX_INSTANCES = 8
CLASSIFIER = "priority"
REGRESSOR = "duration"
LIMITS = ["--max_instances", str(MAX_INSTANCES)]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tabular")
    return {
        CLASSIFIER: tabular_models.priority_classifier(folder),
        REGRESSOR: tabular_models.diabetes_regressor(folder),
    }


@pytest.fixture(scope="module")
def classifier(model_dirs: dict[str, Path]) -> Iterator[ServerProcess]:
    with ServerProcess.start(model_dirs[CLASSIFIER], CLASSIFIER, extra_args=LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def regressor(model_dirs: dict[str, Path]) -> Iterator[ServerProcess]:
    with ServerProcess.start(model_dirs[REGRESSOR], REGRESSOR, extra_args=LIMITS) as running:
        yield running


def v1_predict(server: ServerProcess, body: object) -> requests.Response:
    return requests.post(f"{server.url}/v1/models/{server.model_name}:predict", json=body, timeout=30)


def v2_infer(server: ServerProcess, body: object) -> requests.Response:
    return requests.post(f"{server.url}/v2/models/{server.model_name}/infer", json=body, timeout=30)


def feature_tensors(model_dir: Path, rows: list[dict]) -> list[dict]:
    """One V2 JSON tensor per feature of the model: FP64 for numeric (NaN for null), BYTES for categorical."""
    tensors = []
    for feature in tabular_model.load(model_dir).manifest["features"]:
        values = [row[feature["name"]] for row in rows]
        numeric = feature["type"] == "numeric"
        tensors.append({
            "name": feature["name"], "shape": [len(rows)], "datatype": "FP64" if numeric else "BYTES",
            "data": [math.nan if v is None else v for v in values] if numeric else values,
        })  # fmt: skip
    return tensors


def error_message(response: requests.Response) -> str:
    body = response.json()
    return body["error"] if "error" in body else json.dumps(body["detail"])


def test_metadata_lists_one_typed_input_per_feature(classifier: ServerProcess, regressor: ServerProcess) -> None:
    metadata = requests.get(f"{classifier.url}/v2/models/{CLASSIFIER}", timeout=5).json()
    inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert inputs == {"task_type": "BYTES", "requested_cpu": "FP64", "requested_memory_gb": "FP64",
                      "queue": "BYTES", "n_dependencies": "FP64"}  # fmt: skip
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("label", "BYTES"), ("score", "FP32")]
    outputs = requests.get(f"{regressor.url}/v2/models/{REGRESSOR}", timeout=5).json()["outputs"]
    assert [o["name"] for o in outputs] == ["value", "p10", "p90"]


def test_v1_classification_matches_the_model_in_process(classifier: ServerProcess, model_dirs) -> None:
    rows = tabular_models.task_rows(MAX_INSTANCES)
    rows[0]["requested_memory_gb"] = None  # a missing value is imputed, as in training
    response = v1_predict(classifier, {"instances": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    model = tabular_model.load(model_dirs[CLASSIFIER])
    expected = model.predict_proba(tabular_models.as_frame(rows))
    assert len(predictions) == len(rows)
    for prediction, probabilities in zip(predictions, expected):
        assert list(prediction["scores"]) == model.classes == ["critical", "high", "low", "medium"]
        assert list(prediction["scores"].values()) == pytest.approx(probabilities.tolist(), abs=1e-9)
        assert prediction["label"] == model.classes[int(np.argmax(probabilities))]
        assert prediction["score"] == max(prediction["scores"].values())


def test_v1_regression_returns_value_and_interval(regressor: ServerProcess, model_dirs) -> None:
    rows = tabular_models.diabetes_rows(5)
    response = v1_predict(regressor, {"instances": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    model = tabular_model.load(model_dirs[REGRESSOR])
    frame = tabular_models.as_frame(rows)
    assert [p["value"] for p in predictions] == pytest.approx(model.predict(frame).tolist(), rel=1e-6)
    bounds = model.predict_interval(frame)
    assert [p["p10"] for p in predictions] == pytest.approx(bounds[:, 0].tolist(), rel=1e-6)
    assert [p["p90"] for p in predictions] == pytest.approx(bounds[:, 1].tolist(), rel=1e-6)
    assert all(set(p) == {"value", "p10", "p90"} and p["p10"] <= p["p90"] for p in predictions)


def test_v2_json_matches_v1(classifier: ServerProcess, regressor: ServerProcess, model_dirs) -> None:
    rows = tabular_models.task_rows(3)
    response = v2_infer(classifier, {"id": "req-1", "inputs": feature_tensors(model_dirs[CLASSIFIER], rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_name"] == CLASSIFIER
    outputs = {output["name"]: output for output in body["outputs"]}
    v1 = v1_predict(classifier, {"instances": rows}).json()["predictions"]
    assert outputs["label"]["data"] == [p["label"] for p in v1]
    assert outputs["score"]["data"] == pytest.approx([p["score"] for p in v1], abs=1e-6)

    diabetes = tabular_models.diabetes_rows(2)
    response = v2_infer(regressor, {"inputs": feature_tensors(model_dirs[REGRESSOR], diabetes)})
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    v1 = v1_predict(regressor, {"instances": diabetes}).json()["predictions"]
    for name in ("value", "p10", "p90"):
        assert outputs[name]["datatype"] == "FP64" and outputs[name]["shape"] == [2]
        assert outputs[name]["data"] == pytest.approx([p[name] for p in v1], rel=1e-9)


def test_kserve_rest_client_speaks_both_protocols(regressor: ServerProcess, model_dirs) -> None:
    rows = tabular_models.diabetes_rows(3)
    tensors = feature_tensors(model_dirs[REGRESSOR], rows)

    async def call_both() -> tuple[dict, object]:
        async with InferenceRESTClient(RESTConfig(protocol="v1")) as v1_client:
            v1 = await v1_client.infer(regressor.url, {"instances": rows}, model_name=REGRESSOR)
        inputs = [InferInput(t["name"], t["shape"], t["datatype"], t["data"]) for t in tensors]
        async with InferenceRESTClient(RESTConfig(protocol="v2")) as v2_client:
            request = InferRequest(REGRESSOR, infer_inputs=inputs)
            v2 = await v2_client.infer(regressor.url, request, model_name=REGRESSOR)
        return v1, v2

    v1, v2 = asyncio.run(call_both())
    values = {output.name: output.data for output in v2.outputs}
    assert values["value"] == pytest.approx([p["value"] for p in v1["predictions"]], rel=1e-9)


def test_tritonclient_speaks_v2_with_binary_and_json_tensors(classifier: ServerProcess, model_dirs) -> None:
    rows = tabular_models.task_rows(4)
    expected = v1_predict(classifier, {"instances": rows}).json()["predictions"]
    client = triton.InferenceServerClient(classifier.url.removeprefix("http://"))
    assert client.is_model_ready(CLASSIFIER)
    for binary in (True, False):
        inputs = []
        for tensor in feature_tensors(model_dirs[CLASSIFIER], rows):
            dtype = np.float64 if tensor["datatype"] == "FP64" else object
            item = triton.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            item.set_data_from_numpy(np.array(tensor["data"], dtype=dtype), binary_data=binary)
            inputs.append(item)
        outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "score")]
        result = client.infer(CLASSIFIER, inputs, outputs=outputs)
        labels = [label.decode() if binary else label for label in result.as_numpy("label")]
        assert labels == [p["label"] for p in expected]
        assert result.as_numpy("score").tolist() == pytest.approx([p["score"] for p in expected], abs=1e-6)
    client.close()


def test_concurrent_requests_each_get_their_own_answer(classifier: ServerProcess) -> None:
    rows = tabular_models.task_rows(24, seed=5)
    expected = [v1_predict(classifier, {"instances": [row]}).json()["predictions"][0] for row in rows]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda row: v1_predict(classifier, {"instances": [row]}), rows))
    assert [r.status_code for r in responses] == [200] * len(rows)
    assert [r.json()["predictions"][0]["label"] for r in responses] == [p["label"] for p in expected]


GOOD = tabular_models.task_rows(1)[0]
BAD_V1 = {
    "missing instances": ({"rows": [GOOD]}, "missing field 'instances'"),
    "instance not an object": ({"instances": [[1, 2]]}, "instances[0] must be an object of feature values, got list"),
    "missing feature": ({"instances": [{k: v for k, v in GOOD.items() if k != "queue"}]},
                        "instances[0] lacks feature field(s) ['queue']"),  # fmt: skip
    "string for a number": ({"instances": [GOOD, {**GOOD, "requested_cpu": "2"}]},
                            "instances[1].requested_cpu is a numeric feature: give a number or null, got str"),
    "bool for a number": ({"instances": [{**GOOD, "n_dependencies": True}]}, "n_dependencies is a numeric feature"),
    "number for a category": ({"instances": [{**GOOD, "queue": 3}]},
                              "instances[0].queue is a categorical feature: give a string or null, got int"),
    "empty": ({"instances": []}, "'instances' is empty"),
    "too many": ({"instances": [GOOD] * (MAX_INSTANCES + 1)}, f"at most {MAX_INSTANCES} per request"),
}


@pytest.mark.parametrize(("body", "problem"), BAD_V1.values(), ids=BAD_V1.keys())
def test_bad_v1_input_is_a_4xx_naming_the_field(classifier: ServerProcess, body: object, problem: str) -> None:
    response = v1_predict(classifier, body)
    assert 400 <= response.status_code < 500 and problem in error_message(response), response.text
    assert classifier.is_ready()


def _tensors_with(model_dirs, change) -> dict:
    tensors = feature_tensors(model_dirs[CLASSIFIER], [GOOD, GOOD])
    return {"inputs": change(tensors)}


BAD_V2 = {
    "missing tensor": (lambda ts: [t for t in ts if t["name"] != "queue"], "missing input tensor(s) ['queue']"),
    "unknown tensor": (lambda ts: [*ts, {**ts[0], "name": "colour"}], "unknown input tensor(s) ['colour']"),
    "bytes for a number": (
        lambda ts: [{**t, "datatype": "BYTES", "data": ["1", "2"]} if t["name"] == "requested_cpu" else t for t in ts],
        "input 'requested_cpu' is a numeric feature: datatype must be numeric, got BYTES",
    ),
    "number for a category": (
        lambda ts: [{**t, "datatype": "INT32", "data": [1, 2]} if t["name"] == "queue" else t for t in ts],
        "input 'queue' is a categorical feature: datatype must be BYTES, got INT32",
    ),
    "rows disagree": (
        lambda ts: [{**t, "shape": [1], "data": t["data"][:1]} if t["name"] == "queue" else t for t in ts],
        "input 'queue' has 1 rows but input 'task_type' has 2",
    ),
    "wrong rank": (
        lambda ts: [{**t, "shape": [1, 2]} if t["name"] == "task_type" else t for t in ts],
        "input 'task_type' must have shape [N] or [N, 1], got [1, 2]",
    ),
}


@pytest.mark.parametrize(("change", "problem"), BAD_V2.values(), ids=BAD_V2.keys())
def test_bad_v2_input_is_a_4xx_naming_the_tensor(classifier: ServerProcess, model_dirs, change, problem: str) -> None:
    response = v2_infer(classifier, _tensors_with(model_dirs, change))
    assert 400 <= response.status_code < 500 and problem in error_message(response), response.text
    assert classifier.is_ready()
