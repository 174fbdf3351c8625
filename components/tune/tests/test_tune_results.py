"""The outputs both backends share: the best trial, the summary metrics, the trials page and the files."""

import json

import pytest

from components.tune.results import TrialRecord, TuneError, TuneResult, best_trial, trials_page, write_outputs
from components.tune.search_space import parse_search_space

SPACE = parse_search_space(
    {
        "objective": {
            "type": "minimize",
            "objectiveMetricName": "eval_loss",
            "additionalMetricNames": ["eval_accuracy"],
        },
        "algorithm": {"algorithmName": "random"},
        "parameters": [
            {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-3"}},
            {
                "name": "base_model",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["tiny", "<b>minilm</b>"]},
            },
        ],
        "maxTrialCount": 4,
    }
)
TRIALS = [
    TrialRecord(
        "trial-0", "Succeeded", {"learning_rate": 1e-4, "base_model": "tiny"}, {"eval_loss": 0.5, "eval_accuracy": 0.7}
    ),
    TrialRecord("trial-1", "Failed", {"learning_rate": 2e-4, "base_model": "tiny"}, {}, "error: <out of memory>"),
    TrialRecord(
        "trial-2",
        "Succeeded",
        {"learning_rate": 3e-4, "base_model": "<b>minilm</b>"},
        {"eval_loss": 0.25, "eval_accuracy": 0.9},
    ),
    TrialRecord(
        "trial-3",
        "EarlyStopped",
        {"learning_rate": 4e-4, "base_model": "tiny"},
        {"eval_loss": 0.1, "eval_accuracy": 0.5},
    ),
]


def test_the_best_trial_is_the_best_succeeded_one():
    assert best_trial(SPACE, TRIALS).name == "trial-2"  # trial-3 has a lower loss but was stopped early
    tie = [TRIALS[2], TrialRecord("trial-9", "Succeeded", {}, {"eval_loss": 0.25})]
    assert best_trial(SPACE, tie).name == "trial-2"


def test_no_succeeded_trial_is_an_error_naming_each_trial():
    with pytest.raises(TuneError, match=r"trial-1 Failed \(error: <out of memory>\); trial-3 EarlyStopped"):
        best_trial(SPACE, TRIALS[1:2] + TRIALS[3:])
    with pytest.raises(TuneError, match="no trials ran"):
        best_trial(SPACE, [])


def test_summary_metrics_hold_the_best_metrics_counts_and_numeric_parameters():
    result = TuneResult("optuna", SPACE, TRIALS[2], TRIALS)
    assert result.summary_metrics() == {
        "eval_loss": 0.25,
        "eval_accuracy": 0.9,
        "trials_total": 4.0,
        "trials_succeeded": 2.0,
        "trials_failed": 1.0,
        "trials_early_stopped": 1.0,
        "trials_killed": 0.0,
        "param_learning_rate": 3e-4,
    }


def test_the_page_lists_every_trial_marks_the_best_and_escapes_text():
    page = trials_page(TuneResult("optuna", SPACE, TRIALS[2], TRIALS, notes=["sampled <uniformly>"]))
    assert page.count("<tr") == 1 + len(TRIALS)
    assert (
        '<tr class="best"><td>trial-2</td><td>Succeeded</td><td>0.0003</td><td>&lt;b&gt;minilm&lt;/b&gt;</td>' in page
    )
    assert "<th>eval_loss (min)</th><th>eval_accuracy (max)</th>" in page
    assert "error: &lt;out of memory&gt;" in page and "note: sampled &lt;uniformly&gt;" in page
    assert "<script" not in page and "http" not in page


def test_outputs_are_written_with_the_best_parameters_as_json(tmp_path):
    html, best = tmp_path / "out" / "trials.html", tmp_path / "out" / "best_parameters"
    logged = write_outputs(TuneResult("katib", SPACE, TRIALS[2], TRIALS), str(html), str(best))
    assert json.loads(best.read_text()) == {"learning_rate": 3e-4, "base_model": "<b>minilm</b>"}
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert logged["eval_loss"] == 0.25
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["best_parameters", "trials.html"]
