"""The validate component's logic on real TFDV: each kind of anomaly is detected and named in the
outputs, clean resamples pass, skew and drift show on shifted data only, bad input fails clearly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from components.validate import validation
from components.validate.validation import (
    ValidationFailed,
    ValidationInputError,
    ValidationResult,
    infer_schema_file,
    validate_datasets,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
BANKING77 = REPO_ROOT.parent / "shared" / "data" / "banking77"
Reason = anomalies_pb2.AnomalyInfo


@dataclass(frozen=True)
class Outputs:
    statistics: Path
    schema: Path
    anomalies: Path
    report: Path
    summary: Path

    @classmethod
    def under(cls, folder: Path) -> Outputs:
        return cls(*(folder / name for name in ("statistics", "schema.pbtxt", "anomalies.pbtxt", "report.html", "summary.md")))

    def html(self) -> str:
        return self.report.read_text(encoding="utf-8")

    def markdown(self) -> str:
        return self.summary.read_text(encoding="utf-8")


def run(train: Path, eval_: Path, out: Outputs, **options) -> ValidationResult:
    return validate_datasets(
        train, eval_, out.statistics, out.schema, out.anomalies, out.report, out.summary, **options
    )


def run_expecting_failure(train: Path, eval_: Path, out: Outputs, **options) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        run(train, eval_, out, **options)
    return caught.value


def reason_types(anomalies: anomalies_pb2.Anomalies, feature: str) -> set[int]:
    return {reason.type for reason in anomalies.anomaly_info[feature].reason}


def tabular(rows: int, seed: int) -> pd.DataFrame:
    """Typed columns with nullable ints, so a missing value does not turn an int column into float."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": pd.array(np.arange(rows), dtype="Int64"),
            "age": pd.array(rng.integers(18, 90, rows), dtype="Int64"),
            "color": rng.choice(["red", "green", "blue"], rows),
            "score": rng.normal(0.0, 1.0, rows),
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def train_path(data_dir) -> Path:
    return write(tabular(400, seed=1), data_dir / "train.parquet")


@pytest.fixture(scope="module")
def clean_eval() -> pd.DataFrame:
    return tabular(400, seed=2)


@pytest.fixture(scope="module")
def clean_eval_path(data_dir, clean_eval) -> Path:
    return write(clean_eval, data_dir / "eval.parquet")


@pytest.fixture
def out(tmp_path) -> Outputs:
    return Outputs.under(tmp_path / "outputs")


def test_clean_resample_passes_and_writes_every_output(train_path, clean_eval_path, out):
    result = run(train_path, clean_eval_path, out)

    assert result.metrics() == {"features": 4, "anomalies": 0, "train_rows": 400, "eval_rows": 400}
    train_stats = tfdv.load_stats_binary(str(out.statistics / "train.pb"))
    eval_stats = tfdv.load_stats_binary(str(out.statistics / "eval.pb"))
    assert train_stats.datasets[0].num_examples == 400 and eval_stats.datasets[0].num_examples == 400
    schema = tfdv.load_schema_text(str(out.schema))
    assert {feature.name: feature.type for feature in schema.feature} == {
        "id": schema_pb2.INT, "age": schema_pb2.INT, "color": schema_pb2.BYTES, "score": schema_pb2.FLOAT,
    }
    assert not tfdv.load_anomalies_text(str(out.anomalies)).anomaly_info
    assert "PASSED: no anomalies" in out.html() and "PASSED: no anomalies" in out.markdown()
    assert not list(out.report.parent.glob("*.partial"))


def _drop_color(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["color"])


def _new_color(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(color=frame["color"].where(frame.index >= 5, "purple"))


def _age_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(age=frame["age"].astype(str))


def _age_often_missing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(age=frame["age"].where(frame.index % 3 != 0, pd.NA))


@pytest.mark.parametrize(
    ("mutate", "feature", "reason", "described_as"),
    [
        (_drop_color, "color", Reason.SCHEMA_MISSING_COLUMN, "Column is completely missing"),
        (_new_color, "color", Reason.ENUM_TYPE_UNEXPECTED_STRING_VALUES, "missing from the schema: purple"),
        (_age_as_text, "age", Reason.UNEXPECTED_DATA_TYPE, "Expected data of type: INT but got STRING"),
        (_age_often_missing, "age", Reason.FEATURE_TYPE_LOW_FRACTION_PRESENT, "minimum fraction = 1.000000"),
    ],
    ids=["missing-column", "new-category", "type-change", "missing-values-jump"],
)
def test_anomaly_is_detected_and_named_in_every_output(
    train_path, clean_eval, tmp_path, out, mutate, feature, reason, described_as
):
    eval_path = write(mutate(clean_eval), tmp_path / "eval.parquet")

    failure = run_expecting_failure(train_path, eval_path, out)

    # Exactly this anomaly: e.g. nulls in an int column must not also read as a type change.
    assert reason_types(failure.result.anomalies, feature) == {reason}
    assert failure.result.anomalous_features == [feature]
    assert f"- {feature} [ERROR]" in str(failure) and described_as in str(failure)
    assert reason_types(tfdv.load_anomalies_text(str(out.anomalies)), feature) == {reason}
    for rendered in (out.html(), out.markdown()):
        assert "FAILED: 1 anomalous feature(s)" in rendered
        assert described_as in rendered and feature in rendered


def test_values_out_of_the_curated_int_domain_are_named(train_path, clean_eval, clean_eval_path, tmp_path, out):
    schema_file = tmp_path / "curated.pbtxt"
    schema = infer_schema_file(train_path, schema_file)
    tfdv.set_domain(schema, "age", schema_pb2.IntDomain(min=18, max=89))
    tfdv.write_schema_text(schema, str(schema_file))
    out_of_range = clean_eval.copy()
    out_of_range.loc[0, "age"], out_of_range.loc[1, "age"] = 120, 5
    eval_path = write(out_of_range, tmp_path / "eval.parquet")

    assert run(train_path, clean_eval_path, out, schema_file=str(schema_file)).anomalous_features == []
    failure = run_expecting_failure(train_path, eval_path, out, schema_file=str(schema_file))

    assert reason_types(failure.result.anomalies, "age") == {Reason.INT_TYPE_BIG_INT, Reason.INT_TYPE_SMALL_INT}
    assert "Unexpectedly large value: 120" in str(failure) and "Unexpectedly small value: 5" in str(failure)
    assert failure.result.schema_source == str(schema_file)
    assert "Unexpectedly large value: 120" in out.html()


def test_dataset_level_anomaly_is_listed_as_the_dataset(train_path, clean_eval_path, tmp_path, out):
    schema_file = tmp_path / "curated.pbtxt"
    schema = infer_schema_file(train_path, schema_file)
    schema.dataset_constraints.min_examples_count = 1000
    tfdv.write_schema_text(schema, str(schema_file))

    failure = run_expecting_failure(train_path, clean_eval_path, out, schema_file=str(schema_file))

    assert failure.result.anomalous_features == ["(dataset)"]
    assert [reason.type for reason in failure.result.anomalies.dataset_anomaly_info.reason] == [
        Reason.DATASET_LOW_NUM_EXAMPLES
    ]
    assert "- (dataset) [ERROR]" in str(failure) and "(dataset)" in out.html()


def test_fail_on_anomalies_false_returns_with_the_anomalies_recorded(train_path, clean_eval, tmp_path, out):
    eval_path = write(_new_color(clean_eval), tmp_path / "eval.parquet")

    result = run(train_path, eval_path, out, fail_on_anomalies=False)

    assert result.metrics()["anomalies"] == 1
    assert reason_types(tfdv.load_anomalies_text(str(out.anomalies)), "color") == {
        Reason.ENUM_TYPE_UNEXPECTED_STRING_VALUES
    }
    assert "missing from the schema: purple" in out.markdown()


def test_numeric_skew_and_drift_show_on_a_shifted_sample_only(train_path, clean_eval, clean_eval_path, tmp_path, out):
    shifted_path = write(clean_eval.assign(score=clean_eval["score"] + 1.5), tmp_path / "shifted.parquet")
    thresholds = {"numeric_skew_threshold": 0.1, "drift_threshold": 0.1}

    clean = run(train_path, clean_eval_path, out, **thresholds)
    failure = run_expecting_failure(train_path, shifted_path, out, **thresholds)

    assert clean.anomalous_features == []
    clean_divergence = [info for info in clean.anomalies.drift_skew_info if list(info.path.step) == ["score"]]
    assert 0 < clean_divergence[0].skew_measurements[0].value < 0.1
    assert failure.result.anomalous_features == ["score"]
    assert reason_types(failure.result.anomalies, "score") == {Reason.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH}
    assert "Jensen-Shannon divergence between training and serving" in str(failure)
    assert "Jensen-Shannon divergence between current and previous" in str(failure)


@pytest.fixture(scope="module")
def banking77(data_dir) -> dict[str, Path]:
    """BANKING77 (CC BY 4.0) as the text family's id/text/label: train, an unshifted eval and an eval
    holding only five intents (a class shift), all disjoint samples of the upstream train split."""
    source = BANKING77 / "train.csv"
    assert source.is_file(), f"BANKING77 is expected at {source} (the shared data folder)"
    frame = pd.read_csv(source).rename(columns={"category": "label"})
    frame.insert(0, "id", np.arange(len(frame)))
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    train, held_out = shuffled.iloc[:3000], shuffled.iloc[3000:]
    five_intents = sorted(frame["label"].unique())[:5]
    return {
        "train": write(train, data_dir / "banking77_train.parquet"),
        "eval": write(held_out.iloc[:1500], data_dir / "banking77_eval.parquet"),
        "shifted": write(held_out[held_out["label"].isin(five_intents)], data_dir / "banking77_shifted.parquet"),
    }


def test_label_skew_and_drift_show_on_a_class_shifted_banking77_sample_only(banking77, out):
    thresholds = {"categorical_skew_threshold": 0.1, "drift_threshold": 0.1}

    clean = run(banking77["train"], banking77["eval"], out, **thresholds)
    failure = run_expecting_failure(banking77["train"], banking77["shifted"], out, **thresholds)

    assert clean.anomalous_features == []
    assert "label" in failure.result.anomalous_features
    label = failure.result.anomalies.anomaly_info["label"]
    assert [reason.type for reason in label.reason] == [Reason.COMPARATOR_L_INFTY_HIGH] * 2
    assert "Linfty distance between training and serving" in str(failure)
    assert "Linfty distance between current and previous" in str(failure)
    # Free text is categorical to TFDV and gets the L-infinity check too, but unique texts stay far
    # below the threshold.
    assert "text" not in failure.result.anomalous_features
    assert "all values distinct" in out.html()  # not TFDV's approximate top-k counts of unique texts


def test_new_intent_label_is_named(banking77, tmp_path, out):
    frame = pd.read_parquet(banking77["eval"])
    frame.loc[frame.index[:3], "label"] = "crypto_refund"
    eval_path = write(frame, tmp_path / "eval.parquet")

    failure = run_expecting_failure(banking77["train"], eval_path, out)

    assert failure.result.anomalous_features == ["label"]
    assert "missing from the schema: crypto_refund" in str(failure)


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda folder: folder / "absent.parquet", "does not exist"),
        (lambda folder: write(tabular(0, seed=1), folder / "empty.parquet"), r"is empty \(0 rows"),
        (lambda folder: _text_file(folder / "not.parquet", "id,text\n1,a\n"), "is not a readable Parquet file"),
    ],
    ids=["missing", "no-rows", "not-parquet"],
)
def test_bad_dataset_file_is_named_and_no_output_is_written(train_path, tmp_path, out, make_input, message):
    bad = make_input(tmp_path)

    with pytest.raises(ValidationInputError, match=message) as caught:
        run(train_path, bad, out)

    assert str(bad) in str(caught.value)
    assert not out.report.parent.exists()


def _text_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("schema_text", "message"),
    [
        ('feature { name: "age" type: NOT_A_TYPE }', "is not a tensorflow_metadata Schema text proto"),
        ("", "declares no features"),
    ],
    ids=["unparsable", "no-features"],
)
def test_bad_schema_file_is_named(train_path, clean_eval_path, tmp_path, out, schema_text, message):
    schema_file = _text_file(tmp_path / "schema.pbtxt", schema_text)

    with pytest.raises(ValidationInputError, match=message) as caught:
        run(train_path, clean_eval_path, out, schema_file=str(schema_file))

    assert str(schema_file) in str(caught.value)
    assert not out.report.parent.exists()


def test_missing_schema_file_is_named(train_path, clean_eval_path, out):
    with pytest.raises(ValidationInputError, match="schema file schemas/absent.pbtxt does not exist"):
        run(train_path, clean_eval_path, out, schema_file="schemas/absent.pbtxt")


def test_relative_schema_file_is_found_under_the_project_root(train_path, tmp_path, monkeypatch):
    committed = tmp_path / "root" / "components" / "validate" / "schemas" / "tabular.pbtxt"
    committed.parent.mkdir(parents=True)
    infer_schema_file(train_path, committed)
    monkeypatch.setattr(validation, "PROJECT_ROOT", tmp_path / "root")
    monkeypatch.chdir(tmp_path)

    schema = validation.load_schema("components/validate/schemas/tabular.pbtxt")

    assert [feature.name for feature in schema.feature] == ["id", "age", "color", "score"]


def test_report_is_self_contained_escapes_data_and_caps_the_feature_table(train_path, clean_eval, tmp_path, out):
    injected = "<script>alert(1)</script>"
    eval_ = clean_eval.drop(columns=["score"]).assign(color=lambda f: f["color"].where(f.index >= 3, injected))
    eval_path = write(eval_, tmp_path / "eval.parquet")

    run(train_path, eval_path, out, fail_on_anomalies=False, max_report_features=2)
    page = out.html()

    for external in ("<script", "<link", "<img", "http://", "https://", "@import", "src="):
        assert external not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the new value, named and escaped
    table = page.split("Feature statistics")[1]
    shown = [name for name in ("color", "score", "id", "age") if f">{name}</td>" in table]
    assert shown == ["color", "score"]  # anomalous features first, capped at 2
    assert table.index(">color</td>") < table.index(">score</td>")
    assert "2 more feature(s) not shown" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.markdown() and "<script" not in out.markdown()


def test_categorical_and_timestamp_columns(tmp_path, out):
    frame = tabular(100, seed=4).assign(
        color=lambda f: f["color"].astype("category"), seen_at=pd.Timestamp("2024-01-01")
    )
    path = write(frame, tmp_path / "data.parquet")

    result = run(path, path, out)

    assert tfdv.get_feature(result.schema, "color").type == schema_pb2.BYTES
    assert result.skipped_columns == {"train": ["seen_at"], "eval": ["seen_at"]}
    assert "seen_at" in out.markdown()


def test_command_line_writes_a_schema_to_curate(train_path, tmp_path, capsys):
    schema_file = tmp_path / "schemas" / "tabular.pbtxt"

    validation.main([str(train_path), str(schema_file)])

    assert len(tfdv.load_schema_text(str(schema_file)).feature) == 4
    assert "4 features" in capsys.readouterr().out


def test_negative_threshold_is_rejected(train_path, clean_eval_path, out):
    with pytest.raises(ValueError, match="drift_threshold must be >= 0"):
        run(train_path, clean_eval_path, out, drift_threshold=-0.1)
