"""A trained anomaly model: one detector per host and metric, the alert threshold, and where each stream stood.

Directory layout (no pickle anywhere):

    model.json            manifest: "family": "anomaly", the detector kind and parameters, the threshold and how
                          it was chosen, the columns, the hosts and metrics, the numbers each learned detector
                          needs, training facts and metrics, library versions, and the sha256 of every file below
    state.json            per host: the last timestamp seen in training and, per metric, the detector's state
                          (the last values and recent surprises it needs; bounded by the detector's parameters)
    forests/<i>.skops     isolation_forest only: the forest of series i (skops, loaded with trusted types only)
    autoencoder.safetensors   autoencoder only: every series' weights, named "s<i>.<layer>"

A host's score for a row is the largest of its metrics' scores (each in [0, 1)); the row is an anomaly when
that score is >= the threshold. Scoring continues each host's stream from where training left it.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.anomaly.learned import (
    AutoencoderModel,
    ForestModel,
    autoencoder_from_tensors,
    autoencoder_tensors,
    load_forest,
    save_forest,
)
from components.anomaly.scorer import DetectorSpec, SeriesScorer
from components.anomaly.surprise import DetectorError

MANIFEST = "model.json"
STATE = "state.json"
AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
FORMAT_VERSION = 1
FAMILY = "anomaly"


class AnomalyModelError(ValueError):
    """A model directory that cannot be read or used, or data that does not fit the model; the message says which."""


def utc_timestamp(value: Any, where: str) -> pd.Timestamp:
    """``value`` (ISO 8601 text, a datetime, or seconds since the epoch) as a UTC timestamp; naive means UTC."""
    if isinstance(value, bool) or value is None:
        raise AnomalyModelError(f"{where} must be an ISO 8601 time or seconds since the epoch, got {value!r}")
    try:
        stamp = pd.Timestamp(value, unit="s") if isinstance(value, (int, float)) else pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as error:
        raise AnomalyModelError(f"{where} is not a time: {value!r} ({error})") from None
    if stamp is pd.NaT:
        raise AnomalyModelError(f"{where} is not a time: {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass
class HostStream:
    """One host's detectors (one per metric) and the last timestamp they scored."""

    scorers: dict[str, SeriesScorer]
    last_timestamp: pd.Timestamp | None = None

    def check_order(self, timestamp: pd.Timestamp, host: str) -> None:
        if self.last_timestamp is not None and timestamp <= self.last_timestamp:
            raise AnomalyModelError(
                f"host {host!r}: timestamp {timestamp.isoformat()} is not after the host's last one "
                f"({self.last_timestamp.isoformat()}); send each host's points in time order, once"
            )

    def score(self, timestamps: list[pd.Timestamp], values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per metric, the scores of these rows (already checked to be in order); the stream moves on past them."""
        scores = {metric: scorer.score(values[metric]) for metric, scorer in self.scorers.items()}
        self.last_timestamp = timestamps[-1]
        return scores


@dataclass(frozen=True)
class Scored:
    """Rows sorted by host and time, and their scores: ``score`` (the host's, the largest metric score) and per metric."""

    rows: pd.DataFrame
    score: np.ndarray
    metric_scores: dict[str, np.ndarray]


@dataclass
class AnomalyModel:
    spec: DetectorSpec
    threshold: float
    timestamp_column: str
    host_column: str
    metrics: tuple[str, ...]
    streams: dict[str, HostStream]  # where training left each host's stream
    fitted: dict[tuple[str, str], Any] = field(default_factory=dict)  # learned detectors per (host, metric)
    info: dict[str, Any] = field(default_factory=dict)  # threshold method, training facts, metrics: kept in model.json

    @property
    def hosts(self) -> list[str]:
        return list(self.streams)

    def stream_for(self, host: str, from_training: bool = True) -> HostStream:
        """A copy of the host's stream as training left it (``from_training``), or a new one with no history.

        A host the model has never seen starts with no history (its first ``min_history`` rows score 0), except
        with learned detectors, which exist only for the hosts they were fitted on.
        """
        if self.spec.learned and (host, self.metrics[0]) not in self.fitted:
            trained = sorted({fitted_host for fitted_host, _ in self.fitted})
            raise AnomalyModelError(
                f"host {host!r} has no trained {self.spec.kind} detector (it is fitted per host); "
                f"trained hosts: {trained[:20]}{' ...' if len(trained) > 20 else ''}"
            )
        known = self.streams.get(host)
        if known is not None and from_training:
            return HostStream({m: s.with_state(s.to_state()) for m, s in known.scorers.items()}, known.last_timestamp)
        return HostStream({metric: self._fresh_scorer(host, metric) for metric in self.metrics})

    def _fresh_scorer(self, host: str, metric: str) -> SeriesScorer:
        return SeriesScorer(self.spec, self.fitted.get((host, metric)))

    def score_frame(self, frame: pd.DataFrame, where: str = "data", advance: bool = False) -> Scored:
        """Score every row of ``frame`` (timestamp, host and metric columns), each host continuing from training.

        With ``advance`` the model's own streams move on past these rows (training does this), else the model is
        left as it was.
        """
        rows = self.checked_rows(frame, where)
        per_metric = {metric: np.empty(len(rows)) for metric in self.metrics}
        for host, index in rows.groupby(self.host_column, sort=False).indices.items():
            host = str(host)
            if advance:
                stream = self.streams[host] = self.streams.get(host) or self.stream_for(host)
            else:
                stream = self.stream_for(host)
            group = rows.iloc[index]
            scores = stream.score(list(group[self.timestamp_column]), {m: group[m].to_numpy() for m in self.metrics})
            for metric in self.metrics:
                per_metric[metric][index] = scores[metric]
        return Scored(rows, np.max(list(per_metric.values()), axis=0), per_metric)

    def checked_rows(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """The rows sorted by host and time, with UTC timestamps; raise naming the column and row of bad values."""
        needed = [self.timestamp_column, self.host_column, *self.metrics]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise AnomalyModelError(f"{where}: missing column(s) {missing}; it has {list(frame.columns)}")
        if frame.empty:
            raise AnomalyModelError(f"{where}: no rows")
        rows = frame.reset_index(drop=True)
        for metric in self.metrics:
            numbers = pd.to_numeric(rows[metric], errors="coerce").astype("float64")
            bad = np.flatnonzero(~np.isfinite(numbers.to_numpy()))
            if bad.size:
                value = rows[metric].iloc[bad[0]]
                raise AnomalyModelError(f"{where}: column {metric!r}, row {bad[0]}: {value!r} is not a finite number")
            rows[metric] = numbers
        missing_host = rows[self.host_column].isna().to_numpy()
        if missing_host.any():
            raise AnomalyModelError(f"{where}: column {self.host_column!r}, row {int(np.argmax(missing_host))}: no host")
        rows[self.host_column] = rows[self.host_column].astype(str)
        try:
            stamps = pd.to_datetime(rows[self.timestamp_column], utc=True)
        except (ValueError, TypeError) as error:
            raise AnomalyModelError(f"{where}: column {self.timestamp_column!r} does not hold times: {error}") from None
        if stamps.isna().any():
            row = int(np.argmax(stamps.isna().to_numpy()))
            raise AnomalyModelError(f"{where}: column {self.timestamp_column!r}, row {row}: no time")
        rows[self.timestamp_column] = stamps
        rows = rows.sort_values([self.host_column, self.timestamp_column], kind="stable").reset_index(drop=True)
        repeated = rows.duplicated([self.host_column, self.timestamp_column])
        if repeated.any():
            first = rows[repeated].iloc[0]
            host, stamp = first[self.host_column], first[self.timestamp_column].isoformat()
            raise AnomalyModelError(f"{where}: host {host!r} has more than one row at {stamp}")
        return rows

    # ---- saving and loading -------------------------------------------------------------------------------

    def save(self, model_dir: str | Path) -> dict[str, Any]:
        """Write the model directory (to a sibling first, renamed into place at the end); returns the manifest."""
        target = Path(model_dir)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise AnomalyModelError(f"{target} already exists and is not an empty directory")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            manifest = self._write(staging)
            if target.exists():
                target.rmdir()
            staging.replace(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def _series(self) -> list[tuple[str, str]]:
        return [(host, metric) for host in self.streams for metric in self.metrics]

    def _write(self, directory: Path) -> dict[str, Any]:
        state = {
            "hosts": {
                host: {
                    "last_timestamp": stream.last_timestamp.isoformat() if stream.last_timestamp is not None else None,
                    "metrics": {metric: scorer.to_state() for metric, scorer in stream.scorers.items()},
                }
                for host, stream in self.streams.items()
            }
        }
        (directory / STATE).write_text(json.dumps(state))
        series = []
        tensors = {}
        for number, (host, metric) in enumerate(self._series()):
            entry: dict[str, Any] = {"host": host, "metric": metric}
            fitted = self.fitted.get((host, metric))
            if isinstance(fitted, ForestModel):
                entry["file"] = f"forests/{number}.skops"
                (directory / "forests").mkdir(exist_ok=True)
                save_forest(fitted, directory / entry["file"])
            elif isinstance(fitted, AutoencoderModel):
                entry["weights"] = f"s{number}"
                tensors.update(autoencoder_tensors(fitted, entry["weights"]))
            if fitted is not None:
                entry.update(fitted.manifest())
            series.append(entry)
        if tensors:
            from safetensors.torch import save_file

            save_file(tensors, str(directory / AUTOENCODER_WEIGHTS))
        manifest = {
            "family": FAMILY,
            "format_version": FORMAT_VERSION,
            "detector": {"kind": self.spec.kind, "parameters": self.spec.parameters()},
            "threshold": self.threshold,
            "columns": {"timestamp": self.timestamp_column, "host": self.host_column, "metrics": list(self.metrics)},
            "hosts": self.hosts,
            "series": series,
            **self.info,
            "versions": _versions(),
            "files": {
                path.relative_to(directory).as_posix(): _sha256(path)
                for path in sorted(directory.rglob("*"))
                if path.is_file()
            },
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return manifest

    @classmethod
    def load(cls, model_dir: str | Path) -> AnomalyModel:
        """Read a model directory, checking its family, format and the sha256 of every file it lists."""
        directory = Path(model_dir)
        manifest = read_manifest(directory)
        for name, digest in manifest["files"].items():
            path = directory / name
            if not path.is_file():
                raise AnomalyModelError(f"{path} is missing (listed in {directory / MANIFEST})")
            if _sha256(path) != digest:
                raise AnomalyModelError(f"{path} does not match its sha256 in {directory / MANIFEST}")
        try:
            detector = manifest["detector"]
            spec = DetectorSpec.from_parameters(detector["kind"], detector["parameters"])
            columns = manifest["columns"]
            metrics = tuple(columns["metrics"])
            threshold = float(manifest["threshold"])
            state = json.loads((directory / STATE).read_text())["hosts"]
        except (KeyError, TypeError, ValueError, OSError, DetectorError) as error:
            raise AnomalyModelError(f"{directory / MANIFEST} is not a valid anomaly model manifest: {error!r}") from error
        if not 0 < threshold < 1 or not math.isfinite(threshold):
            raise AnomalyModelError(f"{directory / MANIFEST}: threshold must be in (0, 1), got {threshold}")
        fitted = _load_fitted(directory, spec, manifest["series"]) if spec.learned else {}
        streams = {}
        for host, host_state in state.items():
            scorers = {}
            for metric in metrics:
                scorer = SeriesScorer(spec, fitted.get((host, metric)))
                try:
                    scorers[metric] = scorer.with_state(host_state["metrics"][metric])
                except (KeyError, TypeError, ValueError) as error:
                    where = f"{directory / STATE}: host {host!r}, metric {metric!r}"
                    raise AnomalyModelError(f"{where}: bad state {error!r}") from error
            last = host_state.get("last_timestamp")
            streams[host] = HostStream(scorers, utc_timestamp(last, f"{STATE} host {host!r}") if last else None)
        known = {"family", "format_version", "detector", "threshold", "columns", "hosts", "series", "versions", "files"}
        info = {key: value for key, value in manifest.items() if key not in known}
        return cls(spec, threshold, columns["timestamp"], columns["host"], metrics, streams, fitted, info)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise AnomalyModelError(f"{path} is missing: {directory} is not an anomaly model directory")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AnomalyModelError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("family") != FAMILY:
        raise AnomalyModelError(f"{path}: \"family\" is not \"{FAMILY}\"")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise AnomalyModelError(f"{path}: format_version {manifest.get('format_version')!r}; this code reads {FORMAT_VERSION}")
    if not isinstance(manifest.get("files"), dict):
        raise AnomalyModelError(f"{path}: no \"files\" checksum list")
    return manifest


def _load_fitted(directory: Path, spec: DetectorSpec, series: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    fitted: dict[tuple[str, str], Any] = {}
    tensors = None
    if spec.kind == "autoencoder":
        from safetensors.torch import load_file

        tensors = load_file(str(directory / AUTOENCODER_WEIGHTS))
    for entry in series:
        key = (entry["host"], entry["metric"])
        try:
            if spec.kind == "isolation_forest":
                fitted[key] = load_forest(spec, directory / entry["file"], entry)
            else:
                fitted[key] = autoencoder_from_tensors(spec, tensors, entry["weights"], entry)
        except (KeyError, ValueError, OSError) as error:
            raise AnomalyModelError(f"{directory}: cannot load the {spec.kind} detector of {key}: {error}") from error
    return fitted


class HostCache:
    """Each host's stream for a server: at most ``max_hosts`` of them, the least recently used dropped first.

    A host's first stream continues from training (if the model knows it); a host whose stream was dropped
    starts again with no history. Memory per host is bounded by the detector (``context_rows`` values and the
    recent surprises, per metric).
    """

    def __init__(self, model: AnomalyModel, max_hosts: int):
        if max_hosts < 1:
            raise ValueError(f"max_hosts must be >= 1, got {max_hosts}")
        self.model = model
        self.max_hosts = max_hosts
        self._streams: OrderedDict[str, HostStream] = OrderedDict()
        self._resumed: set[str] = set()  # hosts whose training state was used once (at most the trained hosts)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, host: str) -> bool:
        return host in self._streams

    def peek(self, host: str) -> HostStream | None:
        """The host's current stream without creating or reordering anything."""
        return self._streams.get(host)

    def was_resumed(self, host: str) -> bool:
        """Whether the host's training state was used already (so a new stream for it starts with no history)."""
        return host in self._resumed

    def get(self, host: str) -> HostStream:
        stream = self._streams.get(host)
        if stream is not None:
            self._streams.move_to_end(host)
            return stream
        stream = self.model.stream_for(host, from_training=host not in self._resumed)
        if host in self.model.streams:
            self._resumed.add(host)
        self._streams[host] = stream
        while len(self._streams) > self.max_hosts:
            self._streams.popitem(last=False)
            self.evicted += 1
        return stream


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__}  # fmt: skip
