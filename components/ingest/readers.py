"""Streaming readers for CSV, Parquet and JSON Lines files.

Each reader yields :class:`RawBatch` es: a record batch as parsed, the 1-based line (CSV, JSONL) or
row (Parquet) of each of its rows in the file, and the rows the parser itself rejected. Types are
settled later (see ``conform.py``): CSV columns arrive as binary so that no value is lost before it is
checked, JSON and Parquet columns as parsed.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from components.ingest.errors import IngestError

PARQUET_BATCH_ROWS = 65_536
JSON_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be ingested: where it is, why, and its text."""

    line: int
    reason: str
    raw: str


@dataclass
class RawBatch:
    """Rows as parsed, with their line numbers; ``bad_rows`` are rejected rows found among them."""

    batch: pa.RecordBatch
    lines: np.ndarray
    raw_row: Callable[[int], str]
    bad_rows: list[BadRow] = field(default_factory=list)


class FileReader(Protocol):
    """What every reader offers: the file's columns, its batches, and how its rows are numbered."""

    columns: list[str]
    position: str  # "line" or "row": what a bad row's number counts
    from_text: bool  # whether columns arrive as text whose types are to be inferred

    def batches(self) -> Iterator[RawBatch]: ...

    def close(self) -> None: ...


class CsvReader:
    """A CSV file with a header row, parsed block by block; every column is read as binary."""

    position = "line"
    from_text = True

    def __init__(self, path: str, label: str, block_size: int, column_types: dict[str, str]) -> None:
        self._label = label
        self.columns = _csv_header(path, label, block_size)
        self._invalid: deque[tuple[int, str, int]] = deque()
        try:
            self._reader = pa_csv.open_csv(
                path,
                read_options=pa_csv.ReadOptions(
                    use_threads=False,  # serial parsing is what makes pyarrow report row numbers
                    block_size=block_size,
                    column_names=self.columns,
                    skip_rows=1,
                ),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=self._on_invalid
                ),
                convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(self.columns, pa.binary())),
            )
        except pa.ArrowInvalid as err:
            raise IngestError(f"{label}: cannot read as CSV: {err}") from err

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        self._invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    def batches(self) -> Iterator[RawBatch]:
        next_record = 2  # pyarrow numbers records from 1 (the header), blank lines included
        extra_lines = 0  # line breaks inside quoted values so far: physical line = record + these
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as err:
                raise IngestError(f"{self._label}: cannot read as CSV: {err}") from err
            invalid: list[tuple[int, str, int]] = []
            while self._invalid and self._invalid[0][0] < next_record + batch.num_rows + len(invalid):
                invalid.append(self._invalid.popleft())
            records = np.arange(next_record, next_record + batch.num_rows + len(invalid))
            is_invalid = np.isin(records, [number for number, _, _ in invalid])
            breaks = np.zeros(len(records), dtype=np.int64)
            breaks[~is_invalid] = _line_breaks(batch)
            breaks[is_invalid] = [text.count("\n") for _, text, _ in invalid]
            lines = records + extra_lines + np.cumsum(breaks) - breaks
            extra_lines += int(breaks.sum())
            next_record += len(records)
            bad = [
                BadRow(int(line), self._field_count(found), text)
                for line, (_, text, found) in zip(lines[is_invalid], invalid)
            ]
            yield self._drop_blank(RawBatch(batch, lines[~is_invalid], _csv_row_text(batch), bad))
        bad = []
        for number, text, found in self._invalid:
            bad.append(BadRow(number + extra_lines, self._field_count(found), text))
            extra_lines += text.count("\n")
        if bad:
            empty = pa.RecordBatch.from_pylist([], schema=self._reader.schema)
            yield RawBatch(empty, np.zeros(0, dtype=np.int64), _csv_row_text(empty), bad)

    def _field_count(self, found: int) -> str:
        return f"expected {len(self.columns)} fields, found {found}"

    @staticmethod
    def _drop_blank(raw: RawBatch) -> RawBatch:
        """Blank lines parse as rows of empty fields; they carry no data."""
        lengths = [pc.binary_length(column) for column in raw.batch.columns]
        blank = pc.equal(lengths[0], 0)
        for length in lengths[1:]:
            blank = pc.and_(blank, pc.equal(length, 0))
        if not pc.any(blank).as_py():
            return raw
        keep = pc.invert(blank)
        batch = raw.batch.filter(keep)
        return RawBatch(batch, raw.lines[keep.to_numpy(zero_copy_only=False)], _csv_row_text(batch), raw.bad_rows)

    def close(self) -> None:
        self._reader.close()


def _csv_header(path: str, label: str, block_size: int) -> list[str]:
    with open(path, "rb") as stream:
        first_line = stream.readline(block_size)
    if not first_line.strip():
        raise IngestError(f"{label}: empty file (no header row)")
    if not first_line.endswith(b"\n") and len(first_line) == block_size:
        raise IngestError(f"{label}: header row is longer than {block_size} bytes")
    try:
        text = first_line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise IngestError(f"{label}: header row is not UTF-8 text") from err
    return next(csv.reader([text]))


def _line_breaks(batch: pa.RecordBatch) -> np.ndarray:
    """How many line breaks each row's quoted values hold."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        total += pc.count_substring(column, "\n").fill_null(0).to_numpy(zero_copy_only=False)
    return total


def _csv_row_text(batch: pa.RecordBatch) -> Callable[[int], str]:
    def row_text(index: int) -> str:
        values = [(v or b"").decode("utf-8", "replace") for v in batch.slice(index, 1).to_pylist()[0].values()]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(values)
        return out.getvalue()

    return row_text


class ParquetReader:
    """A Parquet file, read in batches of rows."""

    position = "row"
    from_text = False

    def __init__(self, path: str, label: str, block_size: int, column_types: dict[str, str]) -> None:
        self._label = label
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise IngestError(f"{label}: not a readable Parquet file: {err}") from err
        self.columns = self._file.schema_arrow.names

    def batches(self) -> Iterator[RawBatch]:
        start = 1
        try:
            for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield RawBatch(batch, np.arange(start, start + batch.num_rows), _json_row_text(batch))
                start += batch.num_rows
        except (pa.ArrowInvalid, OSError) as err:
            raise IngestError(f"{self._label}: cannot read Parquet data near row {start}: {err}") from err

    def close(self) -> None:
        self._file.close()


def _json_row_text(batch: pa.RecordBatch) -> Callable[[int], str]:
    return lambda index: json.dumps(batch.slice(index, 1).to_pylist()[0], default=str)


class JsonlReader:
    """A JSON Lines file: one object per line, parsed a block of lines at a time.

    The first block's field types (with ``column_types`` applied) fix the types for the rest of
    the file; a line that does not fit them is a bad row.
    """

    position = "line"
    from_text = False

    def __init__(self, path: str, label: str, block_size: int, column_types: dict[str, str]) -> None:
        self._label = label
        self._block_size = block_size
        self._stream = open(path, "rb")
        self._chunks = self._line_chunks()
        explicit = pa.schema([(n, JSON_TYPES[t]) for n, t in column_types.items() if t in JSON_TYPES])
        first_chunk = next(self._chunks, None)
        self._first = self._parse(*first_chunk, explicit) if first_chunk else None
        first = self._first.batch if self._first else pa.RecordBatch.from_pylist([])
        # A field typed by column_types is in every parsed block; it is in the file only if it holds a value.
        self.columns = [
            f.name
            for f in first.schema
            if f.name not in explicit.names or first.column(f.name).null_count < first.num_rows
        ]
        self._schema = pa.schema([f for f in first.schema if not pa.types.is_null(f.type)])

    def _line_chunks(self) -> Iterator[tuple[list[bytes], np.ndarray]]:
        """Non-blank lines, about ``block_size`` bytes at a time, with their 1-based line numbers."""
        carry, next_line = b"", 1
        while True:
            data = self._stream.read(self._block_size)
            if data:
                data = carry + data
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                body, carry = data[:cut], data[cut + 1 :]
            elif carry:
                body, carry = carry, b""
            else:
                return
            lines = body.split(b"\n")
            kept = [index for index, line in enumerate(lines) if line.strip()]
            if kept:
                yield [lines[i] for i in kept], next_line + np.array(kept, dtype=np.int64)
            next_line += len(lines)

    def _parse(self, lines: list[bytes], numbers: np.ndarray, schema: pa.Schema) -> RawBatch:
        try:
            return RawBatch(_read_json_lines(lines, schema), numbers, _line_text(lines))
        except pa.ArrowInvalid:
            pass
        # Some line is malformed or mistyped: find which, one line at a time.
        good, bad = [], []
        for index, line in enumerate(lines):
            try:
                _read_json_lines([line], schema)
                good.append(index)
            except pa.ArrowInvalid as err:
                reason = f"invalid JSON line: {_arrow_reason(err)}"
                bad.append(BadRow(int(numbers[index]), reason, lines[index].decode("utf-8", "replace")))
        good_lines = [lines[i] for i in good]
        try:
            table = _read_json_lines(good_lines, schema)
        except pa.ArrowInvalid as err:
            raise IngestError(
                f"{self._label} lines {numbers[0]}-{numbers[-1]}: field types differ between lines "
                f"({_arrow_reason(err)}); set column_types"
            ) from err
        return RawBatch(table, numbers[good], _line_text(good_lines), bad)

    def batches(self) -> Iterator[RawBatch]:
        if self._first:
            yield self._first
        for lines, numbers in self._chunks:
            yield self._parse(lines, numbers, self._schema)

    def close(self) -> None:
        self._stream.close()


def _line_text(lines: list[bytes]) -> Callable[[int], str]:
    return lambda index: lines[index].decode("utf-8", "replace")


def _read_json_lines(lines: list[bytes], schema: pa.Schema) -> pa.RecordBatch:
    if not lines:
        return pa.RecordBatch.from_pylist([], schema=schema)
    data = b"\n".join(lines)
    table = pa_json.read_json(
        pa.BufferReader(data),
        read_options=pa_json.ReadOptions(block_size=len(data) + 1),
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )
    if table.num_rows != len(lines):
        raise pa.ArrowInvalid(f"expected {len(lines)} objects, parsed {table.num_rows}")
    if table.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return table.combine_chunks().to_batches()[0]


def _arrow_reason(err: Exception) -> str:
    return str(err).removeprefix("JSON parse error: ").split("\n")[0]


READERS: dict[str, Callable[[str, str, int, dict[str, str]], FileReader]] = {
    "csv": CsvReader,
    "parquet": ParquetReader,
    "jsonl": JsonlReader,
}
