"""The anomaly predictor behind a real KServe model server (``python -m serving.anomaly_detector``), over HTTP."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from components.anomaly.demo import demo_host_metrics
from components.anomaly.model import AnomalyModel
from components.train_anomaly.trainer import train_anomaly_model
from serving.process import ServerProcess, ServerStartError

MODEL = "hosts"
DAY = 288
MAX_HOSTS = 3
SMALL_ENSEMBLE = json.dumps({"window": 144, "min_history": 60, "history": 300, "knn_widths": [6, 24], "memory": 288})
METRICS = ["cpu", "latency_ms", "error_rate"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """Five days of two hosts: days 1-3 train, day 4 eval, day 5 streamed to the server."""
    return demo_host_metrics(hosts=2, steps=5 * DAY, anomalies_per_series=4, seed=8)


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    stamps = np.sort(data["timestamp"].unique())
    folder = tmp_path_factory.mktemp("anomaly")
    data[data["timestamp"] < stamps[3 * DAY]].to_parquet(folder / "train.parquet")
    data[(data["timestamp"] >= stamps[3 * DAY]) & (data["timestamp"] < stamps[4 * DAY])].to_parquet(folder / "eval.parquet")
    train_anomaly_model(str(folder / "train.parquet"), str(folder / "eval.parquet"), str(folder / "model"),
                        detector="ensemble", hyperparameters=SMALL_ENSEMBLE)  # fmt: skip
    return folder / "model"


@pytest.fixture(scope="module")
def server(model_dir) -> Iterator[ServerProcess]:
    args = ["--model_dir", str(model_dir), "--max_hosts", str(MAX_HOSTS), "--max_instances", "100"]
    with ServerProcess.start_module("serving.anomaly_detector", MODEL, args) as running:
        yield running


def v1(server: ServerProcess, instances) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=30)


def v2(server: ServerProcess, inputs: list[dict]) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json={"inputs": inputs}, timeout=30)


def point(host: str, timestamp: str, cpu: float = 40.0, latency_ms: float = 120.0, error_rate: float = 0.01) -> dict:
    return {"host": host, "timestamp": timestamp, "cpu": cpu, "latency_ms": latency_ms, "error_rate": error_rate}


def minutes(start: str, count: int, step: int = 5) -> list[str]:
    return [t.isoformat() for t in pd.date_range(start, periods=count, freq=f"{step}min", tz="UTC")]


def test_streamed_scores_equal_offline_scores(server, model_dir, data):
    """Day 5 of both hosts, interleaved as they would arrive, in requests of 50 points: each host's stream continues
    from training exactly as the offline scorer (what the gate uses) scores those rows."""
    day5 = data[data["timestamp"] >= np.sort(data["timestamp"].unique())[4 * DAY]]
    instances = [point(r.host, r.timestamp.isoformat(), r.cpu, r.latency_ms, r.error_rate) for r in day5.itertuples()]
    predictions = []
    for start in range(0, len(instances), 50):
        response = v1(server, instances[start : start + 50])
        assert response.status_code == 200, response.text
        predictions += response.json()["predictions"]
    model = AnomalyModel.load(model_dir)
    offline = model.score_frame(day5)
    expected = {(h, t.isoformat()): s for h, t, s in zip(offline.rows["host"], offline.rows["timestamp"], offline.score)}
    served = {(p["host"], p["timestamp"]): p["score"] for p in predictions}
    assert served.keys() == expected.keys()
    np.testing.assert_allclose([served[k] for k in expected], list(expected.values()), rtol=1e-12, atol=1e-12)
    assert all(p["anomaly"] == (p["score"] >= model.threshold) and p["threshold"] == model.threshold for p in predictions)
    assert sum(p["anomaly"] for p in predictions) >= 1
    assert set(predictions[0]["scores"]) == set(METRICS) and predictions[0]["score"] == max(predictions[0]["scores"].values())


def test_out_of_order_point_is_refused_and_nothing_is_scored(server):
    assert v1(server, [point("order", "2030-01-01T10:00:00Z")]).status_code == 200
    refused = v1(server, [point("order", "2030-01-01T10:05:00Z"), point("order", "2030-01-01T10:01:00Z")])
    assert refused.status_code == 400
    assert "instances[1].timestamp 2030-01-01T10:01:00+00:00 is not after host 'order'" in refused.text
    # the refused request left the stream where it was: 10:05 is still new
    assert v1(server, [point("order", "2030-01-01T10:05:00Z")]).status_code == 200
    again = v1(server, [point("order", "2030-01-01T10:05:00Z")])
    assert again.status_code == 400 and "is not after host 'order''s last point (2030-01-01T10:05:00+00:00)" in again.text


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([{"host": "x", "timestamp": "2030-01-01T00:00:00Z", "cpu": 1.0, "latency_ms": 2.0}], r"instances[0] lacks field(s) ['error_rate']"),
        ([point("x", "2030-01-01T00:00:00Z", cpu="high")], "instances[0].cpu must be a number, got str"),
        ([point("x", "2030-01-01T00:00:00Z"), point("x", "2030-01-01T00:05:00Z", latency_ms=True)], "instances[1].latency_ms must be a number, got bool"),
        ([point("x", "yesterday")], "instances[0].timestamp is not a time"),
        ([point("", "2030-01-01T00:00:00Z")], "instances[0].host must be a non-empty string"),
        ([], "'instances' is empty"),
        ([point("x", "2030-01-01T00:00:00Z")] * 101, "has 101 points; at most 100"),
        (["cpu=3"], "instances[0] must be an object with fields ['host', 'timestamp', 'cpu', 'latency_ms', 'error_rate']"),
    ],
)
def test_bad_instances_are_named(server, instances, message):
    response = v1(server, instances)
    assert response.status_code == 400 and message in response.json()["error"], response.text


def test_v2_named_tensors_score_like_v1(server):
    """Two new hosts get the same points, one over V1 and one over V2: same scores; the spike alerts in both.
    A new host's first min_history (60) rows have no surprise and the next warmup (50) no ratio: they score 0."""
    stamps = minutes("2031-03-01T00:00:00Z", 200)
    rng = np.random.default_rng(0)
    cpu = (40 + rng.normal(0, 2, 200)).tolist()
    cpu[180] = 95.0
    v1_scores, v2_scores, v2_alerts = [], [], []
    for part in (slice(0, 100), slice(100, 200)):
        answer = v1(server, [point("twin-v1", t, c) for t, c in zip(stamps[part], cpu[part])])
        v1_scores += [p["score"] for p in answer.json()["predictions"]]
        inputs = [
            {"name": "host", "datatype": "BYTES", "shape": [100], "data": ["twin-v2"] * 100},
            {"name": "timestamp", "datatype": "BYTES", "shape": [100], "data": stamps[part]},
            {"name": "cpu", "datatype": "FP64", "shape": [100], "data": cpu[part]},
            {"name": "latency_ms", "datatype": "FP32", "shape": [100], "data": [120.0] * 100},
            {"name": "error_rate", "datatype": "FP64", "shape": [100], "data": [0.01] * 100},
        ]
        response = v2(server, inputs)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["score"]["datatype"] == "FP64" and outputs["anomaly"]["datatype"] == "BOOL"
        v2_scores += outputs["score"]["data"]
        v2_alerts += outputs["anomaly"]["data"]
    np.testing.assert_allclose(v2_scores, v1_scores, rtol=1e-12)
    assert v2_alerts[180] is True and v1_scores[180] > 0.5 and max(v1_scores[:110]) == 0.0

    missing = v2(server, [i for i in inputs if i["name"] != "error_rate"])
    assert missing.status_code == 400 and "missing input tensor(s) ['error_rate']" in missing.text
    wrong = v2(server, [*inputs[:2], {**inputs[2], "datatype": "BYTES", "data": ["x"] * 100}, *inputs[3:]])
    assert wrong.status_code == 400 and "input 'cpu' must have datatype numeric, got BYTES" in wrong.text


def test_least_recently_used_hosts_are_dropped(server):
    """With at most 3 host streams, a fourth host drops the least recently used one, which then starts afresh."""
    for host in ("lru-1", "lru-2", "lru-3", "lru-4"):
        assert v1(server, [point(host, "2032-01-01T12:00:00Z")]).status_code == 200
    # lru-1 was dropped: an earlier point is a new start for it; lru-4 is still streaming and refuses one
    assert v1(server, [point("lru-1", "2032-01-01T11:00:00Z")]).status_code == 200
    assert v1(server, [point("lru-4", "2032-01-01T11:00:00Z")]).status_code == 400


def test_model_server_dispatches_anomaly_models(model_dir):
    """`serving.server` (the one model server of every kind) picks this predictor from model.json."""
    with ServerProcess.start(model_dir, "dispatched") as running:
        response = httpx.post(f"{running.url}/v1/models/dispatched:predict",
                              json={"instances": [point("host-0", "2035-01-01T00:00:00Z")]}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["predictions"][0]["anomaly"], bool)


def test_tampered_model_is_not_served(model_dir, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "state.json").write_text((copy / "state.json").read_text().replace("[", "[1.0, ", 1))
    with pytest.raises(ServerStartError, match="state.json does not match its sha256"):
        ServerProcess.start_module("serving.anomaly_detector", MODEL, ["--model_dir", str(copy)], startup_timeout_s=60)
