"""Fine-tune a text classifier: a plain torch loop over two Parquet splits, saved as a Hugging Face model dir.

Run by the ``train`` component, or on its own (e.g. as a Katib trial)::

    python -m components.train.text_trainer --config config.json        # or --config '{"train_path": ...}'

With more than one process (``num_processes``; 0 means one per GPU), this entry point launches itself under
torchrun: ``python -m torch.distributed.run --nproc_per_node=N -m components.train.text_trainer --config ...``.
Each epoch's eval metrics are printed as ``<RFC 3339 time> name=value`` lines, the format of Katib's StdOut
collector (the time lets medianstop order a trial's observations).
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from components.train.batching import MicroBatch, collate, epoch_batches, micro_batches
from components.train.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from components.train.distributed import ProcessContext, resolve_num_processes, torchrun_command
from components.train.labels import LabelMap, label_names
from components.train.models import check_base_model, load_base_model
from components.train.report import curves_page
from components.tune.metric_lines import katib_metric_lines

WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
# Early-stopping metrics and whether larger is better.
STOPPING_METRICS = {"eval_loss": False, "eval_accuracy": True, "eval_macro_f1": True}
# Fields that may change between a killed run and its resumption; any other change makes a checkpoint stale.
RESTART_FIELDS = frozenset(
    {"model_dir", "curves_path", "metrics_path", "result_path", "checkpoint_dir", "checkpoint_every"}
    | {"num_processes", "num_threads", "compile", "device"}
)


class TrainError(ValueError):
    """Bad training input or configuration; the message names the file, column, row or field."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    ``batch_size`` is the global batch: rows per optimizer step, over all processes and accumulation steps.
    ``max_steps > 0`` overrides ``epochs``; ``num_threads == 0`` keeps torch's default. ``device`` "auto" trains
    on the GPUs when there are any. ``num_processes == 0`` starts one process per GPU (1 on CPU). ``checkpoint_every > 0``
    saves a checkpoint every that many steps into ``checkpoint_dir`` (default: ``<model_dir>.checkpoints``, a
    sibling of the model dir), and a run started again resumes from the latest one. ``curves_path``,
    ``metrics_path`` (a JSON object of the final metrics) and ``result_path`` (the whole :class:`TrainResult`
    as JSON) are written only when given.
    """

    train_path: str
    eval_path: str
    model_dir: str
    curves_path: str | None = None
    metrics_path: str | None = None
    result_path: str | None = None
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
    num_processes: int = 0
    device: str = "auto"
    gradient_accumulation_steps: int = 1
    precision: str = "auto"
    compile: bool = False
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    early_stopping_patience: int = 0
    early_stopping_metric: str = "eval_loss"

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
        return cls.from_fields(fields, source)

    @classmethod
    def from_fields(cls, fields: object, source: str) -> TrainConfig:
        """A config from a mapping of field names to JSON values, each checked; ``source`` names it in errors."""
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

    def with_overrides(self, hyperparameters: str) -> TrainConfig:
        """This config with the fields in a JSON object replaced, e.g. the best parameters of a tuning run."""
        try:
            overrides = json.loads(hyperparameters)
        except json.JSONDecodeError as error:
            raise TrainError(f"hyperparameters is not valid JSON: {error}") from error
        if not isinstance(overrides, dict):
            raise TrainError("hyperparameters must be a JSON object")
        return TrainConfig.from_fields({**dataclasses.asdict(self), **overrides}, "hyperparameters")

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
        for name in ("num_threads", "num_processes", "checkpoint_every", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise TrainError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.gradient_accumulation_steps < 1:
            raise TrainError(f"gradient_accumulation_steps must be at least 1, got {self.gradient_accumulation_steps}")
        if self.device not in DEVICES:
            raise TrainError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise TrainError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.early_stopping_metric not in STOPPING_METRICS:
            raise TrainError(
                f"early_stopping_metric must be one of {list(STOPPING_METRICS)}, got {self.early_stopping_metric!r}"
            )

    @property
    def checkpoint_path(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        model_dir = Path(self.model_dir)
        return model_dir.with_name(f"{model_dir.name}.checkpoints")


@dataclass(frozen=True)
class TrainResult:
    metrics: dict[str, float]
    """Final ``eval_loss``, ``eval_accuracy``, ``eval_macro_f1``; ``train_seconds``, ``train_samples_per_second``."""
    model_metadata: dict[str, object]
    train_loss: list[tuple[int, float]]
    """(optimizer step, loss) for every step."""
    eval_history: list[dict[str, float]]
    """One row per epoch: ``epoch``, ``train_loss`` (the epoch's mean), the ``eval_*`` metrics, and
    ``train_seconds`` (time in training steps so far)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TrainResult:
        fields = json.loads(text)
        return cls(
            metrics=fields["metrics"],
            model_metadata=fields["model_metadata"],
            train_loss=[(int(step), float(loss)) for step, loss in fields["train_loss"]],
            eval_history=fields["eval_history"],
        )


@dataclass(frozen=True)
class TextDataset:
    path: str
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Inputs:
    """Both splits, read and checked, with class ids from the train split's label map."""

    train: TextDataset
    eval: TextDataset
    label_map: LabelMap
    train_ids: np.ndarray
    eval_ids: np.ndarray


@dataclass
class LoopState:
    """Where the training loop is; saved in every checkpoint as JSON."""

    step: int = 0
    epoch: int = 0
    """Epochs finished (evaluated)."""
    epoch_step: int = 0
    """Steps done in the epoch in progress."""
    samples: int = 0
    train_seconds: float = 0.0
    train_loss: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    eval_history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best: float | None = None
    epochs_without_improvement: int = 0
    stopped_early: bool = False


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


def read_inputs(config: TrainConfig) -> Inputs:
    """Read and check both splits; raises before anything is trained or written."""
    train = read_text_dataset(config.train_path, config.text_column, config.label_column)
    evaluation = read_text_dataset(config.eval_path, config.text_column, config.label_column)
    label_map = LabelMap.from_train_labels(train.labels)
    train_ids = label_map.encode(train.labels, f"{train.path} column {config.label_column!r}")
    eval_ids = label_map.encode(evaluation.labels, f"{evaluation.path} column {config.label_column!r}")
    return Inputs(train, evaluation, label_map, np.array(train_ids), np.array(eval_ids))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_training(config: TrainConfig) -> TrainResult:
    """Train in this process, or launch torchrun with ``num_processes`` processes and collect rank 0's result.

    Inputs and settings are checked here first, so bad input fails with its own error and message before any
    process starts.
    """
    num_processes = resolve_num_processes(config.num_processes, config.device)
    if num_processes == 1 or ProcessContext.launched_by_torchrun():
        return train_text_classifier(config)
    config.check()
    gpus = torch.cuda.device_count() if config.device != "cpu" else 0
    if gpus and num_processes > gpus:
        raise TrainError(f"num_processes is {num_processes} but there are {gpus} GPUs; use one process per GPU (0)")
    _check_output_dir(Path(config.model_dir))
    check_base_model(config.base_model)
    read_inputs(config)
    with tempfile.TemporaryDirectory(prefix="train-launch-") as scratch:
        result_path = Path(scratch) / "result.json"
        config_path = Path(scratch) / "config.json"
        launched = dataclasses.replace(config, num_processes=num_processes, result_path=str(result_path))
        config_path.write_text(json.dumps(dataclasses.asdict(launched)))
        command = torchrun_command(num_processes, "components.train.text_trainer", ["--config", str(config_path)])
        returncode = subprocess.run(command, check=False).returncode
        if returncode != 0:
            raise TrainError(
                f"distributed training with {num_processes} processes failed (exit {returncode}): {command}"
            )
        result = TrainResult.from_json(result_path.read_text())
    if config.result_path:
        _write_text(Path(config.result_path), result.to_json())
    return result


def train_text_classifier(config: TrainConfig) -> TrainResult:
    """Train in this process (one rank of the group when launched by torchrun); rank 0 writes the outputs last."""
    config.check()
    context = ProcessContext.from_environment()
    model_dir = Path(config.model_dir)
    _check_output_dir(model_dir)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    inputs = read_inputs(config)
    device = context.device(config.device)
    precision = _resolve_precision(config.precision, device)
    with context.process_group(device):
        seed_everything(config.seed)
        model, tokenizer = load_base_model(config.base_model, inputs.label_map)
        model.to(device)
        state, steps = _train(config, context, device, precision, model, tokenizer, inputs)
    metrics = {
        **{name: state.eval_history[-1][name] for name in ("eval_loss", "eval_accuracy", "eval_macro_f1")},
        "train_seconds": state.train_seconds,
        "train_samples_per_second": state.samples / state.train_seconds if state.train_seconds else 0.0,
    }
    metadata: dict[str, object] = {
        "framework": "transformers",
        "format": "hf-safetensors",
        "base_model": config.base_model,
        "num_labels": len(inputs.label_map.labels),
        "labels": list(inputs.label_map.labels),
        "train_rows": len(inputs.train.texts),
        "max_length": config.max_length,
    }
    result = TrainResult(metrics, metadata, state.train_loss, state.eval_history)
    if not context.is_main:
        return result
    tokenizer.model_max_length = config.max_length  # so inference truncates as training did
    _save_model_dir(model, tokenizer, inputs.label_map, model_dir)
    if config.curves_path:
        summary = {
            **metrics,
            "device": device.type,
            "processes": context.world_size,
            "precision": precision,
            "steps": state.step,
            "planned_steps": steps,
            "stopped_early": state.stopped_early,
            "labels": len(inputs.label_map.labels),
        }
        title = f"Training {config.base_model} on {len(inputs.train.texts)} rows"
        _write_text(Path(config.curves_path), curves_page(title, state.train_loss, state.eval_history, summary))
    if config.metrics_path:
        _write_text(Path(config.metrics_path), json.dumps(metrics, indent=2) + "\n")
    if config.result_path:
        _write_text(Path(config.result_path), result.to_json())
    return result


def _train(
    config: TrainConfig,
    context: ProcessContext,
    device: torch.device,
    precision: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs: Inputs,
) -> tuple[LoopState, int]:
    """The training loop; returns its final state and the number of steps it was planned for."""
    train_tokens = tokenizer(inputs.train.texts, truncation=True, max_length=config.max_length)["input_ids"]
    eval_tokens = tokenizer(inputs.eval.texts, truncation=True, max_length=config.max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in train_tokens])
    pad_multiple = 8 if device.type == "cuda" else 1  # tensor-core friendly shapes, fewer compiled variants

    steps_per_epoch = math.ceil(len(train_tokens) / config.batch_size)
    total_steps = config.max_steps if config.max_steps > 0 else config.epochs * steps_per_epoch
    optimizer = _optimizer(model, config.learning_rate, fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    state = LoopState()
    fingerprint = {name: value for name, value in dataclasses.asdict(config).items() if name not in RESTART_FIELDS}
    checkpoint_dir = config.checkpoint_path
    if config.checkpoint_every:
        if context.is_main:
            remove_partial_checkpoints(checkpoint_dir)
        latest = latest_checkpoint(checkpoint_dir)
        if latest is not None:
            saved = load_checkpoint(latest, model, optimizer, scheduler, scaler, context.rank)
            _check_same_run(latest, saved.pop("config"), fingerprint)
            state = LoopState(**saved)
            state.train_loss = [(int(step), float(loss)) for step, loss in state.train_loss]
            if context.is_main:
                print(f"resumed from checkpoint {latest} at step {state.step}", flush=True)

    train_model: torch.nn.Module = model
    if context.distributed:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model, dynamic=True)  # one graph for every padded length and batch size
    autocast = _autocast(device, precision)
    pending_losses: list[tuple[int, int, torch.Tensor]] = []  # (step, rows, this process's loss sum)

    def flush_losses() -> None:
        """Sum the pending step losses over processes: one device sync and one collective, not one per step."""
        if not pending_losses:
            return
        sums = torch.stack([loss for _, _, loss in pending_losses])
        if context.distributed:
            dist.all_reduce(sums)
        state.train_loss.extend(
            (step, total / rows) for (step, rows, _), total in zip(pending_losses, sums.tolist(), strict=True)
        )
        pending_losses.clear()

    def train_step(global_batch: np.ndarray) -> torch.Tensor:
        loss_sum = torch.zeros((), device=device)
        parts = micro_batches(global_batch, context.world_size, context.rank, config.gradient_accumulation_steps)
        for index, part in enumerate(parts):
            batch = _to_device(
                collate(train_tokens, inputs.train_ids, part, tokenizer.pad_token_id, pad_multiple), device
            )
            # DDP averages gradients over processes: scale so the step's gradient is the mean over the global batch.
            syncing = index == len(parts) - 1 or not context.distributed
            with nullcontext() if syncing else train_model.no_sync():
                with autocast:
                    logits = train_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                row_losses = F.cross_entropy(logits.float(), batch["labels"], reduction="none") * batch["weights"]
                scaler.scale(row_losses.sum() * (context.world_size / len(global_batch))).backward()
            loss_sum += row_losses.detach().sum()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss_sum

    while state.step < total_steps and not state.stopped_early:
        epoch = state.epoch + 1
        epoch_first_step = state.step - state.epoch_step + 1
        model.train()
        started = time.perf_counter()
        for global_batch in epoch_batches(lengths, config.batch_size, config.seed, epoch)[state.epoch_step :]:
            if state.step == total_steps:
                break
            pending_losses.append((state.step + 1, len(global_batch), train_step(global_batch)))
            state.step += 1
            state.epoch_step += 1
            state.samples += len(global_batch)
            if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.step < total_steps:
                flush_losses()
                state.train_seconds += time.perf_counter() - started
                checkpoint_state = {**dataclasses.asdict(state), "config": fingerprint}
                save_checkpoint(
                    checkpoint_dir, state.step, model, optimizer, scheduler, scaler, checkpoint_state,
                    context.rank, context.world_size,
                )  # fmt: skip
                started = time.perf_counter()
        flush_losses()
        state.train_seconds += time.perf_counter() - started
        epoch_losses = [loss for step, loss in state.train_loss if step >= epoch_first_step]
        scores = _evaluate(model, eval_tokens, inputs.eval_ids, context, device, precision, config, tokenizer)
        row = {
            "epoch": epoch,
            "train_loss": sum(epoch_losses) / len(epoch_losses),
            **scores,
            "train_seconds": state.train_seconds,
        }
        state.eval_history.append(row)
        state.epoch, state.epoch_step = epoch, 0
        if context.is_main:
            print(katib_metric_lines(row), flush=True)
        if _update_early_stopping(state, config, row[config.early_stopping_metric]) and context.is_main:
            print(
                f"early stopping after epoch {epoch}: {config.early_stopping_metric} has not improved on "
                f"{state.best:.6g} for {state.epochs_without_improvement} epochs",
                flush=True,
            )
    return state, total_steps


def _update_early_stopping(state: LoopState, config: TrainConfig, value: float) -> bool:
    """Track the best value of the early-stopping metric; True when training should stop now."""
    larger_is_better = STOPPING_METRICS[config.early_stopping_metric]
    if state.best is None or (value > state.best if larger_is_better else value < state.best):
        state.best, state.epochs_without_improvement = value, 0
    else:
        state.epochs_without_improvement += 1
    patience = config.early_stopping_patience
    state.stopped_early = bool(patience) and state.epochs_without_improvement >= patience
    return state.stopped_early


def _check_same_run(checkpoint: Path, saved: dict[str, object], current: dict[str, object]) -> None:
    changed = sorted(name for name in current.keys() | saved.keys() if saved.get(name) != current.get(name))
    if changed:
        details = ", ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in changed)
        raise TrainError(
            f"checkpoint {checkpoint} was written by a run with other settings ({details}); "
            "use another checkpoint_dir or delete it"
        )


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise TrainError("precision 'fp16' needs a GPU; on CPU use 'fp32' or 'bf16'")
    return precision


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {name: tensor.pin_memory().to(device, non_blocking=True) for name, tensor in batch.items()}


def _has_type(value: object, annotation: str) -> bool:
    if annotation == "bool":
        return isinstance(value, bool)
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


@torch.inference_mode()
def _evaluate(
    model: PreTrainedModel,
    token_ids: list[list[int]],
    labels: np.ndarray,
    context: ProcessContext,
    device: torch.device,
    precision: str,
    config: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
) -> dict[str, float]:
    """Loss, accuracy and macro F1 over the whole eval split; each process scores a share, then they add up."""
    model.eval()
    num_labels = model.config.num_labels
    lengths = np.array([len(ids) for ids in token_ids])
    mine = np.argsort(lengths, kind="stable")[context.rank :: context.world_size]
    confusion = torch.zeros(num_labels * num_labels, dtype=torch.float64, device=device)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
    pad_multiple = 8 if device.type == "cuda" else 1
    for start in range(0, len(mine), config.batch_size):
        rows = mine[start : start + config.batch_size]
        part = MicroBatch(rows, np.ones(len(rows), dtype=np.float32))
        batch = _to_device(collate(token_ids, labels, part, tokenizer.pad_token_id, pad_multiple), device)
        with _autocast(device, precision):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss_sum += F.cross_entropy(logits.float(), batch["labels"], reduction="sum").double()
        cells = batch["labels"] * num_labels + logits.argmax(dim=-1)
        confusion += torch.bincount(cells, minlength=num_labels * num_labels).double()
    if context.distributed:
        dist.all_reduce(confusion)
        dist.all_reduce(loss_sum)
    return _scores(confusion.view(num_labels, num_labels).cpu().numpy(), loss_sum.item())


def _scores(confusion: np.ndarray, loss_sum: float) -> dict[str, float]:
    """Mean loss, accuracy and macro F1 (over the classes that occur as label or prediction, like scikit-learn)."""
    total = confusion.sum()
    true_positives = np.diag(confusion)
    support_plus_predicted = confusion.sum(axis=1) + confusion.sum(axis=0)
    present = support_plus_predicted > 0
    f1 = 2 * true_positives[present] / support_plus_predicted[present]
    return {
        "eval_loss": loss_sum / total,
        "eval_accuracy": float(true_positives.sum() / total),
        "eval_macro_f1": float(f1.mean()),
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
        run_training(TrainConfig.from_json(args.config))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
