"""Ingest of local files: splits, formats, types, bad rows and bad input."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.ingest.errors import IngestError

SPLITS = ("train", "eval", "test")


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return path


def labelled_rows(start: int, stop: int) -> list[str]:
    return [f"{i},text number {i},{i % 3},{i * 0.5}" for i in range(start, stop)]


def split_ids(outputs: dict[str, str]) -> dict[str, set[int]]:
    return {name: set(pq.read_table(outputs[name]).column("id").to_pylist()) for name in SPLITS}


def all_rows(outputs: dict[str, str]) -> list[dict]:
    rows = [row for name in SPLITS for row in pq.read_table(outputs[name]).to_pylist()]
    return sorted(rows, key=lambda row: row["id"])


def produced(outputs: dict[str, str]) -> list[str]:
    folder = os.path.dirname(outputs["train"])
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# --- splits -------------------------------------------------------------------------------------


def test_same_input_gives_same_splits_and_sha256(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "data.csv", "id,text,label,score", labelled_rows(0, 500))
    first = ingest(str(source), label_column="label", id_column="id")
    first_ids = split_ids(outputs)
    second = ingest(str(source), label_column="label", id_column="id")
    assert split_ids(outputs) == first_ids
    for name in SPLITS:
        assert second[name]["sha256"] == first[name]["sha256"]
    assert len({first[name]["sha256"] for name in SPLITS}) == 3
    assert first["train"]["data_version"] == second["test"]["data_version"]


def test_sha256_and_splits_do_not_depend_on_batch_boundaries(tmp_path, ingest, outputs):
    rows = labelled_rows(0, 400) + ['400,"two\nlines",1,0.5', "401,,2,"]  # a multi-line value, nulls
    source = write_csv(tmp_path / "data.csv", "id,text,label,score", rows)
    for split_by in ("hash", "seed"):
        large = ingest(str(source), id_column="id", split_by=split_by)
        large_ids = split_ids(outputs)
        small = ingest(str(source), id_column="id", split_by=split_by, block_size=97)
        assert split_ids(outputs) == large_ids
        assert {n: small[n]["sha256"] for n in SPLITS} == {n: large[n]["sha256"] for n in SPLITS}


def test_sha256_changes_when_a_value_changes(tmp_path, ingest):
    rows = labelled_rows(0, 300)
    before = ingest(str(write_csv(tmp_path / "a" / "data.csv", "id,text,label,score", rows)), id_column="id")
    rows[150] = rows[150].replace("text number", "text Number")
    after = ingest(str(write_csv(tmp_path / "b" / "data.csv", "id,text,label,score", rows)), id_column="id")
    assert sum(before[n]["sha256"] != after[n]["sha256"] for n in SPLITS) == 1
    assert before["train"]["data_version"] != after["train"]["data_version"]
    assert before["train"]["schema_fingerprint"] == after["train"]["schema_fingerprint"]


@pytest.mark.parametrize("id_column", ["id", ""])
def test_appending_rows_keeps_each_existing_row_in_its_split(tmp_path, ingest, outputs, id_column):
    original = labelled_rows(0, 600)
    ingest(str(write_csv(tmp_path / "v1.csv", "id,text,label,score", original)), id_column=id_column)
    before = split_ids(outputs)
    ingest(str(write_csv(tmp_path / "v2.csv", "id,text,label,score", original + labelled_rows(600, 1200))), id_column=id_column)
    after = split_ids(outputs)
    for name in SPLITS:
        assert {i for i in after[name] if i < 600} == before[name]
        assert any(i >= 600 for i in after[name])


@pytest.mark.parametrize("split_by", ["hash", "seed"])
def test_fractions_are_roughly_honoured(tmp_path, ingest, split_by):
    source = write_csv(tmp_path / "data.csv", "id,text,label,score", labelled_rows(0, 3000))
    metadata = ingest(str(source), id_column="id", split_by=split_by, eval_fraction=0.2, test_fraction=0.1)
    counts = {name: metadata[name]["rows"] for name in SPLITS}
    assert sum(counts.values()) == 3000
    assert abs(counts["eval"] - 600) < 90 and abs(counts["test"] - 300) < 70  # > 3.5 standard deviations


def test_seed_split_follows_the_seed(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "data.csv", "id,text,label,score", labelled_rows(0, 300))
    ingest(str(source), split_by="seed", seed=1)
    seed_one = split_ids(outputs)
    ingest(str(source), split_by="seed", seed=1)
    assert split_ids(outputs) == seed_one
    ingest(str(source), split_by="seed", seed=2)
    assert split_ids(outputs) != seed_one


def test_time_split_puts_oldest_in_train_and_newest_in_test(tmp_path, ingest, outputs):
    start = datetime(2024, 1, 1)
    times = [start + timedelta(hours=(i * 37) % 200) for i in range(200)]  # shuffled, 200 distinct hours
    rows = [f"{i},{t.isoformat()},{i % 2}" for i, t in enumerate(times)] + ["200,2024-01-01T05:00:00,1"]  # a tie
    metadata = ingest(str(write_csv(tmp_path / "events.csv", "id,at,label", rows)), split_by="time", timestamp_column="at", label_column="label")
    at = {name: pq.read_table(outputs[name]).column("at").to_pylist() for name in SPLITS}
    assert max(at["train"]) < min(at["eval"]) and max(at["eval"]) < min(at["test"])
    assert [metadata[name]["rows"] for name in SPLITS] == [161, 20, 20]
    tied = [name for name in SPLITS if start + timedelta(hours=5) in at[name]]
    assert tied == ["train"] and at["train"].count(start + timedelta(hours=5)) == 2


def test_time_split_with_equal_timestamps_reports_the_empty_split(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "events.csv", "id,at", [f"{i},2024-01-01" for i in range(50)])
    with pytest.raises(IngestError, match=r"split 'train' is empty .*lower eval_fraction/test_fraction.*equal 'at'"):
        ingest(str(source), split_by="time", timestamp_column="at")
    assert produced(outputs) == []


def test_an_empty_split_names_the_split_and_leaves_no_outputs(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "tiny.csv", "id,text,label,score", labelled_rows(0, 3))
    with pytest.raises(IngestError, match=r"split '(eval|test)' is empty \(3 rows ingested\); raise (eval|test)_fraction or add data"):
        ingest(str(source), id_column="id")
    assert produced(outputs) == []


# --- formats and types --------------------------------------------------------------------------

TYPED_ROWS = [
    {"id": 1, "name": "ann", "age": 31, "height": 1.62, "member": True, "joined": datetime(2024, 1, 1, 8, 30)},
    {"id": 2, "name": "bob", "age": None, "height": 1.8, "member": False, "joined": datetime(2024, 2, 1)},
    {"id": 3, "name": "", "age": 7, "height": None, "member": None, "joined": None},
] + [{"id": i, "name": f"n{i}", "age": i, "height": i / 10, "member": i % 2 == 0, "joined": datetime(2024, 3, 1)} for i in range(4, 60)]
TYPED_SCHEMA = pa.schema(
    [("id", pa.int64()), ("name", pa.string()), ("age", pa.int64()), ("height", pa.float64()), ("member", pa.bool_()), ("joined", pa.timestamp("us"))]
)


def write_typed(path: Path, file_format: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "parquet":
        pq.write_table(pa.Table.from_pylist(TYPED_ROWS, schema=TYPED_SCHEMA), path, row_group_size=16)
    elif file_format == "jsonl":
        path.write_text("".join(json.dumps(row, default=lambda t: t.isoformat()) + "\n" for row in TYPED_ROWS))
    else:

        def text(value):
            return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

        write_csv(path, ",".join(TYPED_SCHEMA.names), [",".join(text(row[n]) for n in TYPED_SCHEMA.names) for row in TYPED_ROWS])
    return path


@pytest.mark.parametrize("file_format", ["csv", "parquet", "jsonl"])
def test_each_format_ingests_the_same_rows(tmp_path, ingest, outputs, file_format):
    source = write_typed(tmp_path / f"people.{file_format}", file_format)
    metadata = ingest(str(source), id_column="id", column_types={"joined": "timestamp"})
    assert all_rows(outputs) == TYPED_ROWS
    schema = pq.read_schema(outputs["train"])
    assert schema.names == TYPED_SCHEMA.names
    assert [schema.field(n).type for n in ("id", "name", "age", "height", "member")] == [
        pa.int64(), pa.string(), pa.int64(), pa.float64(), pa.bool_(),
    ]  # fmt: skip
    assert pa.types.is_timestamp(schema.field("joined").type)
    assert metadata["train"]["source_format"] == file_format and metadata["train"]["format"] == "parquet"
    assert metadata["train"]["split"] == "train" and metadata["train"]["source_uris"] == [str(source)]


def test_explicit_file_format_overrides_the_extension(tmp_path, ingest, outputs):
    source = write_typed(tmp_path / "people.txt", "jsonl")
    ingest(str(source), file_format="jsonl", id_column="id", column_types={"joined": "timestamp"})
    assert all_rows(outputs) == TYPED_ROWS


def test_explicit_column_types_override_inference(tmp_path, ingest, outputs):
    rows = [f"{i},{i:05d},{i},{'yes' if i % 2 else 'no'},2024-01-01T00:00:00+02:00" for i in range(40)]
    source = write_csv(tmp_path / "data.csv", "id,zip,count,answer,at", rows)
    ingest(str(source), id_column="id", column_types={"zip": "string", "count": "float64", "at": "timestamp"})
    schema = pq.read_schema(outputs["train"])
    assert schema.field("zip").type == pa.string() and schema.field("count").type == pa.float64()
    assert schema.field("answer").type == pa.string()
    assert schema.field("at").type == pa.timestamp("us", tz="UTC")
    first = all_rows(outputs)[1]
    assert first["zip"] == "00001" and first["count"] == 1.0
    assert first["at"] == datetime(2023, 12, 31, 22, tzinfo=timezone.utc)


def test_bool_from_column_types_and_numbers_inferred(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "data.csv", "id,flag,n,ratio", [f"{i},{i % 2},{i},{i}.0" for i in range(40)])
    ingest(str(source), id_column="id", column_types={"flag": "bool"})
    schema = pq.read_schema(outputs["train"])
    assert [schema.field(n).type for n in ("flag", "n", "ratio")] == [pa.bool_(), pa.int64(), pa.float64()]
    assert all_rows(outputs)[3] == {"id": 3, "flag": True, "n": 3, "ratio": 3.0}


def test_several_local_files_by_glob(tmp_path, ingest, outputs):
    write_csv(tmp_path / "data" / "part-1.csv", "id,text,label,score", labelled_rows(0, 100))
    write_csv(tmp_path / "data" / "part-2.csv", "label,id,score,text", [f"1,{i},0.5,t{i}" for i in range(100, 200)])
    (tmp_path / "data" / "notes.txt").write_text("not data")
    metadata = ingest(str(tmp_path / "data" / "*.csv"), id_column="id", label_column="label")
    assert [row["id"] for row in all_rows(outputs)] == list(range(200))
    assert metadata["test"]["source_uris"] == [str(tmp_path / "data" / f"part-{i}.csv") for i in (1, 2)]


def test_a_folder_ingests_its_data_files_only(tmp_path, ingest, outputs):
    write_csv(tmp_path / "data" / "part-1.csv", "id,text,label,score", labelled_rows(0, 100))
    (tmp_path / "data" / "_SUCCESS").write_text("")
    metadata = ingest(str(tmp_path / "data"), id_column="id")
    assert metadata["train"]["source_uris"] == [str(tmp_path / "data" / "part-1.csv")]
    assert len(all_rows(outputs)) == 100


# --- bad rows -----------------------------------------------------------------------------------

BAD_CSV = (
    "id,text,label\n"  # line 1
    + "".join(f"{i},ok {i},{i % 2}\n" for i in range(60))  # lines 2-61
    + '60,"spans\ntwo lines",1\n'  # lines 62-63
    + "\n"  # line 64: blank, ignored
    + "61,too,many,fields\n"  # line 65
    + "62,no label,\n"  # line 66
    + "63,bad label,abc\n"  # line 67
).encode() + b"64,\xff\xfe,1\n"  # line 68: invalid UTF-8


def test_skip_policy_sets_bad_rows_aside_with_their_lines(tmp_path, ingest, outputs):
    source = tmp_path / "bad.csv"
    source.write_bytes(BAD_CSV)
    metadata = ingest(str(source), label_column="label", id_column="id", on_bad_rows="skip", block_size=64)
    rejects = pq.read_table(outputs["rejects"])
    assert rejects.schema.names == ["file", "row", "reason", "raw"]
    assert rejects.column("file").to_pylist() == [str(source)] * 4
    assert rejects.column("row").to_pylist() == [65, 66, 67, 68]
    assert rejects.column("reason").to_pylist() == [
        "expected 3 fields, found 4",
        "label column 'label' is empty",
        "column 'label': 'abc' is not a valid int64",
        "column 'text': invalid UTF-8 text",
    ]
    assert rejects.column("raw").to_pylist()[:3] == ["61,too,many,fields", "62,no label,", "63,bad label,abc"]
    assert metadata["rejects"]["rows"] == 4 and metadata["train"]["rejected_rows"] == 4
    assert sum(metadata[name]["rows"] for name in SPLITS) == 61
    assert "spans\ntwo lines" in [row["text"] for row in all_rows(outputs)]


def test_fail_policy_names_file_line_and_reason(tmp_path, ingest, outputs):
    source = tmp_path / "bad.csv"
    source.write_bytes(BAD_CSV)
    with pytest.raises(IngestError, match=rf"^{source} line 65: expected 3 fields, found 4 \(on_bad_rows='skip'"):
        ingest(str(source), label_column="label", block_size=64)
    assert produced(outputs) == []


def test_clean_input_gives_an_empty_rejects_table(tmp_path, ingest, outputs):
    metadata = ingest(str(write_csv(tmp_path / "data.csv", "id,text,label,score", labelled_rows(0, 100))), on_bad_rows="skip")
    assert pq.read_table(outputs["rejects"]).num_rows == 0 and metadata["rejects"]["rows"] == 0


def test_jsonl_bad_lines_are_rejected_by_line(tmp_path, ingest, outputs):
    lines = [json.dumps({"id": i, "label": i % 2, "text": f"t{i}"}) for i in range(50)]
    lines[10] = '{"id": 10, "label": 1, "text": '  # malformed
    lines[20] = '{"id": 20, "label": "x", "text": "t20"}'  # mistyped
    lines[30] = '{"id": 30, "text": "t30"}'  # no label
    source = tmp_path / "rows.jsonl"
    source.write_text("\n".join(lines[:40]) + "\n\n" + "\n".join(lines[40:]) + "\n")
    ingest(str(source), label_column="label", id_column="id", on_bad_rows="skip", block_size=256)
    rejects = pq.read_table(outputs["rejects"]).to_pylist()
    assert [r["row"] for r in rejects] == [11, 21, 31]
    assert rejects[0]["reason"].startswith("invalid JSON line") and rejects[2]["reason"] == "label column 'label' is empty"
    assert rejects[1]["raw"] == lines[20]
    assert sorted(r["id"] for r in all_rows(outputs)) == [i for i in range(50) if i not in (10, 20, 30)]
    with pytest.raises(IngestError, match=rf"^{source} line 11: invalid JSON line"):
        ingest(str(source), label_column="label", block_size=256)


def test_parquet_null_labels_are_rejected_by_row(tmp_path, ingest, outputs):
    source = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": list(range(100)), "label": [None if i == 7 else i % 2 for i in range(100)]}), source)
    ingest(str(source), label_column="label", on_bad_rows="skip")
    assert pq.read_table(outputs["rejects"]).to_pylist() == [
        {"file": str(source), "row": 8, "reason": "label column 'label' is empty", "raw": '{"id": 7, "label": null}'}
    ]
    with pytest.raises(IngestError, match=rf"^{source} row 8: label column 'label' is empty"):
        ingest(str(source), label_column="label")


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(tmp_path, ingest, outputs):
    with pytest.raises(IngestError, match=rf"^file not found: {tmp_path}/nope.csv$"):
        ingest(str(tmp_path / "nope.csv"))
    assert produced(outputs) == []


def test_glob_that_matches_nothing(tmp_path, ingest):
    with pytest.raises(IngestError, match=rf"^no file matches {tmp_path}/\*\.csv$"):
        ingest(str(tmp_path / "*.csv"))


def test_empty_file(tmp_path, ingest):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match=r"empty\.csv: empty file \(no header row\)"):
        ingest(str(tmp_path / "empty.csv"))


def test_header_only_is_an_empty_data_set(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "header.csv", "id,text,label", [])
    with pytest.raises(IngestError, match=rf"^no rows to ingest from {source}$"):
        ingest(str(source))
    assert produced(outputs) == []


def test_all_rows_rejected_is_an_empty_data_set(tmp_path, ingest, outputs):
    source = write_csv(tmp_path / "data.csv", "id,label", ["1,", "2,"])
    with pytest.raises(IngestError, match=r"no rows to ingest from .* \(2 rows rejected\)"):
        ingest(str(source), label_column="label", on_bad_rows="skip")
    assert produced(outputs) == []


def test_absent_label_column_names_column_file_and_columns(tmp_path, ingest):
    source = write_csv(tmp_path / "data.csv", "id,text,score", ["1,a,0.5"])
    with pytest.raises(IngestError, match=rf"^{source}: label column 'label' not found; the file has columns: id, text, score$"):
        ingest(str(source), label_column="label")


def test_absent_required_column(tmp_path, ingest):
    source = write_csv(tmp_path / "data.csv", "id,text", ["1,a"])
    with pytest.raises(IngestError, match=r"required column 'user' not found; the file has columns: id, text"):
        ingest(str(source), required_columns=["text", "user"])


def test_files_with_different_columns(tmp_path, ingest):
    write_csv(tmp_path / "a.csv", "id,text,label,score", labelled_rows(0, 10))
    write_csv(tmp_path / "b.csv", "id,text,label,extra", ["1,a,1,x"])
    with pytest.raises(IngestError, match=r"b\.csv: columns differ from .*a\.csv: missing \['score'\], unexpected \['extra'\]"):
        ingest(str(tmp_path / "*.csv"))


def test_duplicate_column(tmp_path, ingest):
    source = write_csv(tmp_path / "data.csv", "id,text,text", ["1,a,b"])
    with pytest.raises(IngestError, match=r"data\.csv: column 'text' appears more than once"):
        ingest(str(source))


def test_column_types_errors(tmp_path, ingest):
    source = write_csv(tmp_path / "data.csv", "id,text", ["1,a"])
    with pytest.raises(IngestError, match=r"column_types\['id'\] = 'integer' is not one of: string, int64, float64, bool, timestamp"):
        ingest(str(source), column_types={"id": "integer"})
    with pytest.raises(IngestError, match=r"column_types names 'txt', which .*data\.csv does not have; columns: id, text"):
        ingest(str(source), column_types={"txt": "string"})


def test_unreadable_parquet(tmp_path, ingest):
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(IngestError, match=r"broken\.parquet: not a readable Parquet file"):
        ingest(str(tmp_path / "broken.parquet"))


def test_mistyped_parquet_column(tmp_path, ingest):
    source = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [1, 2], "tags": [["a"], ["b"]]}), source)
    with pytest.raises(IngestError, match=r"rows\.parquet: column 'tags' holds list<element: string>, which cannot become int64"):
        ingest(str(source), column_types={"tags": "int64"})


def test_unknown_extension_and_mixed_formats(tmp_path, ingest):
    (tmp_path / "data.txt").write_text("id\n1\n")
    with pytest.raises(IngestError, match=r"data\.txt: cannot tell the format from the extension; set file_format"):
        ingest(str(tmp_path / "data.txt"))
    write_csv(tmp_path / "mixed" / "a.csv", "id", ["1"])
    (tmp_path / "mixed" / "b.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(IngestError, match=r"mixes formats \(csv, jsonl\)"):
        ingest(str(tmp_path / "mixed"))


def test_time_split_needs_a_time_column(tmp_path, ingest):
    source = write_csv(tmp_path / "data.csv", "id,at", ["1,monday", "2,tuesday"])
    with pytest.raises(IngestError, match=r"^split_by='time' needs timestamp_column$"):
        ingest(str(source), split_by="time")
    with pytest.raises(IngestError, match=r"timestamp_column 'at' holds string, not times; set column_types=\{'at': 'timestamp'\}"):
        ingest(str(source), split_by="time", timestamp_column="at")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eval_fraction": 0.6, "test_fraction": 0.5}, r"eval_fraction \(0\.6\) and test_fraction \(0\.5\) must each be above 0"),
        ({"test_fraction": 0}, r"test_fraction \(0\.0\) must each be above 0"),
        ({"split_by": "random"}, r"split_by 'random' is not one of: hash, seed, time"),
        ({"on_bad_rows": "ignore"}, r"on_bad_rows 'ignore' is not one of: fail, skip"),
        ({"file_format": "xlsx"}, r"file_format 'xlsx' is not one of: auto, csv, parquet, jsonl"),
        ({"required_columns": "id,label"}, r"required_columns must be a list of column names, not the string 'id,label'"),
    ],
)
def test_bad_options(tmp_path, ingest, options, message):
    source = write_csv(tmp_path / "data.csv", "id", ["1"])
    with pytest.raises(IngestError, match=message):
        ingest(str(source), **options)
