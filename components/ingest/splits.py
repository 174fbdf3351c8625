"""Assign rows to train/eval/test: every row gets a score, and two cut points split the scores.

- ``hash``: the score is a sha256 of ``seed`` and the row's id (or, without an id column, its
  values) mapped to [0, 1), so a row lands in the same split on every run and whatever is appended.
- ``seed``: the score is a seeded uniform draw, in row order.
- ``time``: the score is the row's timestamp; the oldest rows train, the newest test, and rows
  with equal timestamps always share a split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest.errors import IngestError

SPLITS = ("train", "eval", "test")
SPLIT_METHODS = ("hash", "seed", "time")
_ROW_KEY_SEPARATOR = "\x1f"


class SplitScorer:
    """Per-row split scores for one ingest run."""

    def __init__(self, split_by: str, id_column: str, timestamp_column: str, seed: int) -> None:
        self._split_by = split_by
        self._id_column = id_column
        self._timestamp_column = timestamp_column
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def check(self, schema: pa.Schema) -> None:
        """Fail early when the schema cannot be scored (a time column that is not a time or number)."""
        if self._split_by == "time":
            kind = schema.field(self._timestamp_column).type
            kinds = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_integer, pa.types.is_floating)
            if not any(is_kind(kind) for is_kind in kinds):
                raise IngestError(
                    f"timestamp_column {self._timestamp_column!r} holds {kind}, not times; "
                    f"set column_types={{{self._timestamp_column!r}: 'timestamp'}}"
                )

    def scores(self, batch: pa.RecordBatch) -> np.ndarray:
        if self._split_by == "seed":
            return self._rng.random(batch.num_rows)
        if self._split_by == "time":
            return _time_values(batch.column(self._timestamp_column))
        keys = pc.cast(batch.column(self._id_column), pa.string()) if self._id_column else _row_keys(batch)
        return hash_units(keys.to_pylist(), self._seed)


def hash_units(keys: list[str], seed: int) -> np.ndarray:
    """Each key's sha256 (salted with ``seed``) as a number in [0, 1)."""
    digests = b"".join(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8] for key in keys)
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64


def _row_keys(batch: pa.RecordBatch) -> pa.Array:
    texts = []
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            texts.append(pc.cast(column, pa.string()))
        except pa.ArrowNotImplementedError as err:
            raise IngestError(
                f"split_by='hash' without id_column hashes whole rows, "
                f"but column {name!r} holds {column.type}; set id_column"
            ) from err
    return pc.binary_join_element_wise(*texts, _ROW_KEY_SEPARATOR, null_handling="replace", null_replacement="\x00")


def _time_values(column: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.int64())
    elif pa.types.is_date(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("s")), pa.int64())
    # Scores are float64: nanosecond times lose sub-microsecond order, which splits do not need.
    return pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def fraction_cuts(eval_fraction: float, test_fraction: float) -> np.ndarray:
    """The scores where eval and test begin, for uniform scores (hash, seed)."""
    return np.array([1.0 - eval_fraction - test_fraction, 1.0 - test_fraction])


def time_cuts(times: np.ndarray, eval_fraction: float, test_fraction: float) -> np.ndarray:
    """The times where eval and test begin: the quantiles of all rows' times."""
    ordered = np.sort(times)
    starts = (1.0 - eval_fraction - test_fraction, 1.0 - test_fraction)
    positions = [round(len(ordered) * start) for start in starts]
    return np.array([ordered[p] if p < len(ordered) else np.inf for p in positions])


def assign(scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """0 (train), 1 (eval) or 2 (test) for each score."""
    return np.searchsorted(cuts, scores, side="right")
