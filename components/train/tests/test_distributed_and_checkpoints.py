"""Data-parallel training (torchrun, gloo), gradient accumulation, checkpoints and resume, early stopping."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from components.train.checkpoints import latest_checkpoint
from components.train.text_trainer import TrainConfig, TrainError, TrainResult, run_training, train_text_classifier

ROOT = Path(__file__).resolve().parents[3]


def config_for(model: Path | str, splits: tuple[Path, Path], out: Path, **overrides: object) -> TrainConfig:
    fields: dict[str, object] = {
        "train_path": str(splits[0]),
        "eval_path": str(splits[1]),
        "model_dir": str(out / "model"),
        "result_path": str(out / "result.json"),
        "base_model": str(model),
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "max_length": 16,
        "num_threads": 1,
        "num_processes": 1,
        "precision": "fp32",
        "device": "cpu",  # the same arithmetic on both sides of a comparison, also on a machine with a GPU
    }
    fields.update(overrides)
    return TrainConfig(**fields)


def train_cli(config: TrainConfig, folder: Path) -> subprocess.Popen:
    config_file = folder / "config.json"
    config_file.write_text(json.dumps(asdict(config)))
    command = [sys.executable, "-m", "components.train.text_trainer", "--config", str(config_file)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def weights(config: TrainConfig) -> dict[str, torch.Tensor]:
    return load_file(Path(config.model_dir) / "model.safetensors")


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], atol: float) -> None:
    assert first.keys() == second.keys()
    worst = max((first[name] - second[name]).abs().max().item() for name in first)
    assert worst <= atol, f"largest weight difference {worst}"


def test_two_gloo_processes_match_one_process(dropout_free_model, toy_splits, tmp_path: Path) -> None:
    # 48 rows, global batch 8 of which each process gets 4; the same batches in the same order on both sides.
    one = config_for(dropout_free_model, toy_splits, tmp_path / "one")
    two = config_for(dropout_free_model, toy_splits, tmp_path / "two", num_processes=2)
    single = train_text_classifier(one)
    double = run_training(two)  # torchrun, two gloo processes
    assert [step for step, _ in double.train_loss] == list(range(1, 13))
    assert [loss for _, loss in double.train_loss] == pytest.approx([loss for _, loss in single.train_loss], rel=1e-4)
    assert double.eval_history[-1]["eval_loss"] == pytest.approx(single.eval_history[-1]["eval_loss"], rel=1e-4)
    assert TrainResult.from_json(Path(two.result_path).read_text()) == double
    assert_same_weights(weights(one), weights(two), atol=1e-4)
    initial = load_file(dropout_free_model / "model.safetensors")["classifier.weight"]
    assert (weights(two)["classifier.weight"] - initial).abs().max() > 1e-3  # it did train


def test_gradient_accumulation_matches_one_large_batch(dropout_free_model, toy_splits, tmp_path: Path) -> None:
    whole = config_for(dropout_free_model, toy_splits, tmp_path / "whole", max_steps=4)
    accumulated = replace(
        whole, model_dir=str(tmp_path / "acc" / "model"), result_path=None, gradient_accumulation_steps=3
    )
    train_text_classifier(whole)
    train_text_classifier(accumulated)
    assert_same_weights(weights(whole), weights(accumulated), atol=1e-5)


def test_killed_run_resumes_from_its_latest_checkpoint(toy_splits, tmp_path: Path, capsys) -> None:
    config = config_for("tiny", toy_splits, tmp_path, base_model="tiny", max_steps=120, checkpoint_every=5)
    checkpoints = config.checkpoint_path
    first = train_cli(config, tmp_path)
    deadline = time.monotonic() + 120
    while latest_checkpoint(checkpoints) is None:
        assert first.poll() is None, f"training ended before its first checkpoint: {first.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)  # polling interval, not synchronisation: the loop waits for the checkpoint itself
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not Path(config.model_dir).exists(), "the run finished before it was killed"
    killed_at = int(latest_checkpoint(checkpoints).name.split("-")[1])

    result = train_text_classifier(config)  # started again: it resumes
    resumed_at = int(capsys.readouterr().out.split("resumed from checkpoint ")[1].split(" at step ")[1].split()[0])
    assert resumed_at >= killed_at and resumed_at % 5 == 0
    assert [step for step, _ in result.train_loss] == list(range(1, 121))
    assert result.eval_history[-1]["epoch"] == 20  # 120 steps of 6 per epoch
    reloaded = AutoModelForSequenceClassification.from_pretrained(config.model_dir, local_files_only=True)
    assert reloaded.config.id2label == {0: "neg", 1: "pos"}

    # The same run without interruption ends with the same weights: model, optimizer, schedule and RNG came back.
    uninterrupted = replace(config, model_dir=str(tmp_path / "straight"), result_path=None, checkpoint_every=0)
    train_text_classifier(uninterrupted)
    assert_same_weights(weights(config), weights(uninterrupted), atol=1e-6)


def test_checkpoints_are_pruned_and_partial_ones_removed(toy_splits, tmp_path: Path) -> None:
    config = config_for("tiny", toy_splits, tmp_path, base_model="tiny", max_steps=5, checkpoint_every=1)
    partial = config.checkpoint_path / ".step-00000099.partial"
    partial.mkdir(parents=True)
    train_text_classifier(config)
    assert sorted(path.name for path in config.checkpoint_path.iterdir()) == ["step-00000003", "step-00000004"]
    assert {path.name for path in (config.checkpoint_path / "step-00000004").iterdir()} == {
        "model.safetensors",
        "optimizer.safetensors",
        "rng-rank0.safetensors",
        "state.json",
    }
    state = json.loads((config.checkpoint_path / "step-00000004" / "state.json").read_text())
    assert state["step"] == 4 and state["state"]["epoch_step"] == 4


def test_a_checkpoint_of_other_settings_is_refused(toy_splits, tmp_path: Path) -> None:
    config = config_for("tiny", toy_splits, tmp_path, base_model="tiny", max_steps=3, checkpoint_every=2)
    train_text_classifier(config)
    changed = replace(
        config, model_dir=str(tmp_path / "other"), checkpoint_dir=str(config.checkpoint_path), learning_rate=5e-4
    )
    with pytest.raises(TrainError, match=r"written by a run with other settings \(learning_rate: 0.001 -> 0.0005\)"):
        train_text_classifier(changed)
    assert not (tmp_path / "other").exists()


def test_early_stopping_on_eval_accuracy(toy_splits, tmp_path: Path, capsys) -> None:
    config = config_for(
        "tiny",
        toy_splits,
        tmp_path,
        base_model="tiny",
        epochs=30,
        learning_rate=1e-2,
        early_stopping_patience=2,
        early_stopping_metric="eval_accuracy",
    )
    result = train_text_classifier(config)
    accuracy = [row["eval_accuracy"] for row in result.eval_history]
    assert len(accuracy) < 30
    assert max(accuracy[-2:]) <= max(accuracy[:-2])  # the last two epochs did not improve on the best
    assert "early stopping after epoch" in capsys.readouterr().out


def test_bad_input_fails_before_processes_start(toy_splits, tmp_path: Path) -> None:
    config = config_for("tiny", toy_splits, tmp_path, base_model="tiny", num_processes=2, label_column="sentiment")
    with pytest.raises(TrainError, match=r"has no column 'sentiment'"):
        run_training(config)
    with pytest.raises(TrainError, match=r"gradient_accumulation_steps must be at least 1"):
        run_training(replace(config, label_column="label", gradient_accumulation_steps=0))
    assert list(tmp_path.iterdir()) == []
