"""Ingest from GCS, against a real GCS server (gcp-storage-emulator, started by conftest.py)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.ingest.errors import IngestError

SPLITS = ("train", "eval", "test")
LARGE_OBJECT_BYTES = 50 * 1024 * 1024


def csv_text(start: int, stop: int) -> str:
    return "id,text,label\n" + "".join(f"{i},row {i},{i % 2}\n" for i in range(start, stop))


def ingested_ids(outputs: dict[str, str]) -> list[int]:
    return sorted(i for name in SPLITS for i in pq.read_table(outputs[name]).column("id").to_pylist())


def test_glob_reads_every_matching_object(gcs_bucket, ingest, outputs):
    for part, (start, stop) in enumerate([(0, 100), (100, 250), (250, 300)]):
        gcs_bucket.blob(f"data/part-{part}.csv").upload_from_string(csv_text(start, stop))
    gcs_bucket.blob("data/notes.txt").upload_from_string("not data")
    gcs_bucket.blob("data/nested/part-9.csv").upload_from_string(csv_text(900, 910))  # '*' stops at '/'
    metadata = ingest(f"gs://{gcs_bucket.name}/data/*.csv", label_column="label", id_column="id")
    assert ingested_ids(outputs) == list(range(300))
    assert metadata["train"]["source_uris"] == [f"gs://{gcs_bucket.name}/data/part-{p}.csv" for p in range(3)]


def test_prefix_reads_the_data_objects_under_it(gcs_bucket, ingest, outputs):
    gcs_bucket.blob("exports/2024/a.csv").upload_from_string(csv_text(0, 60))
    gcs_bucket.blob("exports/2024/b.csv").upload_from_string(csv_text(60, 120))
    gcs_bucket.blob("exports/2024/_SUCCESS").upload_from_string("")
    gcs_bucket.blob("exports/2024-old/c.csv").upload_from_string(csv_text(500, 510))
    ingest(f"gs://{gcs_bucket.name}/exports/2024", id_column="id")
    assert ingested_ids(outputs) == list(range(120))


def test_single_object_matches_a_local_copy(gcs_bucket, ingest, outputs, tmp_path):
    gcs_bucket.blob("one.csv").upload_from_string(csv_text(0, 200))
    remote = ingest(f"gs://{gcs_bucket.name}/one.csv", id_column="id")
    (tmp_path / "one.csv").write_text(csv_text(0, 200))
    local = ingest(str(tmp_path / "one.csv"), id_column="id")
    assert [remote[n]["sha256"] for n in SPLITS] == [local[n]["sha256"] for n in SPLITS]


def test_a_50mb_object_streams_with_bounded_memory(gcs_bucket, ingest, outputs, tmp_path):
    source = tmp_path / "large.csv"
    filler = "x" * 180
    rows = 0
    with open(source, "w") as out:
        out.write("id,text,label\n")
        while out.tell() < LARGE_OBJECT_BYTES:
            out.write("".join(f"{i},{filler} {i},{i % 2}\n" for i in range(rows, rows + 10_000)))
            rows += 10_000
    gcs_bucket.blob("large.csv").upload_from_filename(str(source))
    os.remove(source)
    pool = pa.default_memory_pool()
    peak_before = pool.max_memory()
    metadata = ingest(f"gs://{gcs_bucket.name}/large.csv", label_column="label", id_column="id", block_size=256 << 10)
    assert sum(metadata[n]["rows"] for n in SPLITS) == rows
    assert pq.read_metadata(outputs["train"]).num_rows == metadata["train"]["rows"]
    # Arrow's peak allocation stays well under the object's size (about 32 blocks read ahead + row groups).
    assert pool.max_memory() - peak_before < LARGE_OBJECT_BYTES // 2


def test_transient_errors_are_retried(gcs_bucket, flaky_gcs, ingest, outputs):
    gcs_bucket.blob("data/part-0.csv").upload_from_string(csv_text(0, 100))
    proxy = flaky_gcs([("GET", f"/storage/v1/b/{gcs_bucket.name}/o?"), ("GET", f"/download/storage/v1/b/{gcs_bucket.name}/o/")])
    ingest(f"gs://{gcs_bucket.name}/data/*.csv", id_column="id")
    assert ingested_ids(outputs) == list(range(100))
    assert [request.split("?")[0] for request in proxy.failed] == [
        f"GET /storage/v1/b/{gcs_bucket.name}/o",
        f"GET /download/storage/v1/b/{gcs_bucket.name}/o/data%2Fpart-0.csv",
    ]


def test_missing_bucket(gcs_emulator, monkeypatch, ingest, outputs):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{gcs_emulator}")
    with pytest.raises(IngestError, match=r"^bucket 'no-such-bucket' does not exist \(source gs://no-such-bucket/data/\*\.csv\)$"):
        ingest("gs://no-such-bucket/data/*.csv")
    with pytest.raises(IngestError, match=r"^bucket 'no-such-bucket' does not exist"):
        ingest("gs://no-such-bucket/data.csv")
    assert not os.path.exists(os.path.dirname(outputs["train"]))


def test_missing_object(gcs_bucket, ingest):
    gcs_bucket.blob("data/present.csv").upload_from_string(csv_text(0, 10))
    with pytest.raises(IngestError, match=rf"^no object gs://{gcs_bucket.name}/data/absent\.csv \(and no objects under it\)"):
        ingest(f"gs://{gcs_bucket.name}/data/absent.csv")
    with pytest.raises(IngestError, match=rf"^no object matches gs://{gcs_bucket.name}/data/\*\.parquet$"):
        ingest(f"gs://{gcs_bucket.name}/data/*.parquet")


def test_object_deleted_after_listing(gcs_bucket):
    from components.ingest.sources import local_copy, resolve_sources

    gcs_bucket.blob("gone.csv").upload_from_string(csv_text(0, 10))
    [listed] = resolve_sources(f"gs://{gcs_bucket.name}/gone.csv")
    gcs_bucket.blob("gone.csv").delete()
    with pytest.raises(IngestError, match=rf"^object gs://{gcs_bucket.name}/gone\.csv does not exist$"):
        with local_copy(listed):
            pass
