"""The gate for every model kind: regression direction, thresholds bounds, settings that do not fit the kind, and
dispatch on the model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.evaluate.predict import ModelDirError
from components.gate.gate import Bound, GateError, GateThresholds, decide, parse_thresholds, run_gate
from components.gate.scorers import (
    ANOMALY_DETECTOR,
    TABULAR_CLASSIFIER,
    TABULAR_REGRESSOR,
    TEXT_CLASSIFIER,
    model_kind,
)

CHAMPION = {"rmse": 12.0, "mae": 9.0, "r2": 0.60, "rows": 200}


def test_a_regressor_with_lower_errors_is_blessed_and_the_primary_metric_is_rmse() -> None:
    challenger = {"rmse": 10.8, "mae": 8.1, "r2": 0.66, "rows": 200}
    decision = decide(challenger, CHAMPION, GateThresholds(min_improvement=0.05), TABULAR_REGRESSOR, "eta version 1")
    assert decision.blessed, decision.reason
    assert decision.reason.startswith(
        "blessed: champion eta version 1; min_improvement: rmse 10.8000 vs champion 12.0000 is a relative gain of "
        "+0.1000, at least +0.0500; max_regression: rmse 10.8000 vs champion 12.0000, within 0.0100"
    )
    assert [check.threshold for check in decision.checks] == ["min_improvement", *["max_regression"] * 3]


def test_a_regressor_whose_errors_grew_is_not_blessed() -> None:
    challenger = {"rmse": 12.6, "mae": 9.05, "r2": 0.60, "rows": 200}  # rmse 5% worse, mae 0.56% worse
    decision = decide(challenger, CHAMPION, GateThresholds(max_regression=0.01), TABULAR_REGRESSOR)
    assert not decision.blessed
    assert decision.reason == (
        "not blessed: min_improvement: rmse 12.6000 vs champion 12.0000 is a relative gain of -0.0500, less than "
        "+0.0000; max_regression: rmse 12.6000 is 0.0500 (relative) worse than the champion's 12.0000, more than "
        "0.0100"
    )
    # A higher rmse is never an improvement, however large: the direction is lower-is-better.
    far_worse = {**challenger, "rmse": 50.0}
    assert not decide(far_worse, CHAMPION, GateThresholds(max_regression=1.0), TABULAR_REGRESSOR).blessed


def test_thresholds_bound_any_reported_metric_in_its_direction() -> None:
    bounds = parse_thresholds('{"rmse": "<=12", "r2": ">= 0.5", "mae": 10}')
    assert bounds == (Bound("rmse", "<=", 12.0), Bound("r2", ">=", 0.5), Bound("mae", "<=", 10.0))
    passing = decide({"rmse": 11.5, "mae": 9.9, "r2": 0.55}, None, GateThresholds(bounds=bounds), TABULAR_REGRESSOR)
    assert passing.blessed
    assert passing.reason == (
        "blessed: no champion yet; thresholds.rmse: rmse 11.5000 <= 12.0000; thresholds.r2: r2 0.5500 >= 0.5000; "
        "thresholds.mae: mae 9.9000 <= 10.0000"
    )
    failing = decide({"rmse": 12.5, "mae": 9.0, "r2": 0.55}, None, GateThresholds(bounds=bounds), TABULAR_REGRESSOR)
    assert failing.reason == "not blessed: no champion yet; thresholds.rmse: rmse 12.5000 > 12.0000"
    # A bare number on a higher-is-better metric is a lower bound; a metric the kind may leave undefined fails closed.
    recall = parse_thresholds('{"recall": 0.8}')
    assert recall == (Bound("recall", ">=", 0.8),)
    detector = {"precision": 0.9, "recall": 0.7, "f1": 0.78}
    assert not decide(detector, None, GateThresholds(bounds=recall), ANOMALY_DETECTOR).blessed
    auc_bound = GateThresholds(bounds=parse_thresholds('{"roc_auc": 0.9}'))
    no_auc = decide({"accuracy": 1.0, "macro_f1": 1.0}, None, auc_bound)
    assert no_auc.reason == "not blessed: no champion yet; thresholds.roc_auc: roc_auc is undefined for the challenger"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rmse<=12", r"thresholds is not JSON .* give an object such as \{\"rmse\": \"<=12\"\}"),
        ('["rmse", 12]', r"thresholds must be a JSON object"),
        ('{"rmse": "< 12"}', r'thresholds\["rmse"\] is "< 12": give "<=NUMBER", ">=NUMBER" or a number'),
        ('{"f1": true}', r'thresholds\["f1"\] is true'),
    ],
)
def test_malformed_thresholds_name_the_bad_entry(text: str, error: str) -> None:
    with pytest.raises(GateError, match=error):
        parse_thresholds(text)


def test_a_thresholds_key_the_model_does_not_report_is_named() -> None:
    typo = GateThresholds(bounds=(Bound("rsme", "<=", 2),))
    named = r'thresholds\["rsme"\]: a tabular regressor reports no metric \'rsme\'; it reports mae, r2, rmse'
    with pytest.raises(GateError, match=named):
        decide({"rmse": 1.0, "mae": 1.0, "r2": 0.5}, None, typo, TABULAR_REGRESSOR)


def test_settings_that_do_not_fit_the_model_kind_are_refused() -> None:
    metrics = {"rmse": 1.0, "mae": 1.0, "r2": 0.5}
    bar = r"min_accuracy applies to classifiers, and the challenger is a tabular regressor .*\{\"rmse\": \"<=\.\.\.\"\}"
    with pytest.raises(GateError, match=bar):
        decide(metrics, None, GateThresholds(min_accuracy=0.8), TABULAR_REGRESSOR)
    metric = r"compare_metric 'macro_f1' is not judged for a tabular regressor; use one of \['rmse', 'mae', 'r2'\]"
    with pytest.raises(GateError, match=metric):
        decide(metrics, CHAMPION, GateThresholds(compare_metric="macro_f1"), TABULAR_REGRESSOR)
    anomaly = decide({"precision": 0.9, "recall": 0.8, "f1": 0.85}, {"precision": 0.9, "recall": 0.7, "f1": 0.8},
                     GateThresholds(), ANOMALY_DETECTOR)  # fmt: skip
    assert anomaly.blessed and "min_improvement: f1 0.8500 vs champion 0.8000" in anomaly.reason


def test_the_model_directory_says_which_kind_it_is(models: dict[str, str], tmp_path: Path) -> None:
    assert model_kind(models["strong"]) is TEXT_CLASSIFIER
    for manifest, kind in (
        ({"family": "tabular", "task": "classification"}, TABULAR_CLASSIFIER),
        ({"family": "tabular", "task": "regression"}, TABULAR_REGRESSOR),
        ({"family": "anomaly", "detector": "zscore"}, ANOMALY_DETECTOR),
    ):
        folder = tmp_path / kind.name.replace(" ", "-")
        folder.mkdir()
        (folder / "model.json").write_text(json.dumps(manifest))
        assert model_kind(folder) is kind
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    with pytest.raises(ModelDirError, match="holds neither config.json .* nor model.json"):
        model_kind(unknown)
    (unknown / "model.json").write_text('{"task": "regression"}')
    with pytest.raises(ModelDirError, match=r'model.json: "family" is None, not "tabular" or "anomaly"'):
        model_kind(unknown)
    (unknown / "model.json").write_text('{"family": "tabular", "task": "ranking"}')
    with pytest.raises(ModelDirError, match=r'"task" is \'ranking\', not "classification" or "regression"'):
        model_kind(unknown)


def test_a_champion_of_another_kind_is_refused_before_scoring(models: dict[str, str], test_path: str, tmp_path: Path):
    champion = tmp_path / "regressor"
    champion.mkdir()
    (champion / "model.json").write_text('{"family": "tabular", "task": "regression"}')
    with pytest.raises(GateError, match=r"is a tabular regressor and the challenger a text classifier"):
        run_gate(models["strong"], test_path, str(tmp_path / "c.md"), champion_model=str(champion))
    assert not (tmp_path / "c.md").exists()


# --- tabular models trained by components/train_tabular, scored by its scoring.py ---


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """scikit-learn's diabetes data (no download) split 60/20/20, a regressor with 40 trees and one with a
    single stump."""
    import numpy as np
    from sklearn.datasets import load_diabetes

    from components.train_tabular.tabular_trainer import train_tabular_model

    folder = tmp_path_factory.mktemp("diabetes")
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    order = np.random.default_rng(0).permutation(len(frame))
    cuts = (int(len(frame) * 0.6), int(len(frame) * 0.8))
    paths = {}
    for name, rows in zip(("train", "eval", "test"), np.split(order, cuts)):
        paths[name] = str(folder / f"{name}.parquet")
        frame.iloc[rows].reset_index(drop=True).to_parquet(paths[name])
    sizes = {"strong": {"n_estimators": 40, "max_depth": 3}, "stump": {"n_estimators": 1, "max_depth": 1}}
    for model, hyperparameters in sizes.items():
        paths[model] = str(folder / model)
        train_tabular_model(paths["train"], paths["eval"], paths[model], task="regression", target_column="progression",
                            algorithm="xgboost", hyperparameters=hyperparameters, num_threads=1)  # fmt: skip
    return paths


def test_a_tabular_regressor_is_judged_on_rmse_lower_being_better(diabetes: dict[str, str], tmp_path: Path):
    gate = dict(test_path=diabetes["test"], label_column="progression")
    worse = run_gate(
        diabetes["stump"], comparison_path=str(tmp_path / "worse.md"), champion_model=diabetes["strong"], **gate
    )
    assert worse.kind is TABULAR_REGRESSOR
    assert worse.challenger.metrics["rmse"] > worse.champion.metrics["rmse"]
    assert not worse.decision.blessed
    assert worse.decision.reason.startswith(f"not blessed: champion {diabetes['strong']}; min_improvement: rmse ")
    text = (tmp_path / "worse.md").read_text()
    assert "a tabular regressor" in text and "| rmse (lower is better) |" in text and "| r2 |" in text

    better = run_gate(diabetes["strong"], comparison_path=str(tmp_path / "better.md"), champion_model=diabetes["stump"],
                      thresholds=GateThresholds(bounds=parse_thresholds('{"rmse": "<=80"}')), **gate)  # fmt: skip
    assert better.decision.blessed, better.decision.reason
    rmse = better.challenger.metrics["rmse"]
    assert f"thresholds.rmse: rmse {rmse:.4f} <= 80.0000" in better.decision.reason

    too_strict = run_gate(diabetes["strong"], comparison_path=str(tmp_path / "strict.md"),
                          thresholds=GateThresholds(bounds=parse_thresholds('{"rmse": "<=1"}')), **gate)  # fmt: skip
    assert too_strict.decision.reason == f"not blessed: no champion yet; thresholds.rmse: rmse {rmse:.4f} > 1.0000"


def test_a_tabular_classifier_keeps_the_classification_bars(tmp_path: Path):
    from sklearn.datasets import load_breast_cancer

    from components.train_tabular.tabular_trainer import train_tabular_model

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    for name, rows in (("train", slice(0, 400)), ("eval", slice(400, 480)), ("test", slice(480, None))):
        frame.iloc[rows].reset_index(drop=True).to_parquet(tmp_path / f"{name}.parquet")
    train_tabular_model(tmp_path / "train.parquet", tmp_path / "eval.parquet", tmp_path / "model", num_threads=1,
                        task="classification", target_column="diagnosis", algorithm="linear")  # fmt: skip
    bars = GateThresholds(min_accuracy=0.9, min_macro_f1=0.99)
    result = run_gate(str(tmp_path / "model"), str(tmp_path / "test.parquet"), str(tmp_path / "c.md"),
                      thresholds=bars, label_column="diagnosis")  # fmt: skip
    assert result.kind is TABULAR_CLASSIFIER and result.challenger.metrics["accuracy"] >= 0.9
    assert result.decision.reason.startswith("not blessed: no champion yet; min_macro_f1: macro_f1 ")
    assert [check.threshold for check in result.decision.checks] == ["min_accuracy", "min_macro_f1"]


def test_an_anomaly_detector_is_judged_on_event_f1(tmp_path: Path):
    import numpy as np

    from components.anomaly.demo import demo_host_metrics
    from components.train_anomaly.trainer import train_anomaly_model

    day = 288
    data = demo_host_metrics(hosts=2, steps=3 * day, anomalies_per_series=3, seed=5)
    stamps = np.sort(data["timestamp"].unique())
    cut_eval, cut_test = stamps[int(1.5 * day)], stamps[int(2.25 * day)]
    for name, part in (("train", data[data["timestamp"] < cut_eval]),
                       ("eval", data[(data["timestamp"] >= cut_eval) & (data["timestamp"] < cut_test)]),
                       ("test", data[data["timestamp"] >= cut_test])):  # fmt: skip
        part.to_parquet(tmp_path / f"{name}.parquet")
    robust = '{"window": 144, "min_history": 60, "memory": 288}'
    train_anomaly_model(str(tmp_path / "train.parquet"), str(tmp_path / "eval.parquet"), str(tmp_path / "model"),
                        detector="robust", hyperparameters=robust)  # fmt: skip
    gate = dict(test_path=str(tmp_path / "test.parquet"), comparison_path=str(tmp_path / "c.md"))
    gate["label_column"] = "anomaly"
    recall_bound = GateThresholds(bounds=parse_thresholds('{"recall": ">=0"}'))
    result = run_gate(str(tmp_path / "model"), thresholds=recall_bound, **gate)
    assert result.kind is ANOMALY_DETECTOR and {"precision", "recall", "f1"} <= set(result.challenger.metrics)
    assert result.decision.blessed and "thresholds.recall: recall " in result.decision.reason
    refused = "min_macro_f1 applies to classifiers, and the challenger is an anomaly detector"
    with pytest.raises(GateError, match=refused):
        run_gate(str(tmp_path / "model"), thresholds=GateThresholds(min_macro_f1=0.5), **gate)
