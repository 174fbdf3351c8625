"""Fit a drift detector on reference (training) data and save it as a directory artifact.

The detector is saved to a temporary sibling directory and renamed into place last, so a detector
directory that exists is complete. See :mod:`components.drift.detectors` for what it tests.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from components.drift.detectors import (
    DEFAULT_BACKEND,
    DetectorSettings,
    DriftColumns,
    DriftInputError,
    create_detector,
    read_manifest,
)

MIN_REFERENCE_ROWS = 20


def read_reference(path: str) -> pd.DataFrame:
    """A Parquet file or a directory of Parquet files; the index is the row number."""
    if not Path(path).exists():
        raise DriftInputError(f"reference data {path} does not exist")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise DriftInputError(f"cannot read the reference data {path} as Parquet: {error}") from error
    if frame.empty:
        raise DriftInputError(f"reference data {path} has no rows")
    return frame.reset_index(drop=True)


def fit_drift_detector(
    reference_path: str,
    detector_dir: str,
    columns: DriftColumns,
    settings: DetectorSettings,
    *,
    max_reference_rows: int = 5000,
    backend: str = DEFAULT_BACKEND,
) -> dict[str, Any]:
    """Fit on (a seeded sample of at most ``max_reference_rows`` of) the reference data, save, return metadata."""
    target = Path(detector_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DriftInputError(f"detector directory {target} already exists and is not empty")
    if max_reference_rows < MIN_REFERENCE_ROWS:
        raise DriftInputError(f"max_reference_rows must be at least {MIN_REFERENCE_ROWS}, got {max_reference_rows}")
    detector = create_detector(columns, settings, backend)
    reference = read_reference(reference_path)
    if len(reference) > max_reference_rows:
        reference = reference.sample(n=max_reference_rows, random_state=settings.seed).sort_index()
    detector.fit(reference)
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        detector.save(staging)
        if target.exists():
            target.rmdir()  # checked empty above
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = read_manifest(target)
    return {
        "framework": manifest["backend"],
        "format": "drift-detector",
        "tests": sorted(manifest["tests"]),
        "columns": manifest["columns"],
        "p_val": settings.p_val,
        "reference_rows": manifest["reference_rows"],
        "versions": manifest["versions"],
    }
