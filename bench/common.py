"""Shared benchmark helpers: each case runs in a fresh child process so its peak RSS is its own.

A benchmark module calls :func:`measure` for each case; the child (``python -m <module> --child
CASE PARAMS``) runs :func:`child_main`, which times the case and prints one JSON line with its
``VmHWM`` (the kernel's high-water mark of the process's resident set) read after the case.
``VmHWM`` rather than ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` or ``wait4``: Linux carries the
high-water mark of the memory a child had before ``exec`` (a copy of the parent's, or the parent's
own with vfork) into ``ru_maxrss``, so it never reads below the parent's peak (a 500 MiB parent
gave a 13 MiB child an ``ru_maxrss`` of 514 MiB), whereas ``VmHWM`` belongs to the exec'd process.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_FLAG = "--child"
MB = 1_000_000  # throughput is in decimal megabytes (MB/s), as disks and networks quote it
MIB = 1 << 20
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "po", "ba", "shi", "ter", "an", "el", "or"]


class BenchmarkError(RuntimeError):
    """A benchmark case failed; the message names the case and carries the child's stderr."""


@dataclass(frozen=True)
class Measurement:
    """One case run in its own process."""

    case: str
    seconds: float  # the timed operation only, not interpreter start-up or imports
    cpu_seconds: float  # user + system CPU time of the child (all threads) during the operation
    peak_rss_bytes: int  # high-water mark of the whole child process
    rss_before_bytes: int  # resident set just before the timed operation (interpreter + imports)
    details: dict[str, Any]

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / MIB

    @property
    def rss_before_mib(self) -> float:
        return self.rss_before_bytes / MIB


def machine_description() -> dict[str, str]:
    """CPU model, usable cores, memory, OS and Python of this machine."""
    cpu_model = platform.processor() or "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model,
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{total_kib / (1 << 20):.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} ({sys.executable})",
        "load average (1, 5, 15 min) when written": ", ".join(f"{load:.1f}" for load in os.getloadavg()),
        "CPU pressure when written": _cpu_pressure(),
    }


def _cpu_pressure() -> str:
    """Share of recent time some runnable task waited for a CPU (Linux PSI), e.g. because of other work."""
    try:
        with open("/proc/pressure/cpu", encoding="utf-8") as pressure:
            fields = dict(item.split("=") for item in pressure.readline().split()[1:])
    except OSError:
        return "unavailable"
    return f"{fields['avg10']}% / {fields['avg60']}% / {fields['avg300']}% of the last 10 s / 60 s / 300 s"


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise BenchmarkError(f"/proc/self/status has no {field} field")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(module: str, case: str, params: dict[str, Any], env: dict[str, str] | None = None) -> Measurement:
    """Run ``case`` of benchmark ``module`` in a fresh Python process; its time, peak RSS and details."""
    command = [sys.executable, "-m", module, CHILD_FLAG, case, json.dumps(params)]
    done = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-4000:]
        raise BenchmarkError(f"case {case!r} exited with {done.returncode}:\n{tail}")
    try:
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as err:
        raise BenchmarkError(f"case {case!r} printed no JSON result; stdout was {done.stdout[-2000:]!r}") from err
    return Measurement(
        case=case,
        seconds=result.pop("seconds"),
        cpu_seconds=result.pop("cpu_seconds"),
        peak_rss_bytes=result.pop("peak_rss_bytes"),
        rss_before_bytes=result.pop("rss_before_bytes"),
        details=result,
    )


def child_main(cases: dict[str, Callable[[dict[str, Any]], dict[str, Any]]], argv: Sequence[str]) -> None:
    """The child side of :func:`measure`: ``argv`` is ``--child CASE PARAMS_JSON``.

    A case is ``setup(params) -> run``: the setup (imports, opening files) is not timed; ``run()``
    is, and returns the details to report (row counts, ...).
    """
    _, case, params = argv
    setup = cases[case]
    run = setup(json.loads(params))
    rss_before = _status_bytes("VmRSS")
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    details = run()
    seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
    measured = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": _status_bytes("VmHWM"),
    }
    print(json.dumps({**measured, **details}), flush=True)


def sentences(rng: Any, count: int, min_words: int, max_words: int) -> list[str]:
    """``count`` pseudo-English sentences from a NumPy ``Generator``; some carry commas and quotes."""
    vocabulary = ["".join(rng.choice(SYLLABLES, size=rng.integers(1, 4))) for _ in range(400)]
    made = []
    for _ in range(count):
        words = list(rng.choice(vocabulary, size=rng.integers(min_words, max_words + 1)))
        if rng.random() < 0.3:
            words[rng.integers(len(words))] += ","
        if rng.random() < 0.05:
            words[0] = f'"{words[0]}"'
        made.append(" ".join(words).capitalize())
    return made


def command_line(module: str, argv: Sequence[str]) -> str:
    """How this benchmark was run, with the interpreter relative to the repository when it is inside it."""
    python = Path(sys.executable)
    if python.is_relative_to(REPO_ROOT):
        python = python.relative_to(REPO_ROOT)
    return " ".join([str(python), "-m", module, *argv])


def write_report(
    path: str | os.PathLike[str],
    title: str,
    intro: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    command: str,
) -> None:
    """A Markdown report: title, the machine it ran on, the command, a table and notes."""
    machine = machine_description()
    lines = [f"# {title}", "", intro, "", f"Run on {machine['date']} with `{command}`.", ""]
    lines += ["| machine | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in machine.items() if key != "date"]
    lines += ["", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(target)
