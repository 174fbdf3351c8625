"""The payload logger: real `python -m serving.payload_logger` processes and POSTs shaped like KServe's agent's."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pyarrow.dataset as ds
import pytest
from pyarrow import fs

from serving.payload_logger import PayloadEventError, parse_event, partition_of
from serving.process import PayloadLoggerProcess, free_port
from serving.tests.kserve_agent import SOURCE, event_headers, log_event, rfc3339_nano

T0 = datetime(2026, 3, 4, 5, 59, 58, 123456, tzinfo=timezone.utc)
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)
DEADLINE_S = 20.0


def request_body(number: int) -> bytes:
    return json.dumps({"instances": [f"ticket number {number}"]}).encode()


def response_body(number: int) -> bytes:
    return json.dumps({"predictions": [{"label": "billing", "score": number / 100}]}).encode()


def read_rows(root: str, filesystem: fs.FileSystem | None = None) -> dict[str, dict]:
    table = ds.dataset(root, format="parquet", partitioning="hive", filesystem=filesystem).to_table()
    return {row["id"]: row for row in table.to_pylist()}


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # poll interval


def stop_gracefully(logger: PayloadLoggerProcess) -> int:
    logger.process.send_signal(signal.SIGTERM)
    return logger.process.wait(timeout=30)


# --- parsing -------------------------------------------------------------------------------------


def test_binary_event_as_kserve_sends_it_is_parsed() -> None:
    headers = event_headers("id-1", "request", T0, metadata={"X-User": ["ana"]})
    event = parse_event(headers, b'{"instances": ["x"]}', NOW)
    assert (event.id, event.source, event.kind) == ("id-1", SOURCE, "request")
    assert event.time == T0  # nanosecond RFC 3339 in, microseconds kept
    assert (event.inference_service, event.namespace, event.component, event.endpoint) == (
        "tickets", "kubeflow-user", "predictor", "default",
    )  # fmt: skip
    assert json.loads(event.metadata) == {"X-User": ["ana"]}
    assert event.body == b'{"instances": ["x"]}' and event.content_type == "application/json"


def test_structured_event_is_parsed_too() -> None:
    envelope = {
        "specversion": "1.0", "id": "id-2", "source": SOURCE, "time": rfc3339_nano(T0),
        "type": "org.kubeflow.serving.inference.response", "data_base64": base64.b64encode(b"\x00\xff").decode(),
    }  # fmt: skip
    event = parse_event({"content-type": "application/cloudevents+json"}, json.dumps(envelope).encode(), NOW)
    assert (event.kind, event.body, event.time) == ("response", b"\x00\xff", T0)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"Ce-Id": None}, "missing header(s) ce-id"),
        ({"Ce-Source": None, "Ce-Specversion": None}, "missing header(s) ce-source, ce-specversion"),
        ({"Ce-Type": "com.example.other"}, "ce-type 'com.example.other' is neither"),
        ({"Ce-Time": "yesterday"}, "ce-time 'yesterday' is not an RFC 3339 timestamp"),
        ({"Ce-Time": "2026-03-04T05:59:58"}, "has no time zone"),
        ({"Ce-Specversion": "0.1"}, "not a valid CloudEvent"),
    ],
)
def test_bad_events_are_refused_naming_the_header(change: dict, problem: str) -> None:
    headers = {**event_headers("id-3", "request", T0), **change}
    with pytest.raises(PayloadEventError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_event({k: v for k, v in headers.items() if v is not None}, b"{}", NOW)


def test_event_without_time_is_stamped_on_receipt() -> None:
    headers = {k: v for k, v in event_headers("id-4", "request", T0).items() if k != "Ce-Time"}
    assert parse_event(headers, b"{}", NOW).time == NOW


def test_partition_is_the_request_hour_in_utc() -> None:
    in_berlin = datetime(2026, 3, 4, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    event = parse_event(event_headers("id-5", "request", in_berlin), b"{}", NOW)
    assert partition_of({"request_time": event.time, "response_time": None}) == "dt=2026-03-03/hour=23"
    assert partition_of({"request_time": None, "response_time": T0}) == "dt=2026-03-04/hour=05"


# --- the running receiver ------------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def test_pairs_are_written_on_shutdown_partitioned_by_hour(tmp_path: Path, client: httpx.Client) -> None:
    out = tmp_path / "payloads"
    logger = PayloadLoggerProcess.start(out)
    try:
        for number in range(6):  # the request at T0 + 1 s, its response 30 ms later; hours 05 and 06
            moment = T0 + timedelta(seconds=number)
            answered = moment + timedelta(milliseconds=30)
            events = [("request", request_body(number), moment), ("response", response_body(number), answered)]
            if number % 2:  # the agent's workers send concurrently: a response may come first
                events.reverse()
            for kind, body, at in events:
                response = log_event(client, logger.url, f"pair-{number}", kind, body, at)
                assert response.status_code == 200, response.text
        # A 4xx answer: KServe logs the request only.
        assert log_event(client, logger.url, "unanswered", "request", b'{"instances": 7}', T0).status_code == 200
        assert logger.status()["pending_pairs"] == 1 and logger.status()["buffered_rows"] == 6
        assert stop_gracefully(logger) == 0
    finally:
        logger.stop()

    rows = read_rows(str(out))
    assert sorted(rows) == sorted([f"pair-{n}" for n in range(6)] + ["unanswered"])
    for number in range(6):
        row = rows[f"pair-{number}"]
        assert (row["request"], row["response"]) == (request_body(number), response_body(number))
        assert row["request_time"] == T0 + timedelta(seconds=number)
        assert row["response_time"] == T0 + timedelta(seconds=number, milliseconds=30)
        assert (row["inference_service"], row["namespace"], row["component"], row["endpoint"], row["source"]) == (
            "tickets", "kubeflow-user", "predictor", "default", SOURCE,
        )  # fmt: skip
        assert row["request_content_type"] == row["response_content_type"] == "application/json"
        assert (str(row["dt"]), row["hour"]) == ("2026-03-04", 5 if number < 2 else 6)
    assert rows["unanswered"]["response"] is None and rows["unanswered"]["response_time"] is None
    files = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert [f.rsplit("/", 1)[0] for f in files] == ["dt=2026-03-04/hour=05", "dt=2026-03-04/hour=06"]
    assert all(Path(f).name.startswith("part-") and f.endswith(".parquet") for f in files)  # no temporaries left


def test_rows_are_flushed_in_batches_while_running(tmp_path: Path, client: httpx.Client) -> None:
    out = tmp_path / "payloads"

    def log_pairs(numbers: range) -> None:
        for number in numbers:
            log_event(client, logger.url, f"id-{number}", "request", request_body(number), T0)
            log_event(client, logger.url, f"id-{number}", "response", response_body(number), T0)

    with PayloadLoggerProcess.start(out, extra_args=["--flush_rows", "3", "--flush_interval_s", "3600"]) as logger:
        log_pairs(range(3))
        wait_for(lambda: logger.status()["written_rows"] == 3, "a batch of 3 rows")
        assert sorted(read_rows(str(out))) == ["id-0", "id-1", "id-2"]
        log_pairs(range(3, 5))
        assert logger.status()["buffered_rows"] == 2  # fewer than --flush_rows: they wait
        log_pairs(range(5, 6))
        wait_for(lambda: logger.status()["written_rows"] == 6, "the second batch")
        assert sorted(read_rows(str(out))) == [f"id-{n}" for n in range(6)]
        assert logger.status()["written_files"] == 2


def test_a_request_without_response_is_written_after_the_pair_timeout(tmp_path: Path, client: httpx.Client) -> None:
    out = tmp_path / "payloads"
    flags = ["--pair_timeout_s", "0.3", "--flush_interval_s", "0.3"]
    with PayloadLoggerProcess.start(out, extra_args=flags) as logger:
        log_event(client, logger.url, "lonely", "request", request_body(1), T0)
        wait_for(lambda: logger.status()["written_rows"] == 1, "the half pair to be written")
        # Its response arrives late: written as a row of its own, not lost.
        log_event(client, logger.url, "lonely", "response", response_body(1), T0 + timedelta(minutes=2))
        wait_for(lambda: logger.status()["written_rows"] == 2, "the late response to be written")
    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted((row["request"] is None, row["response"] is None) for row in table) == [(False, True), (True, False)]


def test_bad_events_get_400_and_change_nothing(tmp_path: Path, client: httpx.Client) -> None:
    with PayloadLoggerProcess.start(tmp_path / "payloads") as logger:
        headers = {k: v for k, v in event_headers("x", "request", T0).items() if k != "Ce-Id"}
        response = client.post(logger.url, content=b"{}", headers=headers)
        assert response.status_code == 400 and "missing header(s) ce-id" in response.json()["error"]
        plain = client.post(logger.url, json={"instances": ["not a cloud event"]})
        assert plain.status_code == 400 and "ce-id, ce-source, ce-type, ce-specversion" in plain.json()["error"]
        counts = {"pending_pairs": 0, "buffered_rows": 0, "written_rows": 0, "written_files": 0}
        assert logger.status() == {"status": "ok", **counts}


def test_unsupported_output_is_refused_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.payload_logger", "--out", "s3://bucket/x", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "only local directories and gs:// are supported, not s3://" in result.stderr


# --- GCS (gcp-storage-emulator, pyarrow's GCS filesystem) ------------------------------------------


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"http://{address}/", timeout=1).text == "OK"
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, "the GCS emulator")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{address}")
        bucket = httpx.post(f"http://{address}/storage/v1/b", params={"project": "test"}, json={"name": "logs"})
        bucket.raise_for_status()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_gcs_output(gcs_emulator: str, client: httpx.Client) -> None:
    logger = PayloadLoggerProcess.start("gs://logs/payloads", extra_args=["--flush_rows", "2"])
    try:
        for number in range(3):
            log_event(client, logger.url, f"g-{number}", "request", request_body(number), T0)
            log_event(client, logger.url, f"g-{number}", "response", response_body(number), T0)
        assert stop_gracefully(logger) == 0
    finally:
        logger.stop()
    gcs = fs.GcsFileSystem(anonymous=True, endpoint_override=gcs_emulator, scheme="http")
    rows = read_rows("logs/payloads", gcs)
    assert sorted(rows) == ["g-0", "g-1", "g-2"]
    assert [rows[f"g-{n}"]["response"] for n in range(3)] == [response_body(n) for n in range(3)]


def test_missing_bucket_is_refused_at_start(gcs_emulator: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.payload_logger", "--out", "gs://nobucket/x", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=os.environ,
    )  # fmt: skip
    assert result.returncode == 1 and "bucket gs://nobucket does not exist" in result.stderr
