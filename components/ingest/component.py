"""KFP definition of ingest (image `data`); the logic is in ingest.py."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def ingest(
    source: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    test_data: Output[Dataset],
    rejects: Output[Dataset],
    file_format: str = "auto",
    column_types: dict = {},
    label_column: str = "",
    id_column: str = "",
    required_columns: list = [],
    split_by: str = "hash",
    timestamp_column: str = "",
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    on_bad_rows: str = "fail",
):
    """Reads CSV, Parquet or JSON Lines files (a local path or glob, or gs:// objects, prefixes or globs), checks
    and types their columns, and writes train/eval/test Parquet splits (by a stable hash of id_column, a seeded
    draw, or time) plus a rejects table of bad rows (on_bad_rows='skip'), each with rows, sha256 and schema
    fingerprint in its metadata."""
    from components.ingest.ingest import run_ingest

    metadata = run_ingest(
        source,
        train_data.path,
        eval_data.path,
        test_data.path,
        rejects.path,
        file_format=file_format,
        column_types=column_types,
        label_column=label_column,
        id_column=id_column,
        required_columns=required_columns,
        split_by=split_by,
        timestamp_column=timestamp_column,
        eval_fraction=eval_fraction,
        test_fraction=test_fraction,
        seed=seed,
        on_bad_rows=on_bad_rows,
    )
    for name, artifact in (("train", train_data), ("eval", eval_data), ("test", test_data), ("rejects", rejects)):
        artifact.metadata.update(metadata[name])
