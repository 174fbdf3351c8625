"""In-process tests of TextClassifier: loading a model directory and classifying texts."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from serving.tests.tiny_model import LABELS
from serving.text_classifier import ModelLoadError, TextClassifier


@pytest.fixture(scope="module")
def classifier(tiny_model_dir: Path) -> TextClassifier:
    model = TextClassifier("tiny", str(tiny_model_dir), device="cpu")
    assert model.load() and model.ready
    return model


def test_load_takes_labels_from_config(classifier: TextClassifier) -> None:
    assert classifier.labels == LABELS


def test_classify_returns_a_distribution_over_the_labels(classifier: TextClassifier) -> None:
    texts = ["my card payment was declined twice", "what is the balance", "my card " * 100]  # last: truncated
    predictions = classifier.classify(texts)
    assert len(predictions) == len(texts)
    for prediction in predictions:
        assert list(prediction.scores) == LABELS
        assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.score == max(prediction.scores.values())
        assert prediction.scores[prediction.label] == prediction.score
    assert classifier.classify(texts[:1]) == predictions[:1]  # batching and padding do not change results


def test_cpu_forward_pass_is_a_traced_graph_with_the_eager_models_results(
    classifier: TextClassifier, tiny_model_dir: Path
) -> None:
    eager = TextClassifier("tiny", str(tiny_model_dir), device="cpu", torchscript=False)
    eager.load()
    assert classifier.traced and not eager.traced
    texts = ["declined", "my card payment was declined twice", "what is the balance " * 40]
    for batch in (texts[:1], texts, texts * 11):  # batch sizes and lengths other than the traced example's
        for traced, reference in zip(classifier.classify(batch), eager.classify(batch), strict=True):
            assert traced.label == reference.label
            assert list(traced.scores.values()) == pytest.approx(list(reference.scores.values()), abs=1e-6)


def test_a_model_that_cannot_be_traced_is_served_eagerly(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    model = TextClassifier("tiny", str(tiny_model_dir), device="cpu")
    with caplog.at_level(logging.WARNING, logger="serving.torchscript"):
        assert model.load()
    assert not model.traced
    assert "serving the eager model: tracing failed: RuntimeError('unsupported operator')" in caplog.text
    assert model.classify(["my card payment was declined twice"])[0].label in LABELS


def test_storage_uris_are_rejected_until_supported() -> None:
    with pytest.raises(ModelLoadError, match=r"gs://bucket/model.*only local directories.*gs://"):
        TextClassifier("tiny", "gs://bucket/model").load()


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelLoadError, match=f"model directory {missing} does not exist"):
        TextClassifier("tiny", str(missing)).load()


def test_directory_without_config_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=f"{model_dir / 'config.json'} is missing"):
        TextClassifier("tiny", str(model_dir)).load()


def test_directory_without_weights_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=f"cannot load the model in {model_dir}"):
        TextClassifier("tiny", str(model_dir)).load()


def test_label_map_that_disagrees_with_config_is_rejected(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model_dir / "label_map.json").write_text(json.dumps({"labels": list(reversed(LABELS))}))
    with pytest.raises(ModelLoadError, match="label_map.json lists labels"):
        TextClassifier("tiny", str(model_dir)).load()
