"""Sample artifact metadata as ingest and train write it, and a free local port."""

from __future__ import annotations

import socket

INGEST_METADATA = {
    "split": "train",
    "rows": 48,
    "rejected_rows": 0,
    "source_uris": ["gs://reviews/2026-01.csv", "gs://reviews/2026-02.csv"],
    "source_format": "csv",
    "format": "parquet",
    "sha256": "a" * 64,
    "schema_fingerprint": "b" * 64,
    "data_version": "c" * 64,
}
MODEL_METADATA = {
    "framework": "transformers",
    "format": "hf-safetensors",
    "base_model": "tiny",
    "num_labels": 2,
    "labels": ["neg", "pos"],
    "train_rows": 48,
    "max_length": 32,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
