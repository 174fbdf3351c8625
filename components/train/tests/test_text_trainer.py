from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from components.train.labels import LabelError
from components.train.models import BaseModelError
from components.train.text_trainer import (
    TrainConfig,
    TrainError,
    TrainResult,
    main,
    read_text_dataset,
    train_text_classifier,
)

# Katib's StdOut metrics collector format: an RFC 3339 time, a space, then one `name=value` (its default filter).
KATIB_LINE = re.compile(r"^(\S+) ([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)$")


def tiny_config(train_path: Path, eval_path: Path, out: Path, **overrides: object) -> TrainConfig:
    # A random-init model on a separable toy set needs a large learning rate to learn within a few dozen steps.
    fields = dict(
        train_path=str(train_path),
        eval_path=str(eval_path),
        model_dir=str(out / "model"),
        base_model="tiny",
        epochs=4,
        batch_size=8,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        max_length=16,
        num_threads=1,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.fixture(scope="module")
def trained(toy_splits: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, TrainResult]:
    out = tmp_path_factory.mktemp("trained")
    config = tiny_config(*toy_splits, out, curves_path=str(out / "curves.html"), metrics_path=str(out / "metrics.json"))
    return config, train_text_classifier(config)


def test_loss_decreases_and_the_toy_set_is_learned(trained: tuple[TrainConfig, TrainResult]) -> None:
    _, result = trained
    losses = [loss for _, loss in result.train_loss]
    assert [step for step, _ in result.train_loss] == list(range(1, 4 * 6 + 1))  # 48 rows / 8 per batch, 4 epochs
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    assert result.eval_history[-1]["eval_loss"] < result.eval_history[0]["eval_loss"]
    assert result.metrics["eval_accuracy"] == 1.0
    assert result.metrics["eval_macro_f1"] == 1.0


def test_metrics_and_metadata(trained: tuple[TrainConfig, TrainResult]) -> None:
    config, result = trained
    assert set(result.metrics) == {
        "eval_loss",
        "eval_accuracy",
        "eval_macro_f1",
        "train_seconds",
        "train_samples_per_second",
    }
    assert result.metrics["eval_loss"] == result.eval_history[-1]["eval_loss"]
    assert result.metrics["train_samples_per_second"] == pytest.approx(4 * 48 / result.metrics["train_seconds"])
    assert json.loads(Path(config.metrics_path).read_text()) == result.metrics
    assert result.model_metadata == {
        "framework": "transformers",
        "format": "hf-safetensors",
        "base_model": "tiny",
        "num_labels": 2,
        "labels": ["neg", "pos"],
        "train_rows": 48,
        "max_length": 16,
    }


def test_saved_model_dir_reloads_and_predicts(trained: tuple[TrainConfig, TrainResult], toy_splits) -> None:
    config, _ = trained
    model_dir = Path(config.model_dir)
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    assert json.loads((model_dir / "label_map.json").read_text()) == {"labels": ["neg", "pos"]}
    assert not list(model_dir.parent.glob(".model.*")), "the staging dir was left behind"

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.label2id == {"neg": 0, "pos": 1}
    assert tokenizer.model_max_length == 16
    eval_frame = pd.read_parquet(toy_splits[1])
    with torch.inference_mode():
        logits = model(
            **tokenizer(eval_frame["text"].tolist(), padding=True, truncation=True, return_tensors="pt")
        ).logits
    predicted = [model.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert predicted == eval_frame["label"].tolist()


def test_curves_page_is_self_contained(trained: tuple[TrainConfig, TrainResult]) -> None:
    config, result = trained
    page = Path(config.curves_path).read_text()
    assert page.count("<svg") == 3
    assert "<script" not in page and "src=" not in page and "href=" not in page
    train_loss_points = re.search(r'<polyline class="series"[^>]*points="([^"]*)"', page).group(1).split()
    assert len(train_loss_points) == len(result.train_loss)


def test_same_seed_gives_identical_weights(toy_splits, tmp_path: Path) -> None:
    def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
        config = tiny_config(*toy_splits, tmp_path / name, max_steps=4, seed=seed)
        train_text_classifier(config)
        return load_file(Path(config.model_dir) / "model.safetensors")

    first, second, other_seed = weights("a", 7), weights("b", 7), weights("c", 8)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["classifier.weight"], other_seed["classifier.weight"])


def test_cli_prints_katib_metric_lines(toy_splits, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(*toy_splits, tmp_path, max_steps=7)  # 6 steps per epoch: one full epoch and one of 1 step
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(asdict(config)))
    assert main(["--config", str(config_file)]) == 0
    matches = [KATIB_LINE.match(line) for line in capsys.readouterr().out.splitlines()]
    metrics = [(match[1], match[2], match[3]) for match in matches if match]
    names = [name for _, name, _ in metrics]
    assert names == ["epoch", "train_loss", "eval_loss", "eval_accuracy", "eval_macro_f1", "train_seconds"] * 2
    assert [float(value) for _, name, value in metrics if name == "epoch"] == [1, 2]
    times = [datetime.fromisoformat(time) for time, _, _ in metrics]  # Go's time.RFC3339Nano parses these too
    assert all(time.tzinfo is not None for time in times) and times == sorted(times)
    assert (Path(config.model_dir) / "model.safetensors").is_file()


def test_cli_accepts_inline_json_and_rejects_unknown_fields(tmp_path: Path, capsys) -> None:
    config = json.dumps({"train_path": "t", "eval_path": "e", "model_dir": "m", "learning_rte": 0.1})
    assert main(["--config", config]) == 1
    assert "unknown fields ['learning_rte']" in capsys.readouterr().err
    assert main(["--config", json.dumps({"train_path": "t", "eval_path": "e", "model_dir": "m", "epochs": "3"})]) == 1
    assert "field 'epochs' must be int, got '3'" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "absent.json")]) == 1
    assert "cannot read config file" in capsys.readouterr().err


def test_real_minilm_weights_train_two_steps(toy_splits, tmp_path: Path) -> None:
    config = tiny_config(*toy_splits, tmp_path, base_model="minilm", max_steps=2, learning_rate=5e-5)
    result = train_text_classifier(config)
    assert len(result.train_loss) == 2
    saved = json.loads((Path(config.model_dir) / "config.json").read_text())
    assert (saved["hidden_size"], saved["num_hidden_layers"]) == (384, 6)
    assert saved["id2label"] == {"0": "neg", "1": "pos"}


# --- bad input -------------------------------------------------------------------------------------------


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path)
    return path


def test_missing_column_names_the_column_and_file(toy_splits, tmp_path: Path) -> None:
    bad = write(pd.DataFrame({"body": ["a b"], "label": ["pos"]}), tmp_path / "bad.parquet")
    with pytest.raises(
        TrainError, match=rf"{re.escape(str(bad))} has no column 'text'; its columns are \['body', 'label'\]"
    ):
        train_text_classifier(tiny_config(bad, toy_splits[1], tmp_path))
    with pytest.raises(TrainError, match=r"has no column 'sentiment'"):
        train_text_classifier(tiny_config(*toy_splits, tmp_path, label_column="sentiment"))


def test_eval_label_unknown_to_train_split_is_named(toy_splits, tmp_path: Path) -> None:
    bad_eval = write(
        pd.DataFrame({"text": ["good", "so so", "fine"], "label": ["pos", "neutral", "mixed"]}), tmp_path / "e.parquet"
    )
    with pytest.raises(
        LabelError, match=r"e.parquet column 'label' has labels not in the train split: 'mixed', 'neutral'"
    ):
        train_text_classifier(tiny_config(toy_splits[0], bad_eval, tmp_path))
    assert not (tmp_path / "model").exists()


def test_bad_rows_and_files_are_named(tmp_path: Path) -> None:
    null_text = write(pd.DataFrame({"text": ["a", None, "c"], "label": ["x", "y", "x"]}), tmp_path / "n.parquet")
    with pytest.raises(TrainError, match=r"n.parquet column 'text' is empty at rows \[1\]"):
        read_text_dataset(str(null_text), "text", "label")
    numbers = write(pd.DataFrame({"text": [1, 2], "label": ["x", "y"]}), tmp_path / "i.parquet")
    with pytest.raises(TrainError, match=r"i.parquet column 'text' has dtype int64; texts must be strings"):
        read_text_dataset(str(numbers), "text", "label")
    empty = write(
        pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)}), tmp_path / "z.parquet"
    )
    with pytest.raises(TrainError, match=r"z.parquet has no rows"):
        read_text_dataset(str(empty), "text", "label")
    not_parquet = tmp_path / "data.csv"
    not_parquet.write_text("text,label\na,b\n")
    with pytest.raises(TrainError, match=r"data.csv is not a readable Parquet file"):
        read_text_dataset(str(not_parquet), "text", "label")
    with pytest.raises(TrainError, match=r"absent.parquet is not a readable Parquet file"):
        read_text_dataset(str(tmp_path / "absent.parquet"), "text", "label")


def test_bad_settings_are_named(toy_splits, tmp_path: Path) -> None:
    config = tiny_config(*toy_splits, tmp_path)
    for field, value, message in [
        ("batch_size", 0, "batch_size must be at least 1"),
        ("learning_rate", 0.0, "learning_rate must be positive"),
        ("warmup_ratio", 1.0, r"warmup_ratio must be in \[0, 1\)"),
        ("epochs", 0, "epochs must be at least 1"),
    ]:
        with pytest.raises(TrainError, match=message):
            train_text_classifier(replace(config, **{field: value}))


def test_unknown_base_model_fails_before_any_output(toy_splits, tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match=r"base_model 'bert-large' is neither 'minilm', 'tiny' nor a local"):
        train_text_classifier(tiny_config(*toy_splits, tmp_path, base_model="bert-large"))
    assert list(tmp_path.iterdir()) == []


def test_existing_model_dir_is_left_untouched(toy_splits, tmp_path: Path) -> None:
    existing = tmp_path / "model"
    existing.mkdir()
    (existing / "keep.txt").write_text("earlier run")
    with pytest.raises(TrainError, match=r"already exists and is not an empty directory"):
        train_text_classifier(tiny_config(*toy_splits, tmp_path))
    assert (existing / "keep.txt").read_text() == "earlier run"


def test_empty_model_dir_made_by_the_runner_is_filled(toy_splits, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    train_text_classifier(tiny_config(*toy_splits, tmp_path, max_steps=1))
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_hyperparameters_override_named_fields_and_are_checked(tmp_path):
    config = TrainConfig(train_path="t.parquet", eval_path="e.parquet", model_dir=str(tmp_path / "m"))
    tuned = config.with_overrides('{"learning_rate": 0.0003, "batch_size": 16}')
    assert (tuned.learning_rate, tuned.batch_size, tuned.epochs) == (0.0003, 16, config.epochs)
    with pytest.raises(TrainError, match=r"hyperparameters has unknown fields \['learnig_rate'\]"):
        config.with_overrides('{"learnig_rate": 0.1}')
    with pytest.raises(TrainError, match="hyperparameters field 'batch_size' must be"):
        config.with_overrides('{"batch_size": "big"}')
