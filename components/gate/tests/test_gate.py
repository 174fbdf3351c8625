from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.evaluate.predict import ModelDirError
from components.gate.gate import GateError, GateThresholds, champion_model_dir, decide, run_gate

STRONG = {"accuracy": 0.92, "macro_f1": 0.90, "weighted_f1": 0.91, "roc_auc": 0.97, "ece": 0.05, "test_rows": 100}
WEAK = {"accuracy": 0.80, "macro_f1": 0.70, "weighted_f1": 0.78, "roc_auc": 0.85, "ece": 0.12, "test_rows": 100}


# --- the decision, on metrics alone ---


def test_no_champion_and_every_absolute_bar_met_is_blessed() -> None:
    decision = decide(WEAK, None, GateThresholds(min_accuracy=0.8, min_macro_f1=0.7))
    assert decision.blessed
    assert decision.reason == (
        "blessed: no champion yet; min_accuracy: accuracy 0.8000 >= 0.8000; min_macro_f1: macro_f1 0.7000 >= 0.7000"
    )
    assert [check.threshold for check in decision.checks] == ["min_accuracy", "min_macro_f1"]


def test_a_missed_absolute_bar_is_named() -> None:
    decision = decide(WEAK, None, GateThresholds(min_accuracy=0.5, min_macro_f1=0.75))
    assert not decision.blessed
    assert decision.reason == "not blessed: no champion yet; min_macro_f1: macro_f1 0.7000 < 0.7500"


def test_a_challenger_better_than_the_champion_is_blessed() -> None:
    decision = decide(STRONG, WEAK, GateThresholds(min_improvement=0.1))
    assert decision.blessed, decision.reason
    assert "min_improvement: macro_f1 0.9000 vs champion 0.7000 is a change of +0.2000, at least +0.1000" in (
        decision.reason
    )
    assert "max_regression: roc_auc 0.9700 vs champion 0.8500, within 0.0100" in decision.reason
    thresholds = [check.threshold for check in decision.checks]
    assert thresholds == ["min_accuracy", "min_macro_f1", "min_improvement", *["max_regression"] * 4]


def test_a_champion_better_than_the_challenger_keeps_its_place() -> None:
    decision = decide(WEAK, STRONG, GateThresholds(max_regression=0.125))
    assert not decision.blessed
    assert decision.reason == (
        "not blessed: "
        "min_improvement: macro_f1 0.7000 vs champion 0.9000 is a change of -0.2000, less than +0.0000; "
        "max_regression: macro_f1 0.7000 is 0.2000 below the champion's 0.9000, more than 0.1250; "
        "max_regression: weighted_f1 0.7800 is 0.1300 below the champion's 0.9100, more than 0.1250"
    )  # accuracy and ROC-AUC fell 0.12, within 0.125


def test_a_gain_on_the_compared_metric_does_not_excuse_a_regression_elsewhere() -> None:
    challenger = STRONG | {"macro_f1": 0.91, "accuracy": 0.87}
    decision = decide(challenger, STRONG, GateThresholds(max_regression=0.02))
    assert not decision.blessed
    assert decision.reason == (
        "not blessed: max_regression: accuracy 0.8700 is 0.0500 below the champion's 0.9200, more than 0.0200"
    )


def test_thresholds_allow_for_float_noise_and_a_negative_min_improvement() -> None:
    champion = STRONG | {"accuracy": 0.8}
    challenger = STRONG | {"accuracy": 0.9}  # 0.9 - 0.8 is 0.09999999999999998 in floats
    assert decide(challenger, champion, GateThresholds(compare_metric="accuracy", min_improvement=0.1)).blessed
    slightly_worse = STRONG | {"macro_f1": 0.895}
    assert not decide(slightly_worse, STRONG, GateThresholds()).blessed
    assert decide(slightly_worse, STRONG, GateThresholds(min_improvement=-0.01)).blessed


def test_an_undefined_compared_metric_fails_closed() -> None:
    no_auc = {name: value for name, value in STRONG.items() if name != "roc_auc"}
    decision = decide(no_auc, WEAK, GateThresholds(compare_metric="roc_auc"))
    assert not decision.blessed
    assert decision.reason == "not blessed: min_improvement: roc_auc is undefined for the challenger"
    assert "roc_auc" not in " ".join(check.detail for check in decision.checks if check.threshold == "max_regression")


@pytest.mark.parametrize(
    ("thresholds", "error"),
    [
        (GateThresholds(min_accuracy=1.5), r"min_accuracy must be in \[0, 1\], got 1.5"),
        (GateThresholds(min_macro_f1=-0.1), r"min_macro_f1 must be in \[0, 1\], got -0.1"),
        (GateThresholds(compare_metric="ece"), r"compare_metric must be one of \['macro_f1', 'accuracy', "),
        (GateThresholds(max_regression=-0.01), r"max_regression must be in \[0, 1\], got -0.01"),
        (GateThresholds(min_improvement=2.0), r"min_improvement must be in \[-1, 1\], got 2.0"),
    ],
)
def test_settings_out_of_range_are_named(thresholds: GateThresholds, error: str) -> None:
    with pytest.raises(GateError, match=error):
        decide(STRONG, None, thresholds)


def test_champion_model_locations() -> None:
    assert champion_model_dir("") is None
    assert champion_model_dir("/models/champion") == "/models/champion"
    assert champion_model_dir("file:///models/champion") == "/models/champion"
    with pytest.raises(GateError, match=r"champion_model 'gs://bucket/model' is a remote URI"):
        champion_model_dir("gs://bucket/model")


# --- the gate on real models ---


def test_without_a_champion_a_good_challenger_is_blessed(models: dict[str, str], test_path: str, tmp_path: Path):
    comparison = tmp_path / "comparison.md"
    result = run_gate(models["strong"], test_path, str(comparison), thresholds=GateThresholds(min_accuracy=0.9))
    assert result.decision.blessed
    assert result.decision.reason.startswith("blessed: no champion yet; min_accuracy: accuracy 1.0000 >= 0.9000")
    assert result.champion is None
    assert result.challenger.metrics["accuracy"] == 1.0
    text = comparison.read_text()
    assert text.startswith("# Champion/challenger gate: blessed\n")
    assert "- champion: none yet" in text
    assert "| accuracy | 1.0000 | n/a |  |" in text


def test_without_a_champion_a_weak_challenger_fails_the_absolute_bar(
    models: dict[str, str], test_path: str, tmp_path: Path
):
    result = run_gate(models["weak"], test_path, str(tmp_path / "c.md"), thresholds=GateThresholds(min_accuracy=0.9))
    accuracy = result.challenger.metrics["accuracy"]
    assert accuracy <= 0.75
    assert not result.decision.blessed
    assert result.decision.reason == f"not blessed: no champion yet; min_accuracy: accuracy {accuracy:.4f} < 0.9000"


def test_a_better_champion_blocks_a_weaker_challenger(models: dict[str, str], test_path: str, tmp_path: Path):
    comparison = tmp_path / "comparison.md"
    result = run_gate(models["weak"], test_path, str(comparison), champion_model=models["strong"])
    assert not result.decision.blessed
    assert result.champion.metrics["accuracy"] == 1.0
    challenger_f1 = result.challenger.metrics["macro_f1"]
    assert result.decision.reason.startswith(
        f"not blessed: champion {models['strong']}; min_improvement: macro_f1 {challenger_f1:.4f} vs champion 1.0000 "
        f"is a change of {challenger_f1 - 1:+.4f}, less than +0.0000; max_regression: macro_f1"
    )
    text = comparison.read_text()
    assert text.startswith("# Champion/challenger gate: not blessed\n")
    assert f"- champion: `{models['strong']}`" in text
    assert re.search(r"^\| min_improvement \| FAIL \| ", text, re.MULTILINE)
    accuracy = result.challenger.metrics["accuracy"]
    assert f"| accuracy | {accuracy:.4f} | 1.0000 | {accuracy - 1:+.4f} |" in text


def test_a_better_challenger_replaces_the_champion(models: dict[str, str], test_path: str, tmp_path: Path):
    result = run_gate(models["strong"], test_path, str(tmp_path / "c.md"), champion_model=f"file://{models['weak']}")
    assert result.decision.blessed, result.decision.reason
    assert result.champion is not None and result.champion.metrics["accuracy"] <= 0.75
    assert all(check.passed for check in result.decision.checks)


def test_a_champion_that_is_no_model_dir_fails_and_writes_nothing(
    models: dict[str, str], test_path: str, tmp_path: Path
):
    comparison = tmp_path / "comparison.md"
    with pytest.raises(ModelDirError, match="nowhere is not a model directory: it does not exist"):
        run_gate(models["strong"], test_path, str(comparison), champion_model=str(tmp_path / "nowhere"))
    with pytest.raises(GateError, match="remote URI"):
        run_gate(models["strong"], test_path, str(comparison), champion_model="s3://bucket/model")
    assert not list(tmp_path.iterdir())
