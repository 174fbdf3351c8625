"""Data validation with TensorFlow Data Validation (TFDV), in memory.

Statistics come from ``tfdv.generate_statistics_from_dataframe`` (no Beam pipeline), so both splits
must fit in memory; see README.md for when to switch to TFDV's Beam entry points. The eval split is
validated against a schema that is either a committed ``schema.pbtxt`` or inferred from the train
split, with optional skew and drift comparators measuring eval against train.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.utils.schema_util import is_categorical_feature
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.validate.report import anomaly_rows, render_html, render_markdown

log = logging.getLogger(__name__)

# The project root inside the image (site-packages) or the checkout: committed schemas such as
# components/validate/schemas/text.pbtxt are found from here when schema_file is relative.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Arrow integer and bool columns become pandas nullable dtypes: with NumPy dtypes a null would turn
# an int column into float (a false type change) and a bool column into object.
_NULLABLE_DTYPES = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
# NumPy dtype kinds that generate_statistics_from_dataframe computes statistics for; it silently
# drops the others (timestamps "M", durations "m", complex "c"), so we name them in the report.
_TFDV_DTYPE_KINDS = frozenset("iufbOSU")


class ValidationInputError(ValueError):
    """A dataset or schema file is missing, empty or unreadable; the message names the file."""


class ValidationFailed(RuntimeError):
    """The eval data has anomalies and fail_on_anomalies is set; the outputs are already written."""

    def __init__(self, message: str, result: ValidationResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ValidationResult:
    """Everything one validation run computed; the outputs are rendered from it."""

    train_statistics: statistics_pb2.DatasetFeatureStatisticsList
    eval_statistics: statistics_pb2.DatasetFeatureStatisticsList
    schema: schema_pb2.Schema
    anomalies: anomalies_pb2.Anomalies
    schema_source: str
    skipped_columns: dict[str, list[str]]

    @property
    def train_rows(self) -> int:
        return self.train_statistics.datasets[0].num_examples

    @property
    def eval_rows(self) -> int:
        return self.eval_statistics.datasets[0].num_examples

    @property
    def anomalous_features(self) -> list[str]:
        return sorted({row.feature for row in anomaly_rows(self.anomalies)})

    def metrics(self) -> dict[str, int]:
        return {
            "features": len(self.schema.feature),
            "anomalies": len(self.anomalous_features),
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
        }

    def failure_message(self) -> str:
        lines = [
            f"data validation found {len(self.anomalous_features)} anomalous feature(s) in the eval "
            f"data (schema: {self.schema_source}):"
        ]
        lines += [
            f"  - {row.feature} [{row.severity}] {row.short_description}: {row.description}"
            for row in anomaly_rows(self.anomalies)
        ]
        return "\n".join(lines)


def read_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A Parquet file (or a folder of Parquet files) as a DataFrame in the dtypes TFDV expects."""
    path = Path(path)
    if not path.exists():
        raise ValidationInputError(f"dataset file {path} does not exist")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ValidationInputError(f"dataset file {path} is not a readable Parquet file: {err}") from err
    if table.num_columns == 0 or table.num_rows == 0:
        raise ValidationInputError(
            f"dataset file {path} is empty ({table.num_rows} rows, {table.num_columns} columns)"
        )
    # Dictionary (pandas categorical) columns are decoded: TFDV cannot read categoricals.
    decoded = pa.schema(
        [
            field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field
            for field in table.schema
        ],
        metadata=table.schema.metadata,
    )
    frame = table.cast(decoded).to_pandas(types_mapper=_NULLABLE_DTYPES.get)
    # A stored pandas index is not a column of the data; TFDV would otherwise see it as one.
    return frame.reset_index(drop=True)


def unsupported_columns(frame: pd.DataFrame) -> list[str]:
    """Columns whose dtype TFDV's in-memory statistics skip."""
    return [str(name) for name, dtype in frame.dtypes.items() if dtype.kind not in _TFDV_DTYPE_KINDS]


def compute_statistics(
    path: str | os.PathLike[str], schema: schema_pb2.Schema | None = None
) -> tuple[statistics_pb2.DatasetFeatureStatisticsList, list[str]]:
    """TFDV statistics of one Parquet dataset, and the columns left out of them.

    A schema, when given, tells TFDV how to compute statistics (e.g. categorical statistics for an
    int feature whose int_domain is_categorical).
    """
    frame = read_dataset(path)
    skipped = unsupported_columns(frame)
    if skipped:
        log.warning("%s: columns %s have types TFDV cannot compute statistics for", path, skipped)
    options = tfdv.StatsOptions(schema=schema) if schema is not None else tfdv.StatsOptions()
    try:
        statistics = tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise ValidationInputError(f"cannot compute statistics of dataset file {path}: {err}") from err
    return statistics, skipped


def resolve_schema_file(schema_file: str | os.PathLike[str]) -> Path:
    """The schema file: as given, else (when relative) under the project root, e.g. committed schemas."""
    given = Path(schema_file)
    candidates = [given] if given.is_absolute() else [given, PROJECT_ROOT / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValidationInputError(
        f"schema file {schema_file} does not exist (looked at {', '.join(map(str, candidates))})"
    )


def load_schema(schema_file: str | os.PathLike[str]) -> schema_pb2.Schema:
    """A tensorflow_metadata Schema from a text-proto file (schema.pbtxt)."""
    path = resolve_schema_file(schema_file)
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), schema)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise ValidationInputError(
            f"schema file {path} is not a tensorflow_metadata Schema text proto: {err}"
        ) from err
    if not schema.feature:
        raise ValidationInputError(f"schema file {path} declares no features")
    return schema


def infer_schema(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> schema_pb2.Schema:
    """A schema inferred from statistics.

    Features get a value_count rather than a fixed shape: a shape is for dense model inputs, and
    with it every missing value would be reported twice.
    """
    return tfdv.infer_schema(statistics, infer_feature_shape=False)


def infer_schema_file(
    parquet_path: str | os.PathLike[str], out_path: str | os.PathLike[str]
) -> schema_pb2.Schema:
    """Infer a schema from a Parquet dataset and write it as a text proto, the start of a curated schema."""
    statistics, _ = compute_statistics(parquet_path)
    schema = infer_schema(statistics)
    _write_atomically(Path(out_path), text_format.MessageToString(schema).encode())
    return schema


def set_comparators(
    schema: schema_pb2.Schema,
    categorical_skew_threshold: float = 0.0,
    numeric_skew_threshold: float = 0.0,
    drift_threshold: float = 0.0,
) -> None:
    """Set skew and drift comparators on every feature, for each threshold that is > 0.

    Categorical features are compared by L-infinity distance, numeric ones by Jensen-Shannon
    divergence. A threshold of 0 leaves the schema's own comparators (if any) untouched.
    """
    _check_thresholds(categorical_skew_threshold, numeric_skew_threshold, drift_threshold)
    for feature in schema.feature:
        if is_categorical_feature(feature):
            if categorical_skew_threshold > 0:
                feature.skew_comparator.infinity_norm.threshold = categorical_skew_threshold
            if drift_threshold > 0:
                feature.drift_comparator.infinity_norm.threshold = drift_threshold
        elif feature.type in (schema_pb2.INT, schema_pb2.FLOAT):
            if numeric_skew_threshold > 0:
                feature.skew_comparator.jensen_shannon_divergence.threshold = numeric_skew_threshold
            if drift_threshold > 0:
                feature.drift_comparator.jensen_shannon_divergence.threshold = drift_threshold


def _check_thresholds(
    categorical_skew_threshold: float, numeric_skew_threshold: float, drift_threshold: float
) -> None:
    for name, threshold in [
        ("categorical_skew_threshold", categorical_skew_threshold),
        ("numeric_skew_threshold", numeric_skew_threshold),
        ("drift_threshold", drift_threshold),
    ]:
        if threshold < 0:
            raise ValueError(f"{name} must be >= 0, got {threshold}")


def validate(
    train_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    schema_file: str = "",
    categorical_skew_threshold: float = 0.0,
    numeric_skew_threshold: float = 0.0,
    drift_threshold: float = 0.0,
) -> ValidationResult:
    """Compute statistics of both splits and validate the eval split; writes nothing."""
    _check_thresholds(categorical_skew_threshold, numeric_skew_threshold, drift_threshold)
    if schema_file:
        schema_path = resolve_schema_file(schema_file)
        schema = load_schema(schema_path)
        schema_source = str(schema_path)
        train_statistics, train_skipped = compute_statistics(train_path, schema)
        eval_statistics, eval_skipped = compute_statistics(eval_path, schema)
    else:
        train_statistics, train_skipped = compute_statistics(train_path)
        eval_statistics, eval_skipped = compute_statistics(eval_path)
        schema = infer_schema(train_statistics)
        schema_source = "inferred from the train data"
    set_comparators(schema, categorical_skew_threshold, numeric_skew_threshold, drift_threshold)
    # Eval is the data under test; train is both the "previous" data (drift) and the other side of
    # the skew comparison. Comparators without a threshold in the schema compute nothing.
    anomalies = tfdv.validate_statistics(
        eval_statistics,
        schema,
        previous_statistics=train_statistics,
        serving_statistics=train_statistics,
    )
    return ValidationResult(
        train_statistics=train_statistics,
        eval_statistics=eval_statistics,
        schema=schema,
        anomalies=anomalies,
        schema_source=schema_source,
        skipped_columns={"train": train_skipped, "eval": eval_skipped},
    )


def validate_datasets(
    train_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    statistics_dir: str | os.PathLike[str],
    schema_path: str | os.PathLike[str],
    anomalies_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    categorical_skew_threshold: float = 0.0,
    numeric_skew_threshold: float = 0.0,
    drift_threshold: float = 0.0,
    max_report_features: int = 50,
) -> ValidationResult:
    """Validate, write every output, then raise ValidationFailed if asked to and anomalies were found.

    Outputs: ``statistics_dir/{train,eval}.pb`` (binary DatasetFeatureStatisticsList), the schema
    and the anomalies as text protos, a self-contained HTML report and a Markdown summary.
    """
    if max_report_features < 1:
        raise ValueError(f"max_report_features must be >= 1, got {max_report_features}")
    result = validate(
        train_path,
        eval_path,
        schema_file,
        categorical_skew_threshold,
        numeric_skew_threshold,
        drift_threshold,
    )
    summary = render_markdown(result)
    _write_directory_atomically(
        Path(statistics_dir),
        {
            "train.pb": result.train_statistics.SerializeToString(),
            "eval.pb": result.eval_statistics.SerializeToString(),
        },
    )
    _write_atomically(Path(schema_path), text_format.MessageToString(result.schema).encode())
    _write_atomically(Path(anomalies_path), text_format.MessageToString(result.anomalies).encode())
    _write_atomically(Path(report_path), render_html(result, max_report_features).encode())
    _write_atomically(Path(summary_path), summary.encode())
    print(summary, flush=True)  # the task log carries the summary too
    if fail_on_anomalies and result.anomalous_features:
        raise ValidationFailed(result.failure_message(), result)
    return result


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _write_directory_atomically(path: Path, files: dict[str, bytes]) -> None:
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, data in files.items():
        (partial / name).write_bytes(data)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    partial.rename(path)


def main(argv: list[str] | None = None) -> None:
    """``python -m components.validate.validation DATA.parquet OUT.pbtxt``: infer a schema to curate."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data", help="Parquet file to infer the schema from")
    parser.add_argument("out", help="schema text proto to write, e.g. components/validate/schemas/text.pbtxt")
    args = parser.parse_args(argv)
    schema = infer_schema_file(args.data, args.out)
    print(f"wrote {args.out}: {len(schema.feature)} features")


if __name__ == "__main__":
    main()
