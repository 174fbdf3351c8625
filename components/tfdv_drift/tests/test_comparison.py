"""TFDV drift of a traffic window against the training data, with real TFDV on demo tickets and generated tables."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.tfdv_drift.comparison import compare_window, render_markdown, write_comparison
from components.validate.validation import ValidationInputError
from kfp_mlops.demo_data import tickets

REQUEST_TIME = pd.Timestamp("2026-03-04T10:00:00Z")
DRIFT_REPORT_SAMPLE = Path(__file__).resolve().parents[2] / "drift_report" / "tests" / "tfdv_result.json"
"""The result document the drift_report component's tests read: this component's output must have its keys."""


def ticket_frame(rows: int, seed: int, drift: bool = False) -> pd.DataFrame:
    return pd.DataFrame(tickets(rows, seed=seed, drift=drift))


def window_of(frame: pd.DataFrame) -> pd.DataFrame:
    """What the drift component writes for a text model: the text, the predicted label, the request time."""
    return pd.DataFrame({"text": frame["text"], "prediction": frame["category"], "request_time": REQUEST_TIME})


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("reference") / "train.parquet"
    ticket_frame(400, seed=1).to_parquet(path, index=False)
    return str(path)


def write(frame: pd.DataFrame, path) -> str:
    frame.to_parquet(path, index=False)
    return str(path)


def test_a_shifted_label_mix_is_drift_and_only_the_labels_are_named(reference, tmp_path):
    window = write(window_of(ticket_frame(300, seed=2, drift=True)), tmp_path / "window.parquet")
    comparison = compare_window(reference, window, label_column="category")
    by_feature = {feature.feature: feature for feature in comparison.features}
    assert set(by_feature) == {"text", "category"}, "the shared column and the labels; request_time is not compared"
    label = by_feature["category"]
    assert label.window_column == "prediction" and label.measure == "L-infinity distance"
    # outage goes from 12% to 40% of tickets in the drifted mix: the largest share difference is about 0.25.
    assert 0.15 < label.value < 0.35 and label.drift
    assert comparison.drift and comparison.drifted_features == ["category"]
    assert (comparison.reference_rows, comparison.window_rows) == (400, 300)


def test_a_window_from_the_training_distribution_is_not_drift(reference, tmp_path):
    window = write(window_of(ticket_frame(300, seed=3)), tmp_path / "window.parquet")
    comparison = compare_window(reference, window, label_column="category")
    assert not comparison.drift and len(comparison.features) == 2
    assert all(feature.value < 0.1 for feature in comparison.features)


def test_numeric_columns_use_jensen_shannon_and_categories_of_mixed_types_agree(tmp_path):
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"amount": rng.normal(50, 10, 500), "channel": rng.choice([1, 2, 3], 500)})
    # The drift component writes categories as strings ("1"); the training data holds ints.
    window = pd.DataFrame({
        "amount": rng.normal(80, 10, 200), "channel": rng.choice(["1", "2", "3"], 200), "request_time": REQUEST_TIME,
    })  # fmt: skip
    comparison = compare_window(write(reference, tmp_path / "r.parquet"), write(window, tmp_path / "w.parquet"),
                                numeric_threshold=0.2)  # fmt: skip
    by_feature = {feature.feature: feature for feature in comparison.features}
    assert by_feature["amount"].measure == "Jensen-Shannon divergence" and by_feature["amount"].drift
    assert by_feature["channel"].measure == "L-infinity distance" and not by_feature["channel"].drift
    assert comparison.drifted_features == ["amount"]


def test_a_window_without_predictions_compares_the_features_and_says_why_not_the_labels(reference, tmp_path):
    window = window_of(ticket_frame(100, seed=3)).assign(prediction=None)
    comparison = compare_window(reference, write(window, tmp_path / "w.parquet"), label_column="category")
    assert [feature.feature for feature in comparison.features] == ["text"]
    assert "no predictions" in comparison.not_compared["category"]


def test_outputs_hold_the_verdict_and_every_measurement(reference, tmp_path):
    window = write(window_of(ticket_frame(300, seed=2, drift=True)), tmp_path / "window.parquet")
    comparison = compare_window(reference, window, label_column="category", categorical_threshold=0.2)
    write_comparison(comparison, tmp_path / "out" / "result.json", tmp_path / "out" / "summary.md")
    document = json.loads((tmp_path / "out" / "result.json").read_text())
    assert document["format_version"] == 1 and document["drift"] is True
    assert document["categorical_threshold"] == 0.2
    assert {f["feature"]: f["drift"] for f in document["features"]} == {"text": False, "category": True}
    assert document["versions"]["tensorflow-data-validation"]
    sample = json.loads(DRIFT_REPORT_SAMPLE.read_text())
    assert set(document) == set(sample) and set(document["features"][0]) == set(sample["features"][0])
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary == render_markdown(comparison) and "**Drift detected**" in summary and "| category | prediction |" in summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.json", "summary.md"], "no partial files left"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing column", "lacks column(s) ['priority']"),
        ("missing label", "lacks the label column 'priority'"),
        ("missing file", "does not exist"),
        ("bad threshold", "categorical_threshold must be > 0"),
        ("nothing shared", "nothing to compare"),
    ],
)
def test_bad_input_is_named(case, expected, reference, tmp_path):
    window = write(window_of(ticket_frame(50, seed=3)), tmp_path / "window.parquet")
    arguments = {"label_column": "category"}
    if case == "missing column":
        arguments["columns"] = ["text", "priority"]
    elif case == "missing label":
        arguments["label_column"] = "priority"
    elif case == "missing file":
        window = str(tmp_path / "nowhere.parquet")
    elif case == "bad threshold":
        arguments["categorical_threshold"] = 0.0
    else:
        window = write(pd.DataFrame({"other": ["a", "b"]}), tmp_path / "other.parquet")
        arguments = {}
    with pytest.raises(ValueError) as raised:
        compare_window(reference, window, **arguments)
    assert expected in str(raised.value)
    if case != "bad threshold":
        assert isinstance(raised.value, ValidationInputError)
