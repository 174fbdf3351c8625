"""Batches for training: length-bucketed global batches, split into per-process micro-batches, padded per batch.

The order of global batches is a pure function of (seed, epoch, text lengths, batch size): every process
computes the same list and takes its share of each global batch, so 1 process and N processes see the same
rows in the same optimizer steps, and a resumed run can skip the batches it has already done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Rows are sorted by length within buckets of this many global batches: little padding, still shuffled.
BUCKET_BATCHES = 50


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches (arrays of row indices) of one epoch.

    Rows are shuffled with a generator seeded by ``(seed, epoch)``, cut into buckets of ``BUCKET_BATCHES``
    batches, sorted by length (stable) within each bucket and cut into batches; then the batch order is
    shuffled. Only the last batch can be smaller than ``batch_size``.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    bucket_rows = batch_size * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), bucket_rows):
        bucket = order[start : start + bucket_rows]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches.extend(bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass(frozen=True)
class MicroBatch:
    rows: np.ndarray
    """Row indices; never empty."""
    weights: np.ndarray
    """1.0 for a real row, 0.0 for filler (a process whose share of a small batch is empty gets one filler row)."""


def micro_batches(global_batch: np.ndarray, world_size: int, rank: int, accumulation_steps: int) -> list[MicroBatch]:
    """This process's ``accumulation_steps`` micro-batches of one global batch.

    The batch (sorted by length) is cut into ``world_size * accumulation_steps`` contiguous parts; micro-step
    ``a`` of process ``r`` is part ``a * world_size + r``. Every process runs the same number of micro-steps,
    so collective operations stay in lockstep even when a part is empty.
    """
    parts = np.array_split(global_batch, world_size * accumulation_steps)
    chosen = [parts[step * world_size + rank] for step in range(accumulation_steps)]
    return [
        MicroBatch(part, np.ones(len(part), dtype=np.float32))
        if len(part)
        else MicroBatch(global_batch[:1], np.zeros(1, dtype=np.float32))
        for part in chosen
    ]


def collate(
    token_ids: list[list[int]],
    labels: np.ndarray,
    batch: MicroBatch,
    pad_token_id: int,
    pad_to_multiple_of: int,
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask`` (padded to the longest row, rounded up), ``labels``, ``weights``."""
    rows = [token_ids[i] for i in batch.rows]
    longest = max(len(row) for row in rows)
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "labels": torch.from_numpy(labels[batch.rows]),
        "weights": torch.from_numpy(batch.weights),
    }
