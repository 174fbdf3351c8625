import json
import math
from pathlib import Path

import numpy as np
import pytest

from components.anomaly.nab import (
    PROFILES,
    LabelledSeries,
    NabError,
    file_raw_score,
    load_corpus,
    normalize,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    threshold_sweep,
    window_rows,
)

STANDARD = PROFILES["standard"]
NAB_DIR = Path("/work/shared/data/nab")


def series(n_rows: int = 100, windows: tuple[tuple[int, int], ...] = ((40, 49),)) -> LabelledSeries:
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(n_rows) * np.timedelta64(5, "m")
    return LabelledSeries("toy.csv", stamps.astype("datetime64[ns]"), np.zeros(n_rows), windows)


def detections_at(n_rows: int, *rows: int) -> np.ndarray:
    detections = np.zeros(n_rows, dtype=bool)
    detections[list(rows)] = True
    return detections


def sigma(x: float) -> float:
    """The scaled sigmoid by hand: 2 / (1 + e^(5x)) - 1 = -tanh(5x / 2)."""
    return -math.tanh(2.5 * x)


def test_scaled_sigmoid_landmarks():
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(scaled_sigmoid(3.0)) == -1.0


def test_probation_is_15_percent_capped_at_750_rows():
    assert probation_length(100) == 15
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_detection_at_window_start_earns_full_tp_weight():
    toy = series()
    assert file_raw_score(toy, detections_at(100, 40), STANDARD) == pytest.approx(1.0)
    assert normalize(1.0, 1, STANDARD) == pytest.approx(100.0)


def test_detection_at_window_end_earns_little():
    # row 49 is the last of a 10-row window: position -(49 - 49 + 1) / 10 = -0.1
    expected = sigma(-0.1) / sigma(-1.0)
    assert file_raw_score(series(), detections_at(100, 49), STANDARD) == pytest.approx(expected)
    assert expected == pytest.approx(0.24824, abs=1e-5)


def test_only_the_earliest_detection_in_a_window_counts():
    expected = sigma(-(49 - 42 + 1) / 10) / sigma(-1.0)
    assert file_raw_score(series(), detections_at(100, 42, 45, 48), STANDARD) == pytest.approx(expected)


def test_detection_after_window_is_a_scaled_false_positive_and_the_window_a_miss():
    # 5 rows after a 10-row window ending at 49: position 5 / (10 - 1)
    expected = -1.0 + 0.11 * sigma(5 / 9)
    assert file_raw_score(series(), detections_at(100, 54), STANDARD) == pytest.approx(expected)
    # far after the window the FP costs the whole A_FP
    assert file_raw_score(series(), detections_at(100, 99), STANDARD) == pytest.approx(-1.0 - 0.11 * math.tanh(2.5 * 50 / 9))


def test_false_positive_before_any_window_costs_full_fp_weight():
    assert file_raw_score(series(), detections_at(100, 20), STANDARD) == pytest.approx(-1.0 - 0.11)
    low_fp = PROFILES["reward_low_FP_rate"]
    assert file_raw_score(series(), detections_at(100, 20), low_fp) == pytest.approx(-1.0 - 0.22)


def test_detections_in_probation_are_ignored():
    assert file_raw_score(series(), detections_at(100, 3, 14), STANDARD) == pytest.approx(-1.0)


def test_missed_window_costs_fn_weight_per_profile():
    nothing = np.zeros(100, dtype=bool)
    assert file_raw_score(series(), nothing, STANDARD) == -1.0
    assert file_raw_score(series(), nothing, PROFILES["reward_low_FN_rate"]) == -2.0


def test_file_without_windows_scores_only_false_positives():
    empty = series(windows=())
    assert file_raw_score(empty, np.zeros(100, dtype=bool), STANDARD) == 0.0
    assert file_raw_score(empty, detections_at(100, 30, 60), STANDARD) == pytest.approx(-0.22)
    with pytest.raises(NabError, match="without anomaly windows"):
        normalize(0.0, 0, STANDARD)


def test_sweep_matches_direct_scoring_at_every_threshold():
    rng = np.random.default_rng(3)
    corpus = [series(100, ((40, 49),)), series(120, ((30, 35), (80, 99))), series(90, ())]
    scores = [np.round(rng.random(len(s.values)), 2) for s in corpus]  # rounding makes ties
    for costs in PROFILES.values():
        thresholds, raw = threshold_sweep(corpus, scores, costs)
        assert thresholds[0] == math.inf and raw[0] == pytest.approx(-3 * costs.fn)
        for threshold, total in zip(thresholds, raw):
            direct = sum(file_raw_score(s, sc >= threshold, costs) for s, sc in zip(corpus, scores))
            assert total == pytest.approx(direct)


def test_score_corpus_picks_the_best_threshold():
    corpus = [series()]
    scores = [np.where(np.arange(100) == 41, 0.9, 0.1)]
    result = score_corpus(corpus, scores)["standard"]
    assert result.threshold == 0.9
    assert result.true_positive_windows == 1 and result.false_positive_rows == 0
    assert result.normalized_score == pytest.approx(100 * (sigma(-0.9) / sigma(-1.0) + 1) / 2)


def test_window_rows_match_by_timestamp_and_reject_bad_windows():
    toy = series()
    stamps = [str(toy.timestamps[i]).replace("T", " ") for i in (40, 49)]
    assert window_rows(toy.timestamps, [stamps], "toy.csv") == ((40, 49),)
    with pytest.raises(NabError, match="toy.csv: window 0 ends"):
        window_rows(toy.timestamps, [list(reversed(stamps))], "toy.csv")
    with pytest.raises(NabError, match="toy.csv: window 0 has a bad timestamp"):
        window_rows(toy.timestamps, [["yesterday", stamps[1]]], "toy.csv")


def test_load_corpus_names_the_file_without_windows(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "cat" / "a.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    (tmp_path / "windows.json").write_text(json.dumps({}))
    with pytest.raises(NabError, match="no windows for cat/a.csv"):
        load_corpus(tmp_path / "data", tmp_path / "windows.json")


@pytest.mark.skipif(not NAB_DIR.is_dir(), reason="the NAB data is staged only in /work/shared")
def test_real_corpus_null_is_0_and_perfect_is_100_as_published():
    published = json.loads((NAB_DIR / "final_results.json").read_text())
    corpus = load_corpus(NAB_DIR / "data", NAB_DIR / "labels" / "combined_windows.json")
    assert len(corpus) == 47 and sum(len(s.windows) for s in corpus) == 110
    null = score_corpus(corpus, [np.zeros(len(s.values)) for s in corpus])
    perfect_scores = []
    for s in corpus:
        flags = np.zeros(len(s.values))
        flags[[start for start, _ in s.windows]] = 1.0
        perfect_scores.append(flags)
    perfect = score_corpus(corpus, perfect_scores)
    for profile in PROFILES:
        assert null[profile].normalized_score == pytest.approx(published["null"][profile]) == 0.0
        assert perfect[profile].normalized_score == pytest.approx(100.0)
