from __future__ import annotations

import numpy as np
import torch

from components.train.batching import BUCKET_BATCHES, MicroBatch, collate, epoch_batches, micro_batches


def lengths(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, 64, size=rows)


def test_every_row_once_per_epoch_and_only_the_last_batch_is_partial() -> None:
    batches = epoch_batches(lengths(1000), batch_size=32, seed=3, epoch=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    sizes = [len(batch) for batch in batches]
    assert sizes.count(32) == 31 and min(sizes) == 1000 - 31 * 32


def test_order_is_a_function_of_seed_and_epoch() -> None:
    text_lengths = lengths(500)
    first = [batch.tolist() for batch in epoch_batches(text_lengths, 16, seed=3, epoch=1)]
    assert first == [batch.tolist() for batch in epoch_batches(text_lengths, 16, seed=3, epoch=1)]
    assert first != [batch.tolist() for batch in epoch_batches(text_lengths, 16, seed=3, epoch=2)]
    assert first != [batch.tolist() for batch in epoch_batches(text_lengths, 16, seed=4, epoch=1)]


def test_length_bucketing_cuts_padding_but_keeps_batches_shuffled() -> None:
    text_lengths = lengths(32 * BUCKET_BATCHES * 4)
    batches = epoch_batches(text_lengths, 32, seed=0, epoch=1)
    padded = sum(len(batch) * text_lengths[batch].max() for batch in batches)
    shuffled = np.random.default_rng(0).permutation(len(text_lengths)).reshape(-1, 32)
    padded_unbucketed = sum(len(batch) * text_lengths[batch].max() for batch in shuffled)
    assert padded < 0.7 * padded_unbucketed
    longest = [int(text_lengths[batch].max()) for batch in batches]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_micro_batches_partition_the_global_batch_over_processes_and_steps() -> None:
    global_batch = np.arange(100, 130)
    shares = [micro_batches(global_batch, world_size=2, rank=rank, accumulation_steps=3) for rank in (0, 1)]
    assert all(len(share) == 3 for share in shares)
    rows = np.concatenate([part.rows for share in shares for part in share])
    assert sorted(rows.tolist()) == global_batch.tolist()
    assert all(part.weights.sum() == len(part.rows) for share in shares for part in share)


def test_a_process_without_rows_gets_a_zero_weight_filler() -> None:
    share = micro_batches(np.array([7, 8, 9]), world_size=2, rank=1, accumulation_steps=2)
    assert [part.rows.tolist() for part in share] == [[8], [7]]
    assert [part.weights.tolist() for part in share] == [[1.0], [0.0]]


def test_collate_pads_to_the_longest_row_rounded_up() -> None:
    token_ids = [[101, 5, 102], [101, 6, 7, 8, 102], [101, 102]]
    labels = np.array([0, 1, 0])
    batch = collate(token_ids, labels, MicroBatch(np.array([0, 2]), np.ones(2, np.float32)), 0, pad_to_multiple_of=1)
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [0, 0]
    wide = collate(token_ids, labels, MicroBatch(np.array([1]), np.ones(1, np.float32)), 0, pad_to_multiple_of=8)
    assert wide["input_ids"].shape == (1, 8) and wide["attention_mask"].sum() == 5
    assert wide["input_ids"].dtype == torch.long
