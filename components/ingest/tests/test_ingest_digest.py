"""Content digests: the same rows give the same digest however they are batched."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from components.ingest.digest import ContentDigest, schema_fingerprint

TABLE = pa.table(
    {
        "id": pa.array([1, 2, None, 4, 5], pa.int64()),
        "text": pa.array(["a", "", None, "long value", "é"], pa.string()),
        "flag": pa.array([True, None, False, True, False]),
        "at": pa.array([datetime(2024, 1, d) for d in (1, 2, 3, 4, 5)], pa.timestamp("us")),
        "tags": pa.array([["x"], [], None, ["y", "z"], ["x"]], pa.list_(pa.string())),
    }
)


def digest_of(batches: list[pa.RecordBatch]) -> str:
    digest = ContentDigest(TABLE.schema)
    for batch in batches:
        digest.update(batch)
    return digest.hexdigest()


def test_batching_and_slicing_do_not_change_the_digest():
    whole = TABLE.combine_chunks().to_batches()[0]
    assert digest_of([whole]) == digest_of([whole.slice(i, 1) for i in range(whole.num_rows)])
    assert digest_of([whole]) == digest_of([whole.slice(0, 2), whole.slice(2, 0), whole.slice(2)])


def test_values_nulls_and_boundaries_between_values_count():
    whole = TABLE.combine_chunks().to_batches()[0]
    reference = digest_of([whole])
    moved_text = whole.set_column(1, "text", pa.array(["a", "", None, "long valu", "eé"]))
    null_not_empty = whole.set_column(1, "text", pa.array(["a", None, None, "long value", "é"]))
    assert len({reference, digest_of([moved_text]), digest_of([null_not_empty]), digest_of([whole.slice(0, 4)])}) == 4


def test_schema_fingerprint_follows_names_and_types():
    assert schema_fingerprint(TABLE.schema) == schema_fingerprint(pa.schema(list(TABLE.schema)))
    assert schema_fingerprint(TABLE.schema) != schema_fingerprint(TABLE.schema.set(0, pa.field("id", pa.int32())))
