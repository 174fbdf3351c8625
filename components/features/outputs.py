"""Writes a task's output file so that a failed task leaves nothing that looks like a result."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(partial_path)``, then renames the partial file to ``path``; removes it on failure."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    write_atomically(path, lambda partial: partial.write_text(json.dumps(data, indent=2, sort_keys=True)))
