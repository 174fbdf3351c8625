"""Reliability (marker ``reliability``): 60 s of concurrent load with 10% malformed requests.

32 concurrent clients send V1 and V2 requests to the model server for 60 s; every 10th is malformed. The test
plays KServe's agent too: it logs each request to the payload logger before forwarding it, and each
HTTP 200 response after, as CloudEvents. Afterwards: no 5xx, every malformed request got a 4xx, the
server answered readiness probes throughout, and every logged payload is in the Parquet sink.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pyarrow.dataset as ds
import pytest

from serving.process import PayloadLoggerProcess, ServerProcess
from serving.tests.conftest import MAX_INSTANCES, MODEL
from serving.tests.kserve_agent import event_headers

LOAD_SECONDS = 60.0
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(LOAD_SECONDS + 90, func_only=True)]  # not the server start

CONCURRENCY = 32
TEXTS = ["my card payment was declined twice", "i lost my card", "what is the balance", "the account"]
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
JSON = {"Content-Type": "application/json"}
MALFORMED = [
    (V1, b"{not json"),
    (V1, json.dumps({"instances": "my card"}).encode()),
    (V1, json.dumps({"instances": []}).encode()),
    (V1, json.dumps({"instances": ["my card", 7]}).encode()),
    (V1, json.dumps({"instances": ["my card"] * (MAX_INSTANCES + 1)}).encode()),
    (V1, json.dumps({"instances": ["   "]}).encode()),
    (V2, json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "INT32", "data": [1]}]}).encode()),
    (V2, json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}).encode()),
    (V2, json.dumps({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}).encode()),
]


def request_for(number: int) -> tuple[str, bytes, bool]:
    """(path, body, malformed) of request ``number``: every 10th is malformed."""
    if number % 10 == 9:
        path, body = MALFORMED[(number // 10) % len(MALFORMED)]
        return path, body, True
    texts = [TEXTS[(number + k) % len(TEXTS)] for k in range(1 + number % 3)]
    if number % 2:
        tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
        return V2, json.dumps({"id": f"req-{number}", "inputs": [tensor]}).encode(), False
    return V1, json.dumps({"instances": texts}).encode(), False


def test_load_with_malformed_requests_loses_nothing(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "payloads"
    logger = PayloadLoggerProcess.start(out, extra_args=["--flush_rows", "100", "--flush_interval_s", "1"])
    try:
        statuses, responses, readiness = asyncio.run(drive(server, logger))
        logger.process.send_signal(signal.SIGTERM)
        assert logger.process.wait(timeout=30) == 0, logger.log_tail()
    finally:
        logger.stop()

    requests = len(statuses)
    assert sorted(statuses) == list(range(requests))
    assert requests >= 10 * len(MALFORMED), f"only {requests} requests: not every malformed kind was sent"
    server_errors = {n: s for n, s in statuses.items() if s >= 500}
    assert not server_errors, f"5xx answers: {server_errors}"
    for number, status in statuses.items():
        malformed = request_for(number)[2]
        assert (400 <= status < 500) if malformed else status == 200, (number, status, responses.get(number))
    assert readiness and all(readiness), f"{readiness.count(False)} of {len(readiness)} readiness probes failed"
    assert server.is_ready()

    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table()
    rows = {row["id"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted(f"event-{n}" for n in range(requests))
    for number in range(requests):
        row = rows[f"event-{number}"]
        assert row["request"] == request_for(number)[1]
        assert row["response"] == responses.get(number)  # None where the server answered 4xx: KServe logs no response


async def drive(
    server: ServerProcess, logger: PayloadLoggerProcess
) -> tuple[dict[int, int], dict[int, bytes], list[bool]]:
    """Statuses and 200 bodies by request number, and the readiness probe results during the load."""
    statuses: dict[int, int] = {}
    responses: dict[int, bytes] = {}
    readiness: list[bool] = []
    limits = httpx.Limits(max_connections=2 * CONCURRENCY + 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        numbers = itertools.count()
        load_done = asyncio.Event()
        deadline = time.monotonic() + LOAD_SECONDS

        async def agent_and_client() -> None:
            while time.monotonic() < deadline:
                number = next(numbers)
                path, body, _ = request_for(number)
                event_id = f"event-{number}"
                await log(event_id, "request", body)
                answer = await client.post(f"{server.url}{path}", content=body, headers=JSON)
                statuses[number] = answer.status_code
                if answer.status_code == 200:
                    responses[number] = answer.content
                    await log(event_id, "response", answer.content)

        async def log(event_id: str, kind: str, body: bytes) -> None:
            headers = event_headers(event_id, kind, datetime.now(timezone.utc))
            logged = await client.post(logger.url, content=body, headers=headers)
            assert logged.status_code == 200, logged.text

        async def probe_readiness() -> None:
            while not load_done.is_set():
                try:
                    probe = await client.get(server.ready_url, timeout=2)
                    readiness.append(probe.status_code == 200)
                except httpx.TimeoutException:
                    readiness.append(False)
                await asyncio.sleep(0.1)  # probe period, as a kubelet's readiness probe

        prober = asyncio.create_task(probe_readiness())
        try:
            await asyncio.gather(*(agent_and_client() for _ in range(CONCURRENCY)))
        finally:
            load_done.set()
            await prober
    return statuses, responses, readiness
