"""Content hashes of tabular data that do not depend on how the rows were batched.

Every column is hashed as three byte streams (validity, value lengths, value bytes) whose encoding
of a batch is the concatenation of the encodings of its parts, so feeding the rows in batches of
any size gives the same digest.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_VARIABLE_WIDTH = (pa.types.is_string, pa.types.is_binary, pa.types.is_large_string, pa.types.is_large_binary)
_FIXED_WIDTH = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_timestamp,
    pa.types.is_date,
    pa.types.is_time,
    pa.types.is_duration,
)
_LARGE_OFFSETS = (pa.types.is_large_string, pa.types.is_large_binary)


def schema_fingerprint(schema: pa.Schema) -> str:
    """sha256 of the column names and types, in order."""
    described = [[field.name, str(field.type)] for field in schema]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


class ContentDigest:
    """A running sha256 of the rows of one table with a fixed schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._rows = 0
        self._streams = [[hashlib.sha256() for _ in range(3)] for _ in schema]

    def update(self, batch: pa.RecordBatch) -> None:
        self._rows += batch.num_rows
        for column, (validity, lengths, values) in zip(batch.columns, self._streams):
            validity.update(column.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
            row_lengths, data = _encode(column)
            lengths.update(row_lengths.astype("<i8").tobytes())
            values.update(data)

    def hexdigest(self) -> str:
        whole = hashlib.sha256(f"{schema_fingerprint(self._schema)}:{self._rows}".encode())
        for streams in self._streams:
            for stream in streams:
                whole.update(stream.digest())
        return whole.hexdigest()


def _encode(column: pa.Array) -> tuple[np.ndarray, bytes]:
    """(bytes per row, the rows' bytes) of a column; nulls encode as zeros or empty values."""
    kind = column.type
    if pa.types.is_boolean(kind):
        values = column.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return np.ones(len(column), dtype=np.int64), values.tobytes()
    if any(is_kind(kind) for is_kind in _FIXED_WIDTH):
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):  # a time: its integer count of units
            column = pc.cast(column, pa.int64() if kind.bit_width == 64 else pa.int32())
        values = column.fill_null(0).to_numpy(zero_copy_only=False)
        little_endian = values.astype(values.dtype.newbyteorder("<"))
        return np.full(len(column), values.itemsize, dtype=np.int64), little_endian.tobytes()
    if _is_variable_width(kind):
        return _variable_width(column.fill_null(pa.scalar("", column.type)))
    encoded = [json.dumps(value, sort_keys=True, default=str).encode() for value in column.to_pylist()]
    return np.array([len(e) for e in encoded], dtype=np.int64), b"".join(encoded)


def _is_variable_width(kind: pa.DataType) -> bool:
    return any(is_kind(kind) for is_kind in _VARIABLE_WIDTH)


def _variable_width(column: pa.Array) -> tuple[np.ndarray, bytes]:
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64), b""
    _, offsets_buffer, data_buffer = column.buffers()
    offset_type = np.int64 if any(is_kind(column.type) for is_kind in _LARGE_OFFSETS) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[column.offset : column.offset + len(column) + 1]
    if data_buffer is None:
        return np.diff(offsets).astype(np.int64), b""
    return np.diff(offsets).astype(np.int64), memoryview(data_buffer)[offsets[0] : offsets[-1]].tobytes()
