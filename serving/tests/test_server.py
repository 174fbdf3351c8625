"""End-to-end tests of the model server: a real `python -m serving.server` process, real HTTP clients."""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from serving.process import ServerProcess
from serving.tests.conftest import MAX_INSTANCES, MAX_TEXT_CHARS, MODEL
from serving.tests.tiny_model import LABELS

TEXTS = ["my card payment was declined twice", "i lost my card", "what is the balance"]


def v1_predict(server: ServerProcess, body: object) -> requests.Response:
    return requests.post(f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=30)


def v2_infer(server: ServerProcess, body: object) -> requests.Response:
    return requests.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, timeout=30)


def text_tensor(texts: list, shape: list[int] | None = None, datatype: str = "BYTES") -> dict:
    return {"name": "text", "shape": shape or [len(texts)], "datatype": datatype, "data": texts}


def error_message(response: requests.Response) -> str:
    body = response.json()
    return body["error"] if "error" in body else json.dumps(body["detail"])  # FastAPI's own validation


def assert_prediction(prediction: dict) -> None:
    assert prediction["label"] in LABELS
    assert list(prediction["scores"]) == LABELS
    assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction["score"] == max(prediction["scores"].values()) == prediction["scores"][prediction["label"]]


def test_health_and_metadata_come_from_kserve(server: ServerProcess) -> None:
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert requests.get(f"{server.url}/v1/models/{MODEL}", timeout=5).json() == {"name": MODEL, "ready": True}
    metadata = requests.get(f"{server.url}/v2/models/{MODEL}", timeout=5).json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("label", "BYTES"), ("score", "FP32")]


def test_v1_predict_accepts_strings_and_text_objects(server: ServerProcess) -> None:
    plain = v1_predict(server, {"instances": TEXTS})
    assert plain.status_code == 200, plain.text
    predictions = plain.json()["predictions"]
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert_prediction(prediction)
    objects = v1_predict(server, {"instances": [{"text": text} for text in TEXTS]})
    assert objects.status_code == 200, objects.text
    assert [p["label"] for p in objects.json()["predictions"]] == [p["label"] for p in predictions]


def test_v2_infer_returns_label_and_score_tensors(server: ServerProcess) -> None:
    response = v2_infer(server, {"id": "req-1", "inputs": [text_tensor(TEXTS)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_name"] == MODEL
    outputs = {output["name"]: output for output in body["outputs"]}
    assert (outputs["label"]["datatype"], outputs["label"]["shape"]) == ("BYTES", [len(TEXTS)])
    assert (outputs["score"]["datatype"], outputs["score"]["shape"]) == ("FP32", [len(TEXTS)])
    v1 = v1_predict(server, {"instances": TEXTS}).json()["predictions"]
    assert outputs["label"]["data"] == [p["label"] for p in v1]
    assert outputs["score"]["data"] == pytest.approx([p["score"] for p in v1], abs=1e-6)


def test_v2_returns_only_the_requested_outputs(server: ServerProcess) -> None:
    response = v2_infer(server, {"inputs": [text_tensor(TEXTS[:1])], "outputs": [{"name": "label"}]})
    assert response.status_code == 200, response.text
    assert [output["name"] for output in response.json()["outputs"]] == ["label"]


def test_kserve_rest_client_speaks_both_protocols(server: ServerProcess) -> None:
    async def call_both() -> tuple[dict, object]:
        async with InferenceRESTClient(RESTConfig(protocol="v1")) as v1_client:
            v1 = await v1_client.infer(server.url, {"instances": TEXTS}, model_name=MODEL)
        request = InferRequest(MODEL, infer_inputs=[InferInput("text", [len(TEXTS)], "BYTES", TEXTS)])
        async with InferenceRESTClient(RESTConfig(protocol="v2")) as v2_client:
            v2 = await v2_client.infer(server.url, request, model_name=MODEL)
        return v1, v2

    v1, v2 = asyncio.run(call_both())
    for prediction in v1["predictions"]:
        assert_prediction(prediction)
    outputs = {output.name: output for output in v2.outputs}
    assert outputs["label"].data == [p["label"] for p in v1["predictions"]]
    assert outputs["score"].data == pytest.approx([p["score"] for p in v1["predictions"]], abs=1e-6)


def test_tritonclient_speaks_v2_with_binary_and_json_tensors(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    expected = v1_predict(server, {"instances": TEXTS}).json()["predictions"]
    for binary in (True, False):  # Triton's binary tensor extension, then plain JSON (sent without Content-Type)
        text = triton.InferInput("text", [len(TEXTS)], "BYTES")
        text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
        outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "score")]
        result = client.infer(MODEL, [text], outputs=outputs, request_id="triton-1")
        assert result.get_response()["id"] == "triton-1"
        labels = [label.decode() if binary else label for label in result.as_numpy("label")]
        assert labels == [p["label"] for p in expected]
        assert result.as_numpy("score").tolist() == pytest.approx([p["score"] for p in expected], abs=1e-6)
    client.close()


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server: ServerProcess) -> None:
    bodies = [{"instances": [TEXTS[n % 3]] * (1 + n % 2)} for n in range(16)]
    expected = [v1_predict(server, body).json() for body in bodies]
    batches_before = metric_value(server, "serving_batch_size_count", model=MODEL)
    start_together = threading.Barrier(len(bodies))

    def send(body: dict) -> requests.Response:
        start_together.wait()
        return v1_predict(server, body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(send, bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    for response, want in zip(responses, expected):
        got = response.json()["predictions"]
        assert [p["label"] for p in got] == [p["label"] for p in want["predictions"]]
        assert [p["score"] for p in got] == pytest.approx([p["score"] for p in want["predictions"]], abs=1e-5)
    batches = metric_value(server, "serving_batch_size_count", model=MODEL) - batches_before
    assert 1 <= batches < len(bodies), f"{len(bodies)} concurrent requests ran in {batches} forward passes"


def metrics_of(server: ServerProcess) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_value(server: ServerProcess, name: str, **labels: str) -> float:
    return metrics_of(server).get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_predictions_and_latency_per_model(server: ServerProcess) -> None:
    ok = {"model": MODEL, "protocol": "v1", "status": "ok"}
    invalid = {"model": MODEL, "protocol": "v2", "status": "invalid"}
    before = metrics_of(server)

    def increase(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return metrics_of(server).get(key, 0.0) - before.get(key, 0.0)

    for _ in range(3):
        assert v1_predict(server, {"instances": TEXTS}).status_code == 200
    assert v2_infer(server, {"inputs": [text_tensor([1], datatype="INT32")]}).status_code == 400
    assert increase("serving_requests_total", **ok) == 3
    assert increase("serving_requests_total", **invalid) == 1
    assert increase("serving_predictions_total", model=MODEL) == 3 * len(TEXTS)
    assert increase("serving_request_latency_seconds_count", model=MODEL) == 3
    assert sum(increase("serving_predicted_labels_total", model=MODEL, label=label) for label in LABELS) == 9
    after = metrics_of(server)
    assert after[("serving_request_latency_seconds_bucket", frozenset({"model": MODEL, "le": "+Inf"}.items()))] >= 3
    # KServe's own histograms are exposed beside ours.
    assert after[("request_predict_seconds_count", frozenset({"model_name": MODEL}.items()))] >= 4


TOO_LONG = "a" * (MAX_TEXT_CHARS + 1)
TOO_MANY = ["my card"] * (MAX_INSTANCES + 1)

BAD_V1 = {
    "not a JSON object": (["my card"], "must be a JSON object"),
    "missing instances": ({"inputs": ["my card"]}, "missing field 'instances'"),
    "instances not a list": ({"instances": "my card"}, '"instances" to be a list'),
    "empty instances": ({"instances": []}, "'instances' is empty"),
    "non-string text": ({"instances": ["my card", 7]}, "instances[1] must be a string, got int"),
    "object without text": ({"instances": [{"body": "x"}]}, "instances[0] has no 'text' field"),
    "null text": ({"instances": [{"text": None}]}, "instances[0].text must be a string, got null"),
    "blank text": ({"instances": ["  "]}, "instances[0] is blank"),
    "too many instances": ({"instances": TOO_MANY}, f"has {MAX_INSTANCES + 1} texts; at most {MAX_INSTANCES}"),
    "text too long": ({"instances": [TOO_LONG]}, f"instances[0] has {MAX_TEXT_CHARS + 1} characters"),
}

BAD_V2 = {
    "missing text input": ({"inputs": [{**text_tensor(["x"]), "name": "body"}]}, "missing input tensor 'text'"),
    "extra input": ({"inputs": [text_tensor(["x"]), {**text_tensor(["y"]), "name": "y"}]}, "one input tensor"),
    "wrong datatype": ({"inputs": [text_tensor([1, 2], datatype="INT32")]}, "datatype BYTES, got INT32"),
    "wrong rank": ({"inputs": [text_tensor(["x", "y"], shape=[2, 1])]}, "shape [N], got [2, 1]"),
    "shape and data disagree": ({"inputs": [text_tensor(["x", "y"], shape=[3])]}, "does not match its shape [3]"),
    "empty tensor": ({"inputs": [text_tensor([])]}, "input 'text' is empty"),
    "non-string element": ({"inputs": [text_tensor(["x", 3])]}, "input 'text'[1] must be a string, got int"),
    "too many texts": ({"inputs": [text_tensor(TOO_MANY)]}, f"at most {MAX_INSTANCES} per request"),
    "text too long": ({"inputs": [text_tensor([TOO_LONG])]}, f"{MAX_TEXT_CHARS + 1} characters"),
    "missing data": ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}, "data"),
    "unknown output": ({"inputs": [text_tensor(["x"])], "outputs": [{"name": "logits"}]}, "output 'logits'"),
}


@pytest.mark.parametrize(("body", "problem"), BAD_V1.values(), ids=BAD_V1.keys())
def test_bad_v1_input_is_a_4xx_naming_the_problem(server: ServerProcess, body: object, problem: str) -> None:
    response = v1_predict(server, body)
    assert 400 <= response.status_code < 500 and problem in error_message(response), response.text
    assert server.is_ready()


@pytest.mark.parametrize(("body", "problem"), BAD_V2.values(), ids=BAD_V2.keys())
def test_bad_v2_input_is_a_4xx_naming_the_problem(server: ServerProcess, body: object, problem: str) -> None:
    response = v2_infer(server, body)
    assert 400 <= response.status_code < 500 and problem in error_message(response), response.text
    assert server.is_ready()


def test_body_that_is_not_json_is_a_400(server: ServerProcess) -> None:
    url = f"{server.url}/v1/models/{MODEL}:predict"
    response = requests.post(url, data="{not json", headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and "Unrecognized request format" in error_message(response)
    assert server.is_ready()


def test_json_sent_with_curls_default_form_content_type_is_read(server: ServerProcess) -> None:
    url = f"{server.url}/v1/models/{MODEL}:predict"
    form = {"content-type": "application/x-www-form-urlencoded"}
    valid = requests.post(url, data=json.dumps({"instances": TEXTS[:1]}), headers=form, timeout=30)
    assert valid.status_code == 200, valid.text
    assert_prediction(valid.json()["predictions"][0])
    invalid = requests.post(url, data="{not json", headers=form, timeout=30)
    assert invalid.status_code == 400 and "request body is not valid JSON" in error_message(invalid)


def test_unknown_model_is_a_404(server: ServerProcess) -> None:
    response = requests.post(f"{server.url}/v1/models/other:predict", json={"instances": ["x"]}, timeout=30)
    assert response.status_code == 404 and "other does not exist" in error_message(response)
