"""Column types: parse ``column_types``, infer the rest, and cast each parsed batch to the target schema.

A value that does not convert, or an empty value in a column that must have one (label, id,
timestamp), makes its row a bad row with a reason naming the column; the other rows go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from components.ingest.errors import IngestError
from components.ingest.readers import BadRow, RawBatch

TYPE_NAMES = ("string", "int64", "float64", "bool", "timestamp")
_SIMPLE_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
# The same text pyarrow's CSV reader reads as null ("", "NA", "null", "NaN", ...), for non-string columns.
NULL_TOKENS = pa.array(pa_csv.ConvertOptions().null_values, pa.string())
_NAIVE_TIMESTAMP = pa.timestamp("us")
_UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def check_column_types(column_types: dict[str, str]) -> dict[str, str]:
    """``column_types`` validated: each value one of :data:`TYPE_NAMES`."""
    for name, type_name in column_types.items():
        if type_name not in TYPE_NAMES:
            raise IngestError(f"column_types[{name!r}] = {type_name!r} is not one of: {', '.join(TYPE_NAMES)}")
    return dict(column_types)


def infer_schema(batch: pa.RecordBatch, column_types: dict[str, str], from_text: bool) -> pa.Schema:
    """The output schema: ``column_types`` where given, else the type the batch's values suggest.

    Text (CSV) columns get the first of int64, float64, bool, timestamp that holds all their
    non-empty values, else string; an all-empty column is string.
    """
    fields = []
    for name, column in zip(batch.schema.names, batch.columns):
        values = _non_null_text(column) if from_text else column
        type_name = column_types.get(name)
        if type_name == "timestamp":
            target = _timestamp_type(values)
        elif type_name:
            target = _SIMPLE_TYPES[type_name]
        elif from_text:
            target = _text_type(values)
        else:
            target = pa.string() if pa.types.is_null(column.type) else column.type
        fields.append(pa.field(name, _storable(target)))
    return pa.schema(fields)


def _storable(kind: pa.DataType) -> pa.DataType:
    """The type Parquet reads back: it has no second-unit timestamps nor date64."""
    if pa.types.is_timestamp(kind) and kind.unit == "s":
        return pa.timestamp("ms", tz=kind.tz)
    if pa.types.is_date64(kind):
        return pa.date32()
    return kind


def _non_null_text(column: pa.Array) -> pa.Array:
    """A binary column as text without invalid UTF-8 or null tokens: the values type inference looks at."""
    bad = _unconvertible(column, pa.string(), 0)
    if bad:
        keep = np.ones(len(column), dtype=bool)
        keep[bad] = False
        column = column.filter(pa.array(keep))
    text = pc.cast(column, pa.string())
    return text.filter(pc.invert(pc.is_in(text, value_set=NULL_TOKENS)))


def _castable(values: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _text_type(values: pa.Array) -> pa.DataType:
    if len(values) == 0:
        return pa.string()
    for candidate in (pa.int64(), pa.float64(), pa.bool_(), _NAIVE_TIMESTAMP, _UTC_TIMESTAMP):
        if _castable(values, candidate):
            return candidate
    return pa.string()


def _timestamp_type(values: pa.Array) -> pa.DataType:
    """Timestamps keep their unit and zone; text with zone offsets becomes UTC, other text naive."""
    if pa.types.is_timestamp(values.type):
        return values.type
    if pa.types.is_string(values.type) and len(values) and not _castable(values, _NAIVE_TIMESTAMP):
        if _castable(values, _UTC_TIMESTAMP):
            return _UTC_TIMESTAMP
    return _NAIVE_TIMESTAMP


@dataclass(frozen=True)
class Conformer:
    """Casts parsed batches of one file to ``schema``; ``not_empty`` maps column -> its role (label, id, ...)."""

    schema: pa.Schema
    from_text: bool
    not_empty: dict[str, str]
    label: str

    def conform(self, raw: RawBatch) -> tuple[pa.RecordBatch, list[BadRow]]:
        """The rows that fit the schema, and those that do not (with the parser's bad rows) by line."""
        reasons: dict[int, str] = {}
        columns = [self._column(raw.batch, field, reasons) for field in self.schema]
        for name, role in self.not_empty.items():
            column = columns[self.schema.get_field_index(name)]
            empty = column.is_null()
            if pa.types.is_string(column.type):
                empty = pc.or_(empty, pc.equal(pc.utf8_length(column), 0))
            for index in _positions(empty):
                reasons.setdefault(index, f"{role} column {name!r} is empty")
        bad = raw.bad_rows + [BadRow(int(raw.lines[i]), reason, raw.raw_row(i)) for i, reason in reasons.items()]
        bad.sort(key=lambda row: row.line)
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        if not reasons:
            return batch, bad
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(reasons)] = False
        return batch.filter(pa.array(keep)), bad

    def _column(self, batch: pa.RecordBatch, field: pa.Field, reasons: dict[int, str]) -> pa.Array:
        if field.name not in batch.schema.names:  # a JSON field absent from every line of this block
            return pa.nulls(batch.num_rows, field.type)
        column = batch.column(field.name)
        if self.from_text:
            column = self._cast(column, pa.string(), field.name, reasons)
            if not pa.types.is_string(field.type):
                column = pc.if_else(pc.is_in(column, value_set=NULL_TOKENS), pa.scalar(None, pa.string()), column)
        return self._cast(column, field.type, field.name, reasons)

    def _cast(self, column: pa.Array, target: pa.DataType, name: str, reasons: dict[int, str]) -> pa.Array:
        if column.type == target:
            return column
        try:
            return pc.cast(column, target)
        except pa.ArrowNotImplementedError as err:
            message = f"{self.label}: column {name!r} holds {column.type}, which cannot become {target}"
            raise IngestError(message) from err
        except pa.ArrowInvalid:
            pass
        bad = _unconvertible(column, target, 0)
        for index in bad:
            reasons.setdefault(index, self._reason(name, column[index].as_py(), target))
        mask = np.zeros(len(column), dtype=bool)
        mask[bad] = True
        return pc.cast(pc.if_else(pa.array(mask), pa.scalar(None, column.type), column), target)

    @staticmethod
    def _reason(name: str, value: object, target: pa.DataType) -> str:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return f"column {name!r}: invalid UTF-8 text"
        return f"column {name!r}: {value!r} is not a valid {target}"


def _unconvertible(column: pa.Array, target: pa.DataType, offset: int) -> list[int]:
    """Positions of the values that do not cast, by bisection: cheap when few values are bad."""
    if _castable(column, target):
        return []
    if len(column) == 1:
        return [offset]
    half = len(column) // 2
    head = _unconvertible(column.slice(0, half), target, offset)
    return head + _unconvertible(column.slice(half), target, offset + half)


def _positions(mask: pa.Array) -> Iterable[int]:
    return np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False)).tolist()
