"""The ``<RFC 3339 time> name=value`` metric lines that trainers print and Katib's StdOut collector reads.

Pure Python, for every image: the text and tabular trainers write them, tune_local reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone

# Katib's default filter, after the optional RFC 3339 time a trainer prints first.
METRIC_LINE = re.compile(r"(?:\S+ )?([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


def katib_metric_lines(row: Mapping[str, float]) -> str:
    """One ``<RFC 3339 time> name=value`` line per metric: Katib's StdOut collector takes a leading RFC 3339
    token as the observation's time, and medianstop orders a trial's observations by it (without one, every
    observation gets the zero time)."""
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return "\n".join(f"{now} {name}={value:.6g}" for name, value in row.items())
