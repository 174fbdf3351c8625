"""Reading a window of the serving payload log (local and GCS) and of flat tables."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests
from pyarrow import fs

from components.drift.detectors import DriftColumns, DriftInputError
from components.drift.payloads import (
    LOG_COLUMNS,
    TIME_COLUMN,
    TimeWindow,
    extract_instances,
    read_payload_log,
    read_window,
)
from components.drift.tests.helpers import (
    PAYLOAD_SCHEMA,
    REPO_ROOT,
    payload_row,
    v1_text_exchange,
    v2_text_exchange,
    write_payload_log,
)

TEXT = DriftColumns(text="text", label="label")
TABULAR = DriftColumns(numeric=("amount",), categorical=("channel",))
END = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)
LAST_DAY = TimeWindow.ending(END, 24)


def test_the_logger_writes_the_columns_this_reader_needs():
    """serving/payload_logger.py needs the serve image, so its schema is read from its source text."""
    source = (REPO_ROOT / "serving" / "payload_logger.py").read_text()
    logged = dict(re.findall(r'pa\.field\("(\w+)", pa\.(\w+)\(', source))
    assert list(logged) == PAYLOAD_SCHEMA.names  # the test files are written with the logger's schema
    assert {name: logged[name] for name in LOG_COLUMNS} == {
        "request_time": "timestamp",
        "response_time": "timestamp",
        "request": "binary",
        "response": "binary",
        "inference_service": "string",
    }


def test_time_window_covers_the_hours_it_overlaps_and_needs_a_zone():
    window = TimeWindow.ending("2026-03-04T12:30:00+01:00", 2.5)
    assert window.start == datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc)
    assert window.partitions() == ["dt=2026-03-04/hour=09", "dt=2026-03-04/hour=10", "dt=2026-03-04/hour=11"]
    assert TimeWindow.ending("2026-03-05T00:00:00Z", 1).partitions() == ["dt=2026-03-04/hour=23"]
    with pytest.raises(DriftInputError, match="has no time zone"):
        TimeWindow.ending("2026-03-04T12:00:00", 1)
    with pytest.raises(DriftInputError, match="is not an ISO 8601 time"):
        TimeWindow.ending("yesterday", 1)
    with pytest.raises(DriftInputError, match="window_hours must be positive"):
        TimeWindow.ending("", 0)


def test_only_requests_inside_the_window_and_of_the_service_are_read(tmp_path):
    moments = [END - timedelta(hours=30), END - timedelta(hours=23, minutes=59), END - timedelta(minutes=1), END]
    rows = [payload_row(moment, *v1_text_exchange([f"text {i}"], ["a"])) for i, moment in enumerate(moments)]
    rows.append(payload_row(END - timedelta(hours=2), *v1_text_exchange(["other"], ["a"]), inference_service="other"))
    write_payload_log(tmp_path, rows)
    read = read_payload_log(str(tmp_path), LAST_DAY, inference_service="tickets")
    assert sorted(extract_instances(read, TEXT).frame["text"]) == ["text 1", "text 2"]
    assert read.attrs["files"] == 3  # hours 12 (day before), 11 and 10 of the window; hour 12 of END is outside
    assert len(read_payload_log(str(tmp_path), LAST_DAY)) == 3


def test_v1_and_v2_text_exchanges_give_one_row_per_instance_with_its_prediction(tmp_path):
    moment = END - timedelta(hours=1)
    rows = [
        payload_row(moment, *v1_text_exchange(["my card is lost", "top up failed"], ["lost_card", "top_up"])),
        payload_row(moment, {"instances": [{"text": "where is my card"}]}, {"predictions": ["card_arrival"]}),
        payload_row(moment, *v2_text_exchange(["refund please", "cash"], ["refund", "atm"])),
        payload_row(moment, {"instances": ["no answer logged"]}),  # KServe logs no response to a non-200 answer
    ]
    write_payload_log(tmp_path, rows)
    extraction = read_window(str(tmp_path), LAST_DAY, TEXT)
    frame = extraction.frame.sort_values("text")
    assert frame["text"].tolist() == [
        "cash", "my card is lost", "no answer logged", "refund please", "top up failed", "where is my card"
    ]  # fmt: skip
    assert frame["prediction"].tolist() == ["atm", "lost_card", None, "refund", "top_up", "card_arrival"]
    assert (frame[TIME_COLUMN] == pd.Timestamp(moment)).all()
    assert extraction.source_rows == 4 and not extraction.skipped
    assert extraction.without_prediction == {"no response logged": 1}


def test_unreadable_requests_and_instances_are_skipped_counted_and_located(tmp_path):
    moment = END - timedelta(hours=1)
    good = v1_text_exchange(["fine"], ["a"])
    rows = [
        payload_row(moment, *good),
        payload_row(moment, None, raw_request=b"\x00\x01binary tensor"),
        payload_row(moment, {"text": "not a protocol"}),
        payload_row(moment, {"instances": ["ok", "  ", 7]}, {"predictions": ["a", "b", "c"]}),
        payload_row(moment, *v1_text_exchange(["two", "texts"], ["only one"])[:1], {"predictions": ["x"]}),
    ]
    written = write_payload_log(tmp_path, rows)
    extraction = read_window(str(tmp_path), LAST_DAY, TEXT)
    assert sorted(extraction.frame["text"]) == ["fine", "ok", "texts", "two"]
    assert extraction.skipped == {
        "request body is not JSON (e.g. V2 binary tensors)": 1,
        "request has neither 'instances' (V1) nor 'inputs' (V2)": 1,
        "text feature 'text' is blank or not a string": 2,
    }
    assert extraction.without_prediction == {"prediction count differs from instance count": 2}
    partition_file = written[0].removeprefix(str(tmp_path)).lstrip("/")
    assert extraction.examples[0] == f"{partition_file} row 1: request body is not JSON (e.g. V2 binary tensors)"
    assert f"{partition_file} row 3: instance 1: text='  '" in extraction.examples


def test_tabular_instances_as_objects_lists_and_v2_tensors(tmp_path):
    moment = END - timedelta(hours=3)
    v2 = {
        "inputs": [
            {"name": "channel", "shape": [2, 1], "datatype": "BYTES", "data": [["web"], ["app"]]},
            {"name": "amount", "shape": [2, 1], "datatype": "FP32", "data": [[1.5], [2.5]]},
        ]
    }
    rows = [
        payload_row(moment, {"instances": [{"amount": 10, "channel": "web", "extra": 1}, [20.0, "app"]]},
                    {"predictions": [1, 0]}),  # fmt: skip
        payload_row(moment, v2, {"outputs": [{"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}),
        payload_row(moment, {"instances": [{"amount": "n/a", "channel": "web"}, {"channel": "app"}, [1.0]]}),
    ]
    write_payload_log(tmp_path, rows)
    extraction = read_window(str(tmp_path), LAST_DAY, TABULAR)
    frame = extraction.frame.sort_values("amount")
    assert frame["amount"].tolist() == [1.5, 2.5, 10.0, 20.0]
    assert frame["channel"].tolist() == ["web", "app", "web", "app"]
    assert frame["prediction"].tolist() == [0, 1, 1, 0]
    assert extraction.skipped == {
        "numeric feature 'amount' is not a finite number": 1,
        "instance lacks feature field(s)": 1,
        "instance list has the wrong number of values": 1,
    }


def test_flat_tables_are_read_whole_or_by_their_time_column(tmp_path):
    table = pd.DataFrame({
        "amount": [1.0, 2.0, 3.0],
        "channel": ["web", "app", "web"],
        "prediction": ["a", None, "b"],
        "seen": pd.to_datetime(["2026-03-04T11:00Z", "2026-03-04T11:30Z", "2026-03-01T00:00Z"]),
    })  # fmt: skip
    table.to_parquet(tmp_path / "traffic.parquet")
    whole = read_window(str(tmp_path / "traffic.parquet"), LAST_DAY, TABULAR, payload_format="table")
    assert whole.frame["amount"].tolist() == [1.0, 2.0, 3.0]
    windowed = read_window(str(tmp_path), LAST_DAY, TABULAR, payload_format="table", time_column="seen")
    assert windowed.frame["amount"].tolist() == [1.0, 2.0]
    assert windowed.without_prediction == {"no value in column 'prediction'": 1}
    with pytest.raises(DriftInputError, match=r"lacks column\(s\) \['when'\]"):
        read_window(str(tmp_path), LAST_DAY, TABULAR, payload_format="table", time_column="when")


def test_bad_locations_and_files_are_named(tmp_path):
    with pytest.raises(DriftInputError, match="does not exist"):
        read_window(str(tmp_path / "nowhere"), LAST_DAY, TEXT)
    with pytest.raises(DriftInputError, match=r"only local paths and gs:// URIs are supported, not s3://"):
        read_window("s3://bucket/payloads", LAST_DAY, TEXT)
    with pytest.raises(DriftInputError, match="payload_format must be one of"):
        read_window(str(tmp_path), LAST_DAY, TEXT, payload_format="csv")
    partition = tmp_path / "dt=2026-03-04" / "hour=11"
    partition.mkdir(parents=True)
    pd.DataFrame({"request": [b"{}"]}).to_parquet(partition / "part-1.parquet")
    with pytest.raises(DriftInputError, match=r"payload file .*part-1\.parquet lacks column\(s\) \['request_time'"):
        read_window(str(tmp_path), LAST_DAY, TEXT)
    (partition / "part-1.parquet").write_bytes(b"not parquet")
    with pytest.raises(DriftInputError, match=r"cannot read payload file .*part-1\.parquet"):
        read_window(str(tmp_path), LAST_DAY, TEXT)


# --- GCS (gcp-storage-emulator, pyarrow's GCS filesystem) ------------------------------------------


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch, unused_port: int) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(unused_port),
         "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"127.0.0.1:{unused_port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(address):
            assert process.poll() is None, "the GCS emulator exited"
            assert time.monotonic() < deadline, "the GCS emulator did not start in 30 s"
            time.sleep(0.05)  # poll interval
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{address}")
        created = requests.post(
            f"http://{address}/storage/v1/b", params={"project": "test"}, json={"name": "logs"}, timeout=5
        )
        created.raise_for_status()
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(address: str) -> bool:
    try:
        return requests.get(f"http://{address}/", timeout=1).text == "OK"
    except requests.ConnectionError:
        return False


def test_payload_log_on_gcs_is_read_like_a_local_one(gcs_emulator):
    gcs = fs.GcsFileSystem(anonymous=True, endpoint_override=gcs_emulator, scheme="http")
    moment = END - timedelta(hours=1)
    write_payload_log("logs/payloads", [payload_row(moment, *v1_text_exchange(["on gcs"], ["a"]))], filesystem=gcs)
    extraction = read_window("gs://logs/payloads", LAST_DAY, TEXT)
    assert extraction.frame["text"].tolist() == ["on gcs"]
    assert extraction.frame["prediction"].tolist() == ["a"]
    with pytest.raises(DriftInputError, match="gs://nobucket/payloads does not exist"):
        read_window("gs://nobucket/payloads", LAST_DAY, TEXT)
