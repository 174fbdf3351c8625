"""Loads feature values from the offline store into the online store in resumable time-range chunks."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from components.features.outputs import write_json
from components.features.store import DEFAULT_CONFIG_FILE, FeatureStoreError, materialize_in_chunks, open_store


def parse_time(text: str, parameter: str) -> datetime:
    """An ISO-8601 time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise FeatureStoreError(f"{parameter}={text!r} is not an ISO-8601 time (e.g. 2024-05-01T00:00:00Z)") from error
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def run_materialize(
    report_path: str,
    start: str,
    end: str = "",
    *,
    chunk_hours: float = 24,
    feature_views: list[str] | None = None,
    resume: bool = True,
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = DEFAULT_CONFIG_FILE,
) -> dict[str, Any]:
    """Materializes ``[start, end]`` (``end`` empty: now) and writes one JSON record per chunk to ``report_path``.

    Returns the artifact metadata: the range, chunk counts, and how many (chunk, view) loads ran or were
    skipped as already done.
    """
    begin = parse_time(start, "start")
    finish = parse_time(end, "end") if end else datetime.now(timezone.utc)
    store = open_store(repo_path or None, state_dir=state_dir or None, config_file=config_file)
    started = time.monotonic()
    chunks = materialize_in_chunks(
        store, begin, finish, chunk_hours=chunk_hours, feature_views=feature_views or (), resume=resume
    )
    seconds = round(time.monotonic() - started, 3)
    write_json(
        report_path,
        [
            {
                "start": chunk.start.isoformat(),
                "end": chunk.end.isoformat(),
                "materialized": list(chunk.materialized),
                "skipped": list(chunk.skipped),
            }
            for chunk in chunks
        ],
    )
    return {
        "start": begin.isoformat(),
        "end": finish.isoformat(),
        "chunk_hours": chunk_hours,
        "chunks": len(chunks),
        "view_chunks_materialized": sum(len(chunk.materialized) for chunk in chunks),
        "view_chunks_skipped": sum(len(chunk.skipped) for chunk in chunks),
        "seconds": seconds,
        "format": "json",
    }
