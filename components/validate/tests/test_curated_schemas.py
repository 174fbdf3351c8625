"""The committed, curated schemas hold for their family's data and catch what they are meant to catch.

Datasets are shaped like the ingest component's output for the demo tickets: every column a string
except ``created_at``, a UTC timestamp.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.validate.validation import ValidationFailed, ValidationResult, load_schema, validate_datasets
from kfp_mlops import demo_data

TEXT_SCHEMA = "components/validate/schemas/text_classification.pbtxt"


def ticket_frame(rows: int, seed: int, drift: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(demo_data.tickets(rows, seed=seed, drift=drift))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def validate_tickets(train: Path, eval_frame: pd.DataFrame, folder: Path) -> ValidationResult:
    """Validate ``eval_frame`` against the text schema, failing on anomalies; relative schema path as in a pipeline."""
    folder.mkdir(parents=True, exist_ok=True)
    eval_path = write(eval_frame, folder / "eval.parquet")
    return validate_datasets(
        train,
        eval_path,
        folder / "statistics",
        folder / "schema.pbtxt",
        folder / "anomalies.pbtxt",
        folder / "report.html",
        folder / "summary.md",
        schema_file=TEXT_SCHEMA,
    )


def expect_failure(train: Path, eval_frame: pd.DataFrame, folder: Path) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        validate_tickets(train, eval_frame, folder)
    return caught.value


@pytest.fixture(scope="module")
def train_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(ticket_frame(600, seed=0), tmp_path_factory.mktemp("train") / "train.parquet")


def test_schema_describes_the_demo_ticket_columns() -> None:
    schema = load_schema(TEXT_SCHEMA)
    features = {feature.name: feature for feature in schema.feature}
    domains = {domain.name: set(domain.value) for domain in schema.string_domain}
    sample = ticket_frame(2000, seed=5)

    # created_at is a timestamp after ingest, which TFDV's in-memory statistics skip.
    assert set(features) == set(demo_data.FIELDS) - {"created_at"}
    assert domains["category"] == set(demo_data.CATEGORIES)
    assert domains["channel"] == set(sample["channel"])
    assert domains["customer_tier"] == set(sample["customer_tier"])
    assert features["text"].WhichOneof("domain_info") == "natural_language_domain"
    for required in ("ticket_id", "text", "category"):
        assert features[required].presence.min_fraction == 1.0, required


@pytest.mark.parametrize("drift", [False, True], ids=["clean", "drifted"])
def test_demo_tickets_pass(train_path: Path, tmp_path: Path, drift: bool) -> None:
    # The drifted tickets change the category mix and the wording, not the contract: they pass too.
    result = validate_tickets(train_path, ticket_frame(300, seed=1, drift=drift), tmp_path)

    assert result.anomalous_features == []
    assert result.metrics()["features"] == 5
    assert result.skipped_columns == {"train": ["created_at"], "eval": ["created_at"]}


def test_new_category_fails_naming_the_feature_and_value(train_path: Path, tmp_path: Path) -> None:
    tickets = ticket_frame(300, seed=1)
    tickets.loc[:2, "category"] = "refund"

    failure = expect_failure(train_path, tickets, tmp_path)

    assert failure.result.anomalous_features == ["category"]
    assert "category" in str(failure) and "refund" in str(failure)


def test_missing_text_column_fails_naming_the_feature(train_path: Path, tmp_path: Path) -> None:
    failure = expect_failure(train_path, ticket_frame(300, seed=1).drop(columns=["text"]), tmp_path)

    assert failure.result.anomalous_features == ["text"]
    assert "text" in str(failure) and "Column dropped" in str(failure)


def test_metadata_columns_tolerate_rare_unknown_values_only(train_path: Path, tmp_path: Path) -> None:
    rare = ticket_frame(400, seed=1)
    rare.loc[:1, "channel"] = ""  # 0.5% empty fields: under the 1% the schema tolerates
    assert validate_tickets(train_path, rare, tmp_path / "rare").anomalous_features == []

    common = ticket_frame(400, seed=1)
    common.loc[:19, "customer_tier"] = "trial"  # 5%
    failure = expect_failure(train_path, common, tmp_path / "common")
    assert failure.result.anomalous_features == ["customer_tier"]
    assert "trial" in str(failure)
