"""Training checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint is a directory ``step-00000120/`` in the checkpoint dir holding ``model.safetensors``,
``optimizer.safetensors`` (the optimizer's per-parameter state), ``rng-rank<r>.safetensors`` (each
process's torch CPU/CUDA generator states) and ``state.json`` (loop state, optimizer hyperparameters,
LR scheduler and grad scaler state). It is written into ``.step-00000120.partial/`` and renamed when
complete, so a ``step-*`` directory is always whole; a run killed while writing leaves only a partial
directory, which the next run deletes. Nothing is unpickled when loading.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, load_model, save_file, save_model

CHECKPOINT_NAME = re.compile(r"^step-(\d{8})$")
STATE_FILE = "state.json"
KEEP_CHECKPOINTS = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names its directory and the problem."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint with the highest step in ``directory``, or None."""
    if not directory.is_dir():
        return None
    complete = [
        path for path in directory.iterdir() if CHECKPOINT_NAME.match(path.name) and (path / STATE_FILE).is_file()
    ]
    return max(complete, key=lambda path: path.name, default=None)


def remove_partial_checkpoints(directory: Path) -> None:
    """Delete what a run killed mid-write left behind (call on one process, before training)."""
    if directory.is_dir():
        for path in directory.glob(".step-*.partial"):
            shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    directory: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    state: dict[str, Any],
    rank: int = 0,
    world_size: int = 1,
) -> Path:
    """Write the checkpoint of ``step``; every process calls this (each saves its RNG), process 0 writes the rest."""
    final = directory / checkpoint_name(step)
    staging = directory / f".{final.name}.partial"
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier(world_size)
    _save(_rng_state(), staging / f"rng-rank{rank}.safetensors")
    _barrier(world_size)
    if rank == 0:
        save_model(model, str(staging / "model.safetensors"))
        _fsync(staging / "model.safetensors")
        optimizer_state = optimizer.state_dict()
        _save(
            {
                f"{index}.{name}": value if isinstance(value, torch.Tensor) else torch.tensor(value)
                for index, values in optimizer_state["state"].items()
                for name, value in values.items()
            },
            staging / "optimizer.safetensors",
        )
        document = {
            "step": step,
            "world_size": world_size,
            "state": state,
            "optimizer_param_groups": optimizer_state["param_groups"],
            "scheduler": scheduler.state_dict(),
            "grad_scaler": scaler.state_dict(),
        }
        (staging / STATE_FILE).write_text(json.dumps(document, indent=1) + "\n")
        _fsync(staging / STATE_FILE)
        if final.exists():  # a resumed run can reach a step that an earlier, killed run also saved
            shutil.rmtree(final)
        os.replace(staging, final)
        _fsync(directory)
        for old in sorted(path for path in directory.iterdir() if CHECKPOINT_NAME.match(path.name))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(world_size)
    return final


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    rank: int = 0,
) -> dict[str, Any]:
    """Restore everything saved in ``path`` into the given objects; returns the loop state saved with it.

    A process whose rank has no RNG file (the run was restarted with more processes) keeps its seeded RNG.
    """
    try:
        document = json.loads((path / STATE_FILE).read_text())
        device = next(model.parameters()).device
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False, device=str(device))
        if missing or unexpected:
            raise CheckpointError(
                f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        optimizer_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in load_file(path / "optimizer.safetensors").items():
            index, name = key.split(".", 1)
            optimizer_state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": optimizer_state, "param_groups": document["optimizer_param_groups"]})
        scheduler.load_state_dict(document["scheduler"])
        scaler.load_state_dict(document["grad_scaler"])
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"cannot resume from checkpoint {path}: {error}") from error
    rng_file = path / f"rng-rank{rank}.safetensors"
    if rng_file.is_file():
        rng = load_file(rng_file)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return document["state"]


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, str(path))
    _fsync(path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()
