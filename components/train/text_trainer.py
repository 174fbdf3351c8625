"""Fine-tune a text classifier: a plain torch loop over two Parquet splits, saved as a Hugging Face model dir.

Run by the ``train`` component, or on its own (e.g. as a Katib trial or under torchrun)::

    python -m components.train.text_trainer --config config.json        # or --config '{"train_path": ...}'

Each epoch's eval metrics are printed as ``name=value`` lines, the format of Katib's StdOut collector.
"""
# ruff: noqa: E402

from __future__ import annotations

import os

# Nothing is downloaded: huggingface_hub reads this once, when it is first imported.
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse
import dataclasses
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from components.train.labels import LabelMap, label_names
from components.train.models import load_base_model
from components.train.report import curves_page

WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0


class TrainError(ValueError):
    """Bad training input or configuration; the message names the file, column, row or field."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    ``max_steps > 0`` overrides ``epochs``; ``num_threads == 0`` keeps torch's default. ``curves_path`` and
    ``metrics_path`` (a JSON object of the final metrics) are written only when given.
    """

    train_path: str
    eval_path: str
    model_dir: str
    curves_path: str | None = None
    metrics_path: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    base_model: str = "minilm"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    max_steps: int = -1
    warmup_ratio: float = 0.1
    seed: int = 42
    num_threads: int = 0

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """A config from a JSON object: the text itself, or the path of a file holding it."""
        source = "--config"
        if not text.lstrip().startswith("{"):
            source = text
            try:
                text = Path(text).read_text()
            except OSError as error:
                raise TrainError(f"cannot read config file {source}: {error}") from error
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise TrainError(f"{source} is not valid JSON: {error}") from error
        if not isinstance(fields, dict):
            raise TrainError(f"{source} must be a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(fields.keys() - known)
        if unknown:
            raise TrainError(f"{source} has unknown fields {unknown}; known fields: {sorted(known)}")
        missing = sorted(name for name in ("train_path", "eval_path", "model_dir") if name not in fields)
        if missing:
            raise TrainError(f"{source} lacks required fields {missing}")
        for field in dataclasses.fields(cls):
            if field.name in fields and not _has_type(fields[field.name], field.type):
                raise TrainError(f"{source} field {field.name!r} must be {field.type}, got {fields[field.name]!r}")
        return cls(**fields)

    def check(self) -> None:
        """Raise :class:`TrainError` naming the first field out of range."""
        if self.max_steps <= 0 and self.epochs < 1:
            raise TrainError(f"epochs must be at least 1 (or max_steps > 0), got {self.epochs}")
        if self.batch_size < 1:
            raise TrainError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise TrainError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.max_length < 2:
            raise TrainError(f"max_length must be at least 2, got {self.max_length}")
        if not 0 <= self.warmup_ratio < 1:
            raise TrainError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.num_threads < 0:
            raise TrainError(f"num_threads must be 0 (torch's default) or more, got {self.num_threads}")


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    """Final ``eval_loss``, ``eval_accuracy``, ``eval_macro_f1``; ``train_seconds``, ``train_samples_per_second``."""
    model_metadata: dict[str, object]
    train_loss: list[tuple[int, float]]
    """(optimizer step, loss) for every step."""
    eval_history: list[dict[str, float]]
    """One row per epoch: ``epoch``, ``train_loss`` (the epoch's mean) and the ``eval_*`` metrics."""


@dataclass(frozen=True)
class TextDataset:
    path: str
    texts: list[str]
    labels: list[str]


def read_text_dataset(path: str, text_column: str, label_column: str) -> TextDataset:
    """The text and label columns of one Parquet file; errors name the file, the column and bad rows."""
    if text_column == label_column:
        raise TrainError(f"text_column and label_column are both {text_column!r}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise TrainError(f"{path} is not a readable Parquet file: {error}") from error
    for column in (text_column, label_column):
        if column not in schema.names:
            raise TrainError(f"{path} has no column {column!r}; its columns are {schema.names}")
    frame = pq.read_table(path, columns=[text_column, label_column]).to_pandas()
    if frame.empty:
        raise TrainError(f"{path} has no rows")
    texts = frame[text_column]
    null_rows = texts.index[texts.isna()].tolist()
    if null_rows:
        raise TrainError(f"{path} column {text_column!r} is empty at rows {null_rows[:10]}")
    if not pd.api.types.is_string_dtype(texts):
        raise TrainError(f"{path} column {text_column!r} has dtype {texts.dtype}; texts must be strings")
    labels = label_names(frame[label_column], f"{path} column {label_column!r}")
    return TextDataset(path, texts.tolist(), labels)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_text_classifier(config: TrainConfig) -> TrainResult:
    """Fine-tune ``config.base_model`` on the train split, evaluate each epoch, save the model dir last."""
    config.check()
    model_dir = Path(config.model_dir)
    _check_output_dir(model_dir)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    train_data = read_text_dataset(config.train_path, config.text_column, config.label_column)
    eval_data = read_text_dataset(config.eval_path, config.text_column, config.label_column)
    label_map = LabelMap.from_train_labels(train_data.labels)
    train_ids = label_map.encode(train_data.labels, f"{train_data.path} column {config.label_column!r}")
    eval_ids = label_map.encode(eval_data.labels, f"{eval_data.path} column {config.label_column!r}")

    seed_everything(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_base_model(config.base_model, label_map)
    model.to(device)

    def collate(batch: Sequence[tuple[str, int]]) -> dict[str, torch.Tensor]:
        texts, ids = zip(*batch)
        encoded = tokenizer(
            list(texts), padding="longest", truncation=True, max_length=config.max_length, return_tensors="pt"
        )
        encoded["labels"] = torch.tensor(ids)
        return dict(encoded)

    train_loader = DataLoader(
        list(zip(train_data.texts, train_ids)),
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        collate_fn=collate,
    )
    eval_loader = DataLoader(list(zip(eval_data.texts, eval_ids)), batch_size=config.batch_size, collate_fn=collate)
    total_steps = config.max_steps if config.max_steps > 0 else config.epochs * len(train_loader)
    optimizer = _optimizer(model, config.learning_rate, fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)

    train_loss: list[tuple[int, float]] = []
    eval_history: list[dict[str, float]] = []
    train_seconds = 0.0
    samples = 0
    step = 0
    epoch = 0
    while step < total_steps:
        epoch += 1
        model.train()
        started = time.perf_counter()
        epoch_losses: list[torch.Tensor] = []
        for batch in train_loader:
            batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
            with _autocast(device):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_losses.append(loss.detach())
            samples += len(batch["labels"])
            step += 1
            if step == total_steps:
                break
        losses = torch.stack(epoch_losses).float().tolist()  # one device sync per epoch, not per step
        train_seconds += time.perf_counter() - started
        train_loss.extend(zip(range(step - len(losses) + 1, step + 1), losses))
        scores = _evaluate(model, eval_loader, device)
        row = {"epoch": epoch, "train_loss": sum(losses) / len(losses), **scores}
        eval_history.append(row)
        print("\n".join(f"{name}={value:.6g}" for name, value in row.items()), flush=True)

    metrics = {
        **{name: eval_history[-1][name] for name in ("eval_loss", "eval_accuracy", "eval_macro_f1")},
        "train_seconds": train_seconds,
        "train_samples_per_second": samples / train_seconds,
    }
    metadata: dict[str, object] = {
        "framework": "transformers",
        "format": "hf-safetensors",
        "base_model": config.base_model,
        "num_labels": len(label_map.labels),
        "labels": list(label_map.labels),
        "train_rows": len(train_data.texts),
        "max_length": config.max_length,
    }
    tokenizer.model_max_length = config.max_length  # so inference truncates as training did
    _save_model_dir(model, tokenizer, label_map, model_dir)
    result = TrainResult(metrics, metadata, train_loss, eval_history)
    if config.curves_path:
        _write_text(
            Path(config.curves_path),
            curves_page(
                f"Training {config.base_model} on {len(train_data.texts)} rows",
                train_loss,
                eval_history,
                {**metrics, "device": device.type, "steps": step, "labels": len(label_map.labels)},
            ),
        )
    if config.metrics_path:
        _write_text(Path(config.metrics_path), json.dumps(metrics, indent=2) + "\n")
    return result


def _has_type(value: object, annotation: str) -> bool:
    if isinstance(value, bool):
        return False
    return {
        "str": isinstance(value, str),
        "str | None": value is None or isinstance(value, str),
        "int": isinstance(value, int),
        "float": isinstance(value, (int, float)),
    }[annotation]


def _optimizer(model: PreTrainedModel, learning_rate: float, fused: bool) -> torch.optim.AdamW:
    # The usual BERT recipe: no weight decay on biases and LayerNorm weights.
    decayed = [p for name, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in name]
    undecayed = [p for name, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in name)]
    groups = [{"params": decayed, "weight_decay": WEIGHT_DECAY}, {"params": undecayed, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused, foreach=not fused)


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.inference_mode()
def _evaluate(model: PreTrainedModel, loader: DataLoader, device: torch.device) -> dict[str, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    predictions: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for batch in loader:
        labels = batch.pop("labels").to(device)
        with _autocast(device):
            logits = model(**{name: tensor.to(device) for name, tensor in batch.items()}).logits
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        predictions.append(logits.argmax(dim=-1))
        targets.append(labels)
    predicted = torch.cat(predictions).cpu().numpy()
    expected = torch.cat(targets).cpu().numpy()
    return {
        "eval_loss": loss_sum.item() / len(expected),
        "eval_accuracy": float((predicted == expected).mean()),
        "eval_macro_f1": float(f1_score(expected, predicted, average="macro", zero_division=0)),
    }


def _check_output_dir(model_dir: Path) -> None:
    if model_dir.exists() and not (model_dir.is_dir() and not any(model_dir.iterdir())):
        raise TrainError(f"model output {model_dir} already exists and is not an empty directory")


def _save_model_dir(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, label_map: LabelMap, model_dir: Path
) -> None:
    """Write into a temporary sibling, then rename: a model dir that exists is always complete."""
    _check_output_dir(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the model dir is meant to be read by others
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        label_map.save(staging)
        for file in staging.iterdir():
            file.chmod(0o644)  # some writers make private files; serving may run as another user
        if model_dir.exists():
            model_dir.rmdir()
        os.replace(staging, model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune a text classifier on Parquet splits.")
    parser.add_argument("--config", required=True, help="a JSON object of TrainConfig fields, or a file holding one")
    args = parser.parse_args(argv)
    try:
        train_text_classifier(TrainConfig.from_json(args.config))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
