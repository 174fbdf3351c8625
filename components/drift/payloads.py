"""A time window of live traffic as a frame of instances: from the serving payload log, or a flat table.

**Payload log** (``payload_format="kserve"``): what ``serving/payload_logger.py`` writes, Parquet files
``ROOT/dt=YYYY-MM-DD/hour=HH/part-*.parquet`` (hour of the request time, UTC) under a local directory or
``gs://bucket/prefix``, one row per request with the columns ``request_time``, ``response_time``
(timestamps, UTC), ``request`` and ``response`` (the raw bodies, bytes) and ``inference_service``. Only
the partitions overlapping the window are listed, then rows are kept when their request time (response
time if no request was logged) is in ``[start, end)``. Bodies are KServe's protocols:

* V1 ``{"instances": [...]}``: an instance is an object with a field per feature column (and the detector's
  time and group columns: an anomaly model's ``{"host", "timestamp", <metrics>}``), a list in that order, or,
  for a single feature (e.g. the text), the bare value. A time must be an ISO 8601 string. The response's
  ``predictions`` are labels, or objects with a ``label`` field (what ``serving/text_classifier.py`` answers).
* V2 ``{"inputs": [{"name", "shape", "datatype", "data"}]}``: one input tensor per feature column, matched
  by name (a single input is matched to a single feature whatever its name); the response output
  ``label`` (or its only output) holds the predicted labels.

Requests and instances that cannot be read (binary-encoded V2, a missing field, a blank text, a
non-number in a numeric column) are skipped and counted by reason, with the first examples naming file
and row: a log holds whatever clients sent. A request without a logged response (KServe logs responses
to HTTP 200 only) keeps its instances, without predictions.

**Table** (``payload_format="table"``): a Parquet file or directory with the feature columns, optionally
the prediction column, and a timestamp column ``time_column`` ("" takes every row).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from os import environ
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import ArrowException, fs

from components.drift.detectors import DriftColumns, DriftInputError

PAYLOAD_FORMATS = ("kserve", "table")
REQUIRED_LOG_COLUMNS = ("request_time", "response_time", "request", "response")
LOG_COLUMNS = (*REQUIRED_LOG_COLUMNS, "inference_service")
TIME_COLUMN = "request_time"
"""Column of an extracted frame holding each instance's time."""
LABEL_FIELD = "label"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class TimeWindow:
    start: datetime
    end: datetime
    """Exclusive."""

    @classmethod
    def ending(cls, end: str | datetime | None, hours: float) -> TimeWindow:
        """The ``hours`` before ``end`` (an ISO 8601 time with a zone; empty or None: now)."""
        if not hours > 0:
            raise DriftInputError(f"window_hours must be positive, got {hours}")
        if isinstance(end, str) and end:
            try:
                end = datetime.fromisoformat(end)
            except ValueError:
                raise DriftInputError(f"window_end {end!r} is not an ISO 8601 time") from None
        if not end:
            end = datetime.now(timezone.utc)
        if end.tzinfo is None:
            raise DriftInputError(f"window_end {end.isoformat()!r} has no time zone (add Z or +00:00)")
        end = end.astimezone(timezone.utc)
        return cls(start=end - timedelta(hours=hours), end=end)

    def partitions(self) -> list[str]:
        """``dt=YYYY-MM-DD/hour=HH`` of every hour that overlaps the window."""
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        names = []
        while hour < self.end:
            names.append(f"dt={hour:%Y-%m-%d}/hour={hour:%H}")
            hour += timedelta(hours=1)
        return names

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


@dataclass
class Extraction:
    """The instances of a window, and what could not be read."""

    frame: pd.DataFrame
    """One row per instance: the feature columns, the prediction column (None when unknown) and TIME_COLUMN."""
    source_rows: int = 0
    """Logged requests (or table rows) in the window."""
    files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Reason -> requests or instances skipped for it."""
    examples: list[str] = field(default_factory=list)
    without_prediction: Counter[str] = field(default_factory=Counter)
    """Reason -> instances kept without a prediction (no logged response, an unreadable one, ...)."""

    def skip(self, reason: str, where: str, detail: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {detail}")


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail or reason


def read_window(
    uri: str,
    window: TimeWindow,
    columns: DriftColumns,
    *,
    payload_format: str = "kserve",
    inference_service: str = "",
    time_column: str = "",
) -> Extraction:
    """The instances in ``window`` from a payload log or a table (see the module docstring)."""
    if payload_format == "kserve":
        return extract_instances(read_payload_log(uri, window, inference_service), columns)
    if payload_format == "table":
        return read_feature_table(uri, window, columns, time_column)
    raise DriftInputError(f"payload_format must be one of {list(PAYLOAD_FORMATS)}, got {payload_format!r}")


def open_location(uri: str) -> tuple[fs.FileSystem, str]:
    """The filesystem and path of a local path, ``file://`` or ``gs://`` URI."""
    scheme = urlparse(uri).scheme
    if scheme == "gs":
        emulator = environ.get(EMULATOR_ENV)
        if emulator:
            parsed = urlparse(emulator if "://" in emulator else f"http://{emulator}")
            gcs = fs.GcsFileSystem(anonymous=True, endpoint_override=parsed.netloc, scheme=parsed.scheme)
        else:
            gcs = fs.GcsFileSystem()  # Google's default credentials (workload identity, ...)
        return gcs, uri.removeprefix("gs://").rstrip("/")
    if scheme in ("", "file"):
        return fs.LocalFileSystem(), uri.removeprefix("file://").rstrip("/") or "/"
    raise DriftInputError(f"{uri!r}: only local paths and gs:// URIs are supported, not {scheme}://")


def read_payload_log(uri: str, window: TimeWindow, inference_service: str = "") -> pd.DataFrame:
    """The logged requests of ``window``, with ``file`` and ``row`` columns saying where each came from."""
    filesystem, root = open_location(uri)
    _require_exists(filesystem, root, uri)
    frames = []
    for path in _partition_files(filesystem, root, window):
        try:
            present = pq.read_schema(path, filesystem=filesystem).names
            missing = [name for name in REQUIRED_LOG_COLUMNS if name not in present]
            if missing:
                raise DriftInputError(f"payload file {path} lacks column(s) {missing}; it has {present}")
            table = pq.read_table(path, filesystem=filesystem, columns=[c for c in LOG_COLUMNS if c in present])
        except (OSError, ArrowException) as error:
            raise DriftInputError(f"cannot read payload file {path}: {error}") from error
        frame = table.to_pandas()
        frame["file"] = path.removeprefix(root).lstrip("/")
        frame["row"] = range(len(frame))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*LOG_COLUMNS, "file", "row"])
    rows = pd.concat(frames, ignore_index=True)
    moment = pd.to_datetime(rows["request_time"], utc=True).fillna(pd.to_datetime(rows["response_time"], utc=True))
    keep = (moment >= window.start) & (moment < window.end)
    if inference_service:
        if "inference_service" not in rows.columns:
            raise DriftInputError(f"the payload log at {uri} has no inference_service column to filter on")
        keep &= rows["inference_service"] == inference_service
    rows = rows.assign(**{TIME_COLUMN: moment})[keep].reset_index(drop=True)
    rows.attrs["files"] = len(frames)
    return rows


def extract_instances(rows: pd.DataFrame, columns: DriftColumns) -> Extraction:
    """One row per instance of the logged requests, with the predicted label from the logged response."""
    extraction = Extraction(frame=pd.DataFrame(), source_rows=len(rows), files=rows.attrs.get("files", 0))
    names = list(columns.fields)
    records: list[dict[str, Any]] = []
    for row in rows.itertuples(index=False):
        where = f"{row.file} row {row.row}"
        try:
            instances = _request_instances(row.request, names)
        except _Skip as skip:
            extraction.skip(skip.reason, where, skip.detail)
            continue
        try:
            predictions = _response_labels(row.response, len(instances))
        except _Skip as skip:
            extraction.without_prediction[skip.reason] += len(instances)
            predictions = [None] * len(instances)
        for index, (instance, prediction) in enumerate(zip(instances, predictions)):
            try:
                values = _checked_values(instance, columns)
            except _Skip as skip:
                extraction.skip(skip.reason, where, f"instance {index}: {skip.detail}")
                continue
            records.append({**values, columns.prediction: prediction, TIME_COLUMN: getattr(row, TIME_COLUMN)})
    extraction.frame = pd.DataFrame.from_records(records, columns=[*names, columns.prediction, TIME_COLUMN])
    return extraction


def read_feature_table(uri: str, window: TimeWindow | None, columns: DriftColumns, time_column: str) -> Extraction:
    """Rows of a flat Parquet file or directory; filtered to ``window`` on ``time_column`` when one is named."""
    filesystem, path = open_location(uri)
    _require_exists(filesystem, path, uri)
    try:
        frame = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive").to_table().to_pandas()
    except (OSError, ArrowException) as error:
        raise DriftInputError(f"cannot read the table {uri}: {error}") from error
    wanted = [*columns.fields, *([time_column] if time_column else [])]
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise DriftInputError(f"table {uri} lacks column(s) {missing}; it has {list(frame.columns)}")
    if time_column:
        moment = pd.to_datetime(frame[time_column], utc=True)
        frame = frame.assign(**{TIME_COLUMN: moment})
        if window is not None:
            frame = frame[(moment >= window.start) & (moment < window.end)]
    else:
        frame = frame.assign(**{TIME_COLUMN: pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")})
    if columns.prediction not in frame.columns:
        frame = frame.assign(**{columns.prediction: None})
    frame = frame[[*columns.fields, columns.prediction, TIME_COLUMN]]
    unlabelled = int(frame[columns.prediction].isna().sum())
    return Extraction(
        frame=frame, source_rows=len(frame), files=1,
        without_prediction=Counter({f"no value in column {columns.prediction!r}": unlabelled} if unlabelled else {}),
    )  # fmt: skip


def _require_exists(filesystem: fs.FileSystem, path: str, uri: str) -> None:
    try:
        found = filesystem.get_file_info(path).type != fs.FileType.NotFound
    except OSError as error:
        raise DriftInputError(f"cannot reach {uri}: {error}") from error
    if not found:
        raise DriftInputError(f"{uri} does not exist")


def _partition_files(filesystem: fs.FileSystem, root: str, window: TimeWindow) -> Iterator[str]:
    for partition in window.partitions():
        selector = fs.FileSelector(f"{root}/{partition}", allow_not_found=True)
        for info in sorted(filesystem.get_file_info(selector), key=lambda info: info.path):
            name = info.base_name
            if info.type == fs.FileType.File and name.startswith("part-") and name.endswith(".parquet"):
                yield info.path


def _request_instances(body: bytes | None, names: Sequence[str]) -> list[Any]:
    if body is None:
        raise _Skip("no request logged (response only)")
    payload = _json(body, "request")
    if isinstance(payload, dict) and "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise _Skip("V1 'instances' is not a list")
        return instances
    if isinstance(payload, dict) and "inputs" in payload:
        return _v2_instances(payload["inputs"], names)
    raise _Skip("request has neither 'instances' (V1) nor 'inputs' (V2)")


def _v2_instances(inputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    if not isinstance(inputs, list) or not all(isinstance(tensor, dict) and "data" in tensor for tensor in inputs):
        raise _Skip("V2 'inputs' is not a list of tensors with data")
    by_name = {tensor.get("name"): _flat(tensor["data"]) for tensor in inputs}
    if len(names) == 1 and len(inputs) == 1:
        by_name = {names[0]: _flat(inputs[0]["data"])}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise _Skip("V2 request lacks input tensor(s) for feature columns", f"no {missing}; inputs {list(by_name)}")
    lengths = {len(by_name[name]) for name in names}
    if len(lengths) != 1:
        raise _Skip("V2 input tensors have different lengths", f"lengths {sorted(lengths)}")
    return [{name: by_name[name][i] for name in names} for i in range(lengths.pop())]


def _response_labels(body: bytes | None, count: int) -> list[Any]:
    if body is None:
        raise _Skip("no response logged")
    payload = _json(body, "response")
    if isinstance(payload, dict) and isinstance(payload.get("predictions"), list):
        labels = [_label(prediction) for prediction in payload["predictions"]]
    elif isinstance(payload, dict) and isinstance(payload.get("outputs"), list):
        outputs = {output.get("name"): output for output in payload["outputs"] if isinstance(output, dict)}
        chosen = outputs.get(LABEL_FIELD) or (next(iter(outputs.values())) if len(outputs) == 1 else None)
        if chosen is None or "data" not in chosen:
            raise _Skip("no 'label' output", f"outputs {list(outputs)}")
        labels = _flat(chosen["data"])
    else:
        raise _Skip("neither 'predictions' (V1) nor 'outputs' (V2)")
    if len(labels) != count:
        raise _Skip("prediction count differs from instance count", f"{len(labels)} predictions for {count} instances")
    return labels


def _label(prediction: Any) -> Any:
    if isinstance(prediction, dict):
        return prediction.get(LABEL_FIELD)
    return prediction if isinstance(prediction, (str, int, float, bool)) else None


def _checked_values(instance: Any, columns: DriftColumns) -> dict[str, Any]:
    names = columns.fields
    if isinstance(instance, list):
        if len(instance) != len(names):
            raise _Skip("instance list has the wrong number of values", f"{len(instance)} values for {list(names)}")
        instance = dict(zip(names, instance))
    elif not isinstance(instance, dict):
        if len(names) != 1:
            raise _Skip("instance is neither an object nor a list", f"a {type(instance).__name__}")
        instance = {names[0]: instance}
    missing = [name for name in names if name not in instance]
    if missing:
        raise _Skip("instance lacks feature field(s)", f"no field(s) {missing}")
    values = {name: instance[name] for name in names}
    for name in columns.numeric:
        value = values[name]
        number = _number(value)
        if number is None:
            raise _Skip(f"numeric feature {name!r} is not a finite number", f"{name}={value!r}")
        values[name] = number
    if columns.text:
        text = values[columns.text]
        if not isinstance(text, str) or not text.strip():
            raise _Skip(f"text feature {columns.text!r} is blank or not a string", f"{columns.text}={text!r}")
    if columns.time:
        moment = _time(values[columns.time])
        if moment is None:
            raise _Skip(
                f"time field {columns.time!r} is not an ISO 8601 time", f"{columns.time}={values[columns.time]!r}"
            )
        values[columns.time] = moment
    return values


def _time(value: Any) -> pd.Timestamp | None:
    """An ISO 8601 string as a UTC time (naive: UTC); anything else is None."""
    if not isinstance(value, str):
        return None
    try:
        moment = pd.Timestamp(value)
    except ValueError:
        return None
    if moment is pd.NaT:
        return None
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flat(data: Any) -> list[Any]:
    """V2 tensor data as a list of N values: ``[[a], [b]]`` (shape [N, 1]) becomes ``[a, b]``."""
    if not isinstance(data, list):
        return [data]
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _Skip(f"{what} body is not JSON (e.g. V2 binary tensors)") from None
