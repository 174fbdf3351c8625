"""TFDV statistics throughput: the validate component's logic on a large generated table.

``.envs/validate/bin/python -m bench.tfdv_statistics [--rows 1000000] [--out bench/results/tfdv.md]``

Generates a seeded table of ``--rows`` rows × 20 columns (ints with and without nulls, floats,
bools, small-vocabulary strings, a high-cardinality id string, short and long free text), writes it
as Parquet in a temporary folder (not timed), and times, each in a fresh process: reading it the
way the component does (``read_dataset``), the component's ``compute_statistics`` (read + TFDV
in-memory statistics), and the baseline, read + ``DataFrame.describe(include="all")``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import CHILD_FLAG, Measurement, child_main, command_line, measure, sentences, write_report

MODULE = "bench.tfdv_statistics"
DEFAULT_OUT = "bench/results/tfdv.md"

COUNTRIES = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "NL", "SE", "PL", "MX", "KR"]
CHANNELS = ["web", "email", "chat", "phone", "store"]
PLANS = ["free", "basic", "pro", "enterprise"]
DEVICES = ["desktop", "mobile", "tablet", "tv"]
STATUSES = ["new", "open", "pending", "resolved", "closed", "escalated"]


def generate_frame(rows: int, seed: int) -> pd.DataFrame:
    """A seeded mixed-type table of ``rows`` rows and 20 columns, in the dtypes the component reads."""
    rng = np.random.default_rng(seed)
    titles = np.asarray(sentences(rng, 2000, 2, 6), dtype=object)
    comments = np.asarray(sentences(rng, 20_000, 5, 40), dtype=object)

    def pick(vocabulary: list[str] | np.ndarray) -> np.ndarray:
        return np.asarray(vocabulary, dtype=object)[rng.integers(0, len(vocabulary), rows)]

    def with_nulls(values: pd.api.extensions.ExtensionArray | np.ndarray, fraction: float) -> pd.Series:
        series = pd.Series(values)
        return series.mask(rng.random(rows) < fraction)

    return pd.DataFrame(
        {
            "id": pd.array(np.arange(rows), dtype="Int64"),
            "label": pd.array(rng.integers(0, 5, rows), dtype="Int64"),
            "user": pd.Series(np.arange(rows) % max(1, rows // 3)).map("user-{:07d}".format),
            "age": with_nulls(pd.array(rng.integers(18, 90, rows), dtype="Int64"), 0.02),
            "quantity": pd.array(rng.integers(1, 1000, rows), dtype="Int64"),
            "amount_cents": pd.array(rng.integers(0, 10_000_000, rows), dtype="Int64"),
            "price": np.round(rng.gamma(2.0, 30.0, rows), 2),
            "discount": with_nulls(np.round(rng.random(rows) * 0.5, 3), 0.1),
            "score": rng.normal(0.0, 1.0, rows),
            "latitude": np.round(rng.uniform(-90, 90, rows), 6),
            "longitude": np.round(rng.uniform(-180, 180, rows), 6),
            "is_active": pd.array(rng.random(rows) < 0.7, dtype="boolean"),
            "has_coupon": pd.array(rng.random(rows) < 0.2, dtype="boolean"),
            "country": pick(COUNTRIES),
            "channel": pick(CHANNELS),
            "plan": pick(PLANS),
            "device": pick(DEVICES),
            "status": pick(STATUSES),
            "title": pick(titles),
            "comment": with_nulls(pick(comments), 0.05),
        }
    )


# ---------------------------------------------------------------------------------------------
# Cases (each runs in a child process: setup untimed, the returned function timed)


def _read_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from components.validate.validation import read_dataset

    def run() -> dict[str, Any]:
        return {"rows": len(read_dataset(params["path"]))}

    return run


def _tfdv_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from components.validate.validation import compute_statistics

    def run() -> dict[str, Any]:
        statistics, skipped = compute_statistics(params["path"])
        dataset = statistics.datasets[0]
        return {"rows": dataset.num_examples, "features": len(dataset.features), "skipped": skipped}

    return run


def _describe_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from components.validate.validation import read_dataset

    def run() -> dict[str, Any]:
        frame = read_dataset(params["path"])
        description = frame.describe(include="all")
        return {"rows": len(frame), "features": description.shape[1]}

    return run


CASES = {"read": _read_case, "tfdv": _tfdv_case, "describe": _describe_case}


def run_benchmark(rows: int, seed: int, work: Path) -> tuple[int, list[tuple[str, str, Measurement]]]:
    """Generate, write, time every case; returns the Parquet size and each case's measurement."""
    print(f"generating {rows} rows ...", file=sys.stderr, flush=True)
    path = work / "data.parquet"
    generate_frame(rows, seed).to_parquet(path, index=False)
    results: list[tuple[str, str, Measurement]] = []
    for label, timed, name in [
        ("read only", "`read_dataset(path)`: Parquet → DataFrame", "read"),
        (
            "TFDV statistics (component)",
            "`compute_statistics(path)`: read + `tfdv.generate_statistics_from_dataframe`",
            "tfdv",
        ),
        ("baseline: pandas describe", '`read_dataset(path).describe(include="all")`', "describe"),
    ]:
        print(f"running {label} ...", file=sys.stderr, flush=True)
        m = measure(MODULE, name, {"path": str(path)})
        if m.details["rows"] != rows:
            raise RuntimeError(f"{label} saw {m.details['rows']} rows, the table has {rows}")
        results.append((label, timed, m))
        print(f"  {m.seconds:.1f} s, peak RSS {m.peak_rss_mib:.0f} MiB", file=sys.stderr, flush=True)
    return path.stat().st_size, results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CHILD_FLAG:
        child_main(CASES, argv)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="table rows; default 1000000")
    parser.add_argument("--seed", type=int, default=0, help="data seed; default 0")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"Markdown result table; default {DEFAULT_OUT}")
    parser.add_argument("--tmp-dir", default=None, help="where the temporary data goes; default the system temp dir")
    args = parser.parse_args(argv)
    if args.rows <= 0:
        parser.error(f"--rows must be positive, got {args.rows}")
    with tempfile.TemporaryDirectory(prefix="bench-tfdv-", dir=args.tmp_dir) as work:
        parquet_bytes, results = run_benchmark(args.rows, args.seed, Path(work))
    read_seconds = next(m.seconds for _, _, m in results if m.case == "read")
    table = [
        [
            label,
            timed,
            f"{m.seconds:.1f}",
            f"{m.cpu_seconds:.1f}",
            f"{args.rows / m.seconds:,.0f}",
            "–" if m.case == "read" else f"{m.seconds - read_seconds:.1f}",
            f"{m.rss_before_mib:.0f}",
            f"{m.peak_rss_mib:.0f}",
        ]
        for label, timed, m in results
    ]
    tfdv = next(m for _, _, m in results if m.case == "tfdv")
    write_report(
        args.out,
        "TFDV statistics throughput",
        f"One seeded table of {args.rows:,} rows × 20 columns (nullable ints, floats, nullable bools, small-vocabulary "
        "strings, a high-cardinality id string, short titles and free-text comments, some nulls), "
        f"{parquet_bytes / 1e6:,.0f} MB as Parquet, summarised by the validate component's logic "
        "(`components.validate.validation.compute_statistics`, TFDV's in-memory statistics) and, as the baseline, "
        "by pandas `describe(include=\"all\")` on the same DataFrame. Each case ran in a fresh process.",
        ["case", "timed", "seconds", "CPU s", "rows/s", "seconds minus read", "RSS before (MiB)", "peak RSS (MiB)"],
        table,
        [
            f"TFDV computed statistics for {tfdv.details['features']} features"
            + (f"; skipped {', '.join(tfdv.details['skipped'])}." if tfdv.details["skipped"] else "."),
            "seconds: wall time of the operation only, not interpreter start-up or imports; rows/s = rows / seconds "
            "(read included); seconds minus read = the statistics alone, less the read-only case.",
            "CPU s: user + system time of the child process (all threads) during the operation. CPU s well below "
            "seconds means the process waited: for cores busy with other work (see the CPU pressure above) or for I/O.",
            "peak RSS: the child process's high-water mark (`VmHWM`, read after the operation); "
            "RSS before: its resident set just before the timed operation, after importing "
            "`components.validate.validation` (which loads TensorFlow and TFDV) in every case.",
            "TFDV computes more than describe: missing and value counts per feature; mean, std, zeros, min, median, "
            "max and standard and quantile histograms for numbers; unique count, top values, rank histogram and "
            "average length for strings. describe gives count, unique/top/freq and mean/std/min/quartiles/max.",
            "The CPU cores are shared with other work, so expect some noise.",
        ],
        command_line(MODULE, argv),
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
