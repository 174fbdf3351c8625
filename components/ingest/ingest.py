"""Ingest tabular files (CSV, Parquet, JSON Lines; local or on GCS) into train/eval/test Parquet splits.

Two streaming passes keep memory bounded whatever the input size: the first parses every file in
batches, settles column types, sets bad rows aside and stages the good rows with a split score in a
temporary Parquet file; the second routes the staged rows to the split files. All outputs are
written to ``<path>.partial`` and renamed into place only once everything has succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from components.ingest.conform import Conformer, check_column_types, infer_schema
from components.ingest.digest import ContentDigest, schema_fingerprint
from components.ingest.errors import IngestError
from components.ingest.readers import READERS, BadRow
from components.ingest.sources import SourceFile, local_copy, resolve_sources
from components.ingest.splits import SPLIT_METHODS, SPLITS, SplitScorer, assign, fraction_cuts, time_cuts

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 1 << 20  # pyarrow reads up to 32 blocks ahead: memory is about 32 x this
BAD_ROW_POLICIES = ("fail", "skip")
REJECTS_SCHEMA = pa.schema([("file", pa.string()), ("row", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])
_SCORE = "__ingest_split_score"
_ROW_GROUP_ROWS = 65_536
_ROW_GROUP_BYTES = 2 << 20
_READ_ROWS = 16_384


@dataclass(frozen=True)
class Settings:
    """The ingest options, checked."""

    column_types: dict[str, str]
    label_column: str
    id_column: str
    required_columns: tuple[str, ...]
    split_by: str
    timestamp_column: str
    eval_fraction: float
    test_fraction: float
    seed: int
    on_bad_rows: str
    block_size: int

    def __post_init__(self) -> None:
        if self.on_bad_rows not in BAD_ROW_POLICIES:
            raise IngestError(f"on_bad_rows {self.on_bad_rows!r} is not one of: {', '.join(BAD_ROW_POLICIES)}")
        if self.split_by not in SPLIT_METHODS:
            raise IngestError(f"split_by {self.split_by!r} is not one of: {', '.join(SPLIT_METHODS)}")
        if self.split_by == "time" and not self.timestamp_column:
            raise IngestError("split_by='time' needs timestamp_column")
        if not (self.eval_fraction > 0 and self.test_fraction > 0 and self.eval_fraction + self.test_fraction < 1):
            raise IngestError(
                f"eval_fraction ({self.eval_fraction}) and test_fraction ({self.test_fraction}) "
                "must each be above 0 and together below 1"
            )
        if self.block_size <= 0:
            raise IngestError(f"block_size must be positive, got {self.block_size}")

    def roles(self) -> dict[str, str]:
        """Columns every file must have -> what they are for."""
        roles = {name: "required" for name in self.required_columns}
        for name, role, needed in (
            (self.label_column, "label", True),
            (self.id_column, "id", True),
            (self.timestamp_column, "timestamp", self.split_by == "time"),
        ):
            if name and needed:
                roles[name] = role
        return roles

    def not_empty(self) -> dict[str, str]:
        """Columns whose empty values make a row bad -> what they are for."""
        columns = {self.label_column: "label"}
        if self.split_by == "hash":
            columns[self.id_column] = "id"
        if self.split_by == "time":
            columns[self.timestamp_column] = "timestamp"
        return {name: role for name, role in columns.items() if name}


def run_ingest(
    source: str,
    train_path: str,
    eval_path: str,
    test_path: str,
    rejects_path: str,
    *,
    file_format: str = "auto",
    column_types: dict[str, str] | None = None,
    label_column: str = "",
    id_column: str = "",
    required_columns: Sequence[str] = (),
    split_by: str = "hash",
    timestamp_column: str = "",
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    on_bad_rows: str = "fail",
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, dict[str, Any]]:
    """Ingest ``source`` into Parquet files at the four paths; returns each output's metadata by name.

    Names: ``train``, ``eval``, ``test``, ``rejects``. Raises :class:`IngestError` on bad input, and
    then leaves nothing at the paths. ``block_size`` is the bytes parsed at a time (CSV, JSONL).
    """
    if isinstance(required_columns, str):
        raise IngestError(f"required_columns must be a list of column names, not the string {required_columns!r}")
    settings = Settings(
        column_types=check_column_types(column_types or {}),
        label_column=label_column,
        id_column=id_column,
        required_columns=tuple(required_columns),
        split_by=split_by,
        timestamp_column=timestamp_column,
        eval_fraction=float(eval_fraction),
        test_fraction=float(test_fraction),
        seed=int(seed),
        on_bad_rows=on_bad_rows,
        block_size=int(block_size),
    )
    files = resolve_sources(source, file_format)
    paths = dict(zip((*SPLITS, "rejects"), (train_path, eval_path, test_path, rejects_path)))
    with _Outputs(paths) as outputs, tempfile.TemporaryDirectory(prefix="ingest-") as stage_dir:
        staged = _Stage(settings, outputs.open("rejects", REJECTS_SCHEMA))
        staged_path = os.path.join(stage_dir, "staged.parquet")
        staged.run(files, staged_path)
        if staged.rows == 0:
            rejected = f" ({staged.rejected} rows rejected)" if staged.rejected else ""
            raise IngestError(f"no rows to ingest from {source}{rejected}")
        digests = _split(settings, staged, staged_path, outputs)
        outputs.commit()
    return _metadata(files, staged, outputs, digests)


class _ParquetSink:
    """One Parquet output, written at ``<path>.partial`` in row groups of bounded rows and bytes."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path, self.partial = path, f"{path}.partial"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._writer = pq.ParquetWriter(self.partial, schema)
        self._pending: list[pa.RecordBatch] = []
        self.digest = ContentDigest(schema)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.digest.update(batch)
        self.rows += batch.num_rows
        self._pending.append(batch)
        rows, size = sum(b.num_rows for b in self._pending), sum(b.nbytes for b in self._pending)
        if rows >= _ROW_GROUP_ROWS or size >= _ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending))
            self._pending = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


class _Outputs(contextlib.AbstractContextManager):
    """The output files: renamed into place by :meth:`commit`, removed if anything fails first."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = paths
        self.sinks: dict[str, _ParquetSink] = {}

    def open(self, name: str, schema: pa.Schema) -> _ParquetSink:
        self.sinks[name] = _ParquetSink(self._paths[name], schema)
        return self.sinks[name]

    def commit(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        for sink in self.sinks.values():
            os.replace(sink.partial, sink.path)

    def __exit__(self, kind, error, trace) -> None:
        if error is not None:
            for sink in self.sinks.values():
                with contextlib.suppress(Exception):
                    sink.close()
                with contextlib.suppress(FileNotFoundError):
                    os.remove(sink.partial)


@dataclass
class _Stage:
    """Pass one: every file parsed, typed and checked; good rows staged with their split score."""

    settings: Settings
    rejects: _ParquetSink
    schema: pa.Schema | None = None
    source_format: str = ""
    rows: int = 0
    rejected: int = 0
    _first_file: tuple[str, list[str]] | None = None
    _pending_rejects: list[dict[str, Any]] = field(default_factory=list)

    def run(self, files: list[SourceFile], staged_path: str) -> None:
        settings = self.settings
        scorer = SplitScorer(settings.split_by, settings.id_column, settings.timestamp_column, settings.seed)
        self.source_format = files[0].file_format
        writer = None
        try:
            for file in files:
                for batch in self._good_batches(file, scorer):
                    if writer is None:
                        writer = pq.ParquetWriter(staged_path, batch.schema)
                    writer.write_batch(batch)
                    self.rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
            self._flush_rejects()

    def _good_batches(self, file: SourceFile, scorer: SplitScorer) -> Iterator[pa.RecordBatch]:
        settings = self.settings
        with local_copy(file) as path, contextlib.closing(
            READERS[file.file_format](path, file.uri, settings.block_size, settings.column_types)
        ) as reader:
            self._check_columns(file, reader.columns)
            conformer = None
            for raw in reader.batches():
                if self.schema is None and raw.batch.num_rows:
                    self.schema = infer_schema(raw.batch, settings.column_types, reader.from_text)
                    scorer.check(self.schema)
                if self.schema is None:
                    self._reject(file, reader.position, raw.bad_rows)
                    continue
                conformer = conformer or Conformer(self.schema, reader.from_text, settings.not_empty(), file.uri)
                batch, bad_rows = conformer.conform(raw)
                self._reject(file, reader.position, bad_rows)
                if batch.num_rows:
                    yield batch.append_column(_SCORE, pa.array(scorer.scores(batch), pa.float64()))

    def _check_columns(self, file: SourceFile, columns: list[str]) -> None:
        listed = ", ".join(columns) or "none"
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        if duplicates:
            raise IngestError(f"{file.uri}: column {duplicates[0]!r} appears more than once")
        for name, role in self.settings.roles().items():
            if name not in columns:
                raise IngestError(f"{file.uri}: {role} column {name!r} not found; the file has columns: {listed}")
        if self._first_file is None:
            self._first_file = (file.uri, columns)
            for name in self.settings.column_types:
                if name not in columns:
                    raise IngestError(f"column_types names {name!r}, which {file.uri} does not have; columns: {listed}")
            return
        first_uri, first_columns = self._first_file
        if file.file_format != "jsonl" and set(columns) != set(first_columns):
            missing = sorted(set(first_columns) - set(columns))
            extra = sorted(set(columns) - set(first_columns))
            raise IngestError(f"{file.uri}: columns differ from {first_uri}: missing {missing}, unexpected {extra}")

    def _reject(self, file: SourceFile, position: str, bad_rows: list[BadRow]) -> None:
        if not bad_rows:
            return
        if self.settings.on_bad_rows == "fail":
            first = bad_rows[0]
            hint = "on_bad_rows='skip' sets such rows aside"
            raise IngestError(f"{file.uri} {position} {first.line}: {first.reason} ({hint})")
        self.rejected += len(bad_rows)
        self._pending_rejects.extend(
            {"file": file.uri, "row": row.line, "reason": row.reason, "raw": row.raw} for row in bad_rows
        )
        if len(self._pending_rejects) >= _ROW_GROUP_ROWS:
            self._flush_rejects()

    def _flush_rejects(self) -> None:
        if self._pending_rejects:
            self.rejects.write(pa.RecordBatch.from_pylist(self._pending_rejects, schema=REJECTS_SCHEMA))
            self._pending_rejects = []


def _split(settings: Settings, staged: _Stage, staged_path: str, outputs: _Outputs) -> dict[str, str]:
    """Pass two: route the staged rows to the split files; returns each split's content sha256."""
    if settings.split_by == "time":
        times = pq.read_table(staged_path, columns=[_SCORE]).column(_SCORE).to_numpy()
        cuts = time_cuts(times, settings.eval_fraction, settings.test_fraction)
    else:
        cuts = fraction_cuts(settings.eval_fraction, settings.test_fraction)
    sinks = [outputs.open(name, staged.schema) for name in SPLITS]
    # pre_buffer=False: buffering whole row groups ahead makes memory grow with the file.
    for batch in pq.ParquetFile(staged_path, pre_buffer=False).iter_batches(batch_size=_READ_ROWS):
        split_of = assign(batch.column(_SCORE).to_numpy(), cuts)
        rows = batch.drop_columns([_SCORE])
        for index, sink in enumerate(sinks):
            chosen = rows.filter(pa.array(split_of == index))
            if chosen.num_rows:
                sink.write(chosen)
    for name, sink in zip(SPLITS, sinks):
        if sink.rows == 0:
            hint = _empty_split_hint(name, settings)
            raise IngestError(f"split {name!r} is empty ({staged.rows} rows ingested); {hint}")
    return {name: sink.digest.hexdigest() for name, sink in zip(SPLITS, sinks)}


def _empty_split_hint(name: str, settings: Settings) -> str:
    if name == "train":
        hint = "lower eval_fraction/test_fraction or add data"
    else:
        hint = f"raise {name}_fraction or add data"
    if settings.split_by == "time":
        hint += f" (rows with equal {settings.timestamp_column!r} always share a split)"
    return hint


def _metadata(
    files: list[SourceFile], staged: _Stage, outputs: _Outputs, digests: dict[str, str]
) -> dict[str, dict[str, Any]]:
    uris = [file.uri for file in files]
    version = hashlib.sha256("".join(digests[name] for name in SPLITS).encode()).hexdigest()
    common = {"source_uris": uris, "source_format": staged.source_format, "format": "parquet"}
    metadata: dict[str, dict[str, Any]] = {
        name: {
            **common,
            "split": name,
            "rows": outputs.sinks[name].rows,
            "sha256": digests[name],
            "schema_fingerprint": schema_fingerprint(staged.schema),
            "data_version": version,
            "rejected_rows": staged.rejected,
        }
        for name in SPLITS
    }
    metadata["rejects"] = {**common, "rows": staged.rejected}
    counts = ", ".join(f"{name}={metadata[name]['rows']}" for name in SPLITS)
    log.info("ingested %d rows from %d file(s): %s; %d rejected", staged.rows, len(files), counts, staged.rejected)
    return metadata
