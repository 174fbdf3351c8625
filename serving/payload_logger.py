"""Receives KServe's inference logger CloudEvents, pairs each request with its response, appends Parquet.

An InferenceService with ``logger: {url: http://THIS-SERVICE, mode: all}`` makes KServe's agent POST every
request and every successful (HTTP 200) response as a CloudEvent in binary mode: the body is the payload
as the client sent or received it, and the headers are ``ce-id`` (the same for a request and its
response), ``ce-type`` (``org.kubeflow.serving.inference.request`` or ``...response``), ``ce-source``,
``ce-specversion``, ``ce-time``, ``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``,
``ce-endpoint`` and ``ce-metadata``. Structured-mode events (``application/cloudevents+json``) are read too.

Events are paired by (``ce-source``, ``ce-id``). A pair is one row; a request whose response never comes
(KServe logs no response for a non-200 answer) is written without one after ``--pair_timeout_s``, and a
response whose request was already written is written alone: no event is dropped. Rows are buffered and
written every ``--flush_interval_s`` or ``--flush_rows`` rows, and on shutdown (SIGTERM, SIGINT), as
Parquet files partitioned by the UTC hour of the request: ``OUT/dt=YYYY-MM-DD/hour=HH/part-*.parquet``
(Hive partitioning; ``pyarrow.dataset.dataset(OUT, partitioning="hive")`` reads ``dt`` and ``hour`` back as
columns). A local file is written under a hidden temporary name and renamed into place; a ``gs://`` object
only appears once its upload is complete. Either way a file that exists is complete.

    python -m serving.payload_logger --out /data/payloads --port 8080
    python -m serving.payload_logger --out gs://bucket/payloads --port 8080

``GET /healthz`` answers ``{"status": "ok", ...}`` with the counts of pending pairs, buffered rows and
written rows and files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn
from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import from_http
from pyarrow import fs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
EVENT_KINDS = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
REQUIRED_BINARY_HEADERS = ("ce-id", "ce-source", "ce-type", "ce-specversion")
STRUCTURED_CONTENT_TYPE = "application/cloudevents"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("inference_service", pa.string()),
        pa.field("namespace", pa.string()),
        pa.field("component", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("request_time", pa.timestamp("us", tz="UTC")),
        pa.field("response_time", pa.timestamp("us", tz="UTC")),
        pa.field("request_content_type", pa.string()),
        pa.field("response_content_type", pa.string()),
        pa.field("request", pa.binary()),
        pa.field("response", pa.binary()),
        pa.field("metadata", pa.string()),
        pa.field("annotations", pa.string()),
    ]
)

log = logging.getLogger("serving.payload_logger")


class PayloadEventError(ValueError):
    """An HTTP request that is not a KServe inference logger CloudEvent; the message names the header."""


class PayloadSinkError(RuntimeError):
    """The output location cannot be used."""


@dataclass(frozen=True)
class PayloadEvent:
    """One logged request or response."""

    id: str
    source: str
    kind: str  # "request" or "response"
    time: datetime
    body: bytes
    content_type: str | None
    inference_service: str | None = None
    namespace: str | None = None
    component: str | None = None
    endpoint: str | None = None
    metadata: str | None = None
    annotations: str | None = None


@dataclass
class _Pair:
    request: PayloadEvent | None = None
    response: PayloadEvent | None = None
    opened_at: float = field(default_factory=time.monotonic)

    def row(self) -> dict:
        first = self.request or self.response
        return {
            "id": first.id,
            "source": first.source,
            "inference_service": first.inference_service,
            "namespace": first.namespace,
            "component": first.component,
            "endpoint": first.endpoint,
            "request_time": self.request.time if self.request else None,
            "response_time": self.response.time if self.response else None,
            "request_content_type": self.request.content_type if self.request else None,
            "response_content_type": self.response.content_type if self.response else None,
            "request": self.request.body if self.request else None,
            "response": self.response.body if self.response else None,
            "metadata": first.metadata,
            "annotations": first.annotations,
        }


def parse_event(headers: Mapping[str, str], body: bytes, received_at: datetime) -> PayloadEvent:
    """The logged payload in one HTTP request from KServe's logger (binary or structured CloudEvent)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    structured = lowered.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE)
    if not structured:
        missing = [name for name in REQUIRED_BINARY_HEADERS if not lowered.get(name)]
        if missing:
            raise PayloadEventError(f"not a binary-mode CloudEvent: missing header(s) {', '.join(missing)}")
    try:
        event = from_http(lowered, body, data_unmarshaller=lambda data: data)
    except CloudEventError as error:
        raise PayloadEventError(f"not a valid CloudEvent: {error}") from None
    attributes = event.get_attributes()
    kind = EVENT_KINDS.get(attributes["type"])
    if kind is None:
        raise PayloadEventError(f"ce-type {attributes['type']!r} is neither {REQUEST_TYPE} nor {RESPONSE_TYPE}")
    return PayloadEvent(
        id=attributes["id"],
        source=attributes["source"],
        kind=kind,
        # The SDK stamps an event without a time with its own clock; the header tells whether one was sent.
        time=_event_time(attributes.get("time") if structured else lowered.get("ce-time"), received_at),
        body=_payload_bytes(event.data),
        content_type=attributes.get("datacontenttype"),
        inference_service=attributes.get("inferenceservicename"),
        namespace=attributes.get("namespace"),
        component=attributes.get("component"),
        endpoint=attributes.get("endpoint"),
        metadata=attributes.get("metadata"),
        annotations=attributes.get("annotations"),
    )


def _event_time(value: str | None, received_at: datetime) -> datetime:
    if not value:
        return received_at
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadEventError(f"ce-time {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise PayloadEventError(f"ce-time {value!r} has no time zone (RFC 3339 requires one)")
    return parsed.astimezone(timezone.utc)


def _payload_bytes(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data).encode()  # structured mode with a JSON "data" member


def partition_of(row: Mapping) -> str:
    """``dt=YYYY-MM-DD/hour=HH`` of the row's request time (its response time when it has no request)."""
    moment = row["request_time"] or row["response_time"]
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


class ParquetSink:
    """Writes rows as Parquet files under a local directory or a ``gs://bucket/prefix``."""

    def __init__(self, out: str):
        scheme = urlparse(out).scheme
        if scheme == "gs":
            self.filesystem: fs.FileSystem = _gcs_filesystem()
            self.root = out.removeprefix("gs://").rstrip("/")
            self.local = False
            bucket = self.root.split("/", 1)[0]
            try:
                found = self.filesystem.get_file_info(bucket).type != fs.FileType.NotFound
            except OSError as error:
                raise PayloadSinkError(f"cannot reach bucket gs://{bucket}: {error}") from error
            if not found:
                raise PayloadSinkError(f"bucket gs://{bucket} does not exist")
        elif scheme in ("", "file"):
            self.filesystem = fs.LocalFileSystem()
            self.root = os.path.abspath(out.removeprefix("file://"))
            self.local = True
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as error:
                raise PayloadSinkError(f"cannot create the output directory {self.root}: {error}") from error
        else:
            raise PayloadSinkError(f"--out {out!r}: only local directories and gs:// are supported, not {scheme}://")
        self.out = out
        # pyarrow imports pandas on its first conversion of Python values (a second or more): at start,
        # rather than in the first flush.
        pa.array([datetime.now(timezone.utc)], SCHEMA.field("request_time").type)

    def write(self, rows: list[dict]) -> list[str]:
        """One file per partition; returns the paths written."""
        by_partition: dict[str, list[dict]] = {}
        for row in rows:
            by_partition.setdefault(partition_of(row), []).append(row)
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        written = []
        for partition, partition_rows in sorted(by_partition.items()):
            name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
            written.append(self._write_file(partition, name, pa.Table.from_pylist(partition_rows, schema=SCHEMA)))
        return written

    def _write_file(self, partition: str, name: str, table: pa.Table) -> str:
        directory = f"{self.root}/{partition}"
        final = f"{directory}/{name}"
        if not self.local:
            # A GCS object becomes visible only when its upload completes: writing in place is atomic.
            pq.write_table(table, final, filesystem=self.filesystem, compression="zstd")
            return f"gs://{final}"
        os.makedirs(directory, exist_ok=True)
        staging = f"{directory}/.{name}.tmp"  # readers of the dataset skip hidden files
        try:
            with open(staging, "wb") as file:
                pq.write_table(table, file, compression="zstd")
                file.flush()
                os.fsync(file.fileno())  # the data is on disk before the name says the file is complete
            os.replace(staging, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(staging)
            raise
        directory_fd = os.open(directory, os.O_DIRECTORY)
        try:
            os.fsync(directory_fd)  # and so is the rename
        finally:
            os.close(directory_fd)
        return final


def _gcs_filesystem() -> fs.GcsFileSystem:
    emulator = os.environ.get(EMULATOR_ENV)
    if emulator:
        parsed = urlparse(emulator if "://" in emulator else f"http://{emulator}")
        return fs.GcsFileSystem(anonymous=True, endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return fs.GcsFileSystem()  # Google's default credentials (workload identity, GOOGLE_APPLICATION_CREDENTIALS)


class PayloadLogger:
    """Pairs events, buffers rows and flushes them to a :class:`ParquetSink`. Runs in one event loop."""

    def __init__(self, sink: ParquetSink, *, flush_rows: int, flush_interval_s: float, pair_timeout_s: float):
        self.sink = sink
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.pair_timeout_s = pair_timeout_s
        self._pending: dict[tuple[str, str], _Pair] = {}
        self._rows: list[dict] = []
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_flush = time.monotonic()
        self.written_rows = 0
        self.written_files = 0

    def add(self, event: PayloadEvent) -> None:
        key = (event.source, event.id)
        pair = self._pending.get(key)
        if pair is not None and getattr(pair, event.kind) is not None:
            # A second request (or response) with this id: a client reused the id, or the event came twice.
            # The first pair is written as it is, so nothing is lost either way.
            self._rows.append(self._pending.pop(key).row())
            pair = None
        if pair is None:
            pair = self._pending[key] = _Pair()
        setattr(pair, event.kind, event)
        if pair.request is not None and pair.response is not None:
            self._rows.append(self._pending.pop(key).row())
        if len(self._rows) >= self.flush_rows:
            self._wake.set()

    def status(self) -> dict:
        return {
            "status": "ok",
            "pending_pairs": len(self._pending),
            "buffered_rows": len(self._rows),
            "written_rows": self.written_rows,
            "written_files": self.written_files,
        }

    async def run(self) -> None:
        """Flush when enough rows are buffered or the interval has passed; write stale half-pairs.

        Returns after :meth:`stop`, never in the middle of a write.
        """
        tick = min(self.flush_interval_s, self.pair_timeout_s, 1.0)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            self._wake.clear()
            if self._stopping:
                return
            self._close_stale_pairs(time.monotonic() - self.pair_timeout_s)
            due = time.monotonic() - self._last_flush >= self.flush_interval_s
            if self._rows and (due or len(self._rows) >= self.flush_rows):
                await self.flush()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        """Write everything: buffered rows and every pending half-pair."""
        self._close_stale_pairs(float("inf"))
        await self.flush()

    async def flush(self) -> None:
        async with self._flush_lock:
            self._last_flush = time.monotonic()
            rows, self._rows = self._rows, []
            if not rows:
                return
            try:
                paths = await asyncio.to_thread(self.sink.write, rows)
            except Exception:
                log.exception("writing %d payload rows to %s failed; they stay buffered for the next flush",
                              len(rows), self.sink.out)  # fmt: skip
                self._rows = rows + self._rows
                return
            self.written_rows += len(rows)
            self.written_files += len(paths)
            log.info("wrote %d payload rows to %s", len(rows), ", ".join(paths))

    def _close_stale_pairs(self, opened_before: float) -> None:
        stale = [key for key, pair in self._pending.items() if pair.opened_at <= opened_before]
        self._rows.extend(self._pending.pop(key).row() for key in stale)


def create_app(payload_logger: PayloadLogger) -> Starlette:
    """The receiver: ``POST`` (any path) takes one event, ``GET /healthz`` reports the counts."""

    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            event = parse_event(request.headers, body, datetime.now(timezone.utc))
        except PayloadEventError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        payload_logger.add(event)
        return Response(status_code=200)

    async def healthz(request: Request) -> Response:
        return JSONResponse(payload_logger.status())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(payload_logger.run())
        try:
            yield
        finally:
            payload_logger.stop()
            await flusher  # a write in progress completes and is counted
            await payload_logger.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", receive, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write KServe inference logger CloudEvents to Parquet.")
    parser.add_argument("--out", required=True, help="output directory, or gs://bucket/prefix")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--flush_rows", type=int, default=1000, help="write when this many rows are buffered")
    parser.add_argument("--flush_interval_s", type=float, default=30.0, help="write buffered rows this often")
    parser.add_argument(
        "--pair_timeout_s", type=float, default=60.0, help="write a request without its response after this long"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    if args.flush_rows < 1:
        parser.error(f"--flush_rows must be at least 1, got {args.flush_rows}")
    for flag in ("flush_interval_s", "pair_timeout_s"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag} must be positive, got {getattr(args, flag)}")
    return args


def main(argv: Iterable[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sink = ParquetSink(args.out)
    except PayloadSinkError as error:
        raise SystemExit(f"serving.payload_logger: {error}") from None
    payload_logger = PayloadLogger(
        sink, flush_rows=args.flush_rows, flush_interval_s=args.flush_interval_s, pair_timeout_s=args.pair_timeout_s
    )
    app = create_app(payload_logger)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (the final flush included), then raises the signal
    # again for the handlers it found: these let the process exit with a status that tells whether
    # everything was written.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)
    server.run()
    lost = payload_logger.status()["buffered_rows"]
    if lost:
        raise SystemExit(f"serving.payload_logger: {lost} payload rows could not be written to {args.out}")


if __name__ == "__main__":
    main()
