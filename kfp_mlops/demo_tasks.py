"""Seeded demo data that needs no download: task-execution records of a batch cluster.

Each record is one submitted task with what was requested (CPU, memory, queue, dependencies), who
submitted it, a priority, and how it ended (outcome, duration). The numbers are skewed the way a real
cluster's are: a few users submit most tasks, priorities are mostly low/medium with few critical ones,
failures are rare, durations are log-normal and spread over three orders of magnitude. Duration depends
on the task type, the memory requested (bigger jobs ask for more), the CPUs (more is faster, with
diminishing returns), the dependencies and the load of the queue at submit time (busy office hours);
failed tasks stop part-way. Failures are more likely under load, with many dependencies, and when a heavy
task asks for its type's smallest memory. About 2% of records have no memory request (blank), as legacy clients omit it.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

# task type: (share of tasks, median seconds, CPU choices, memory choices in GB, failure bias)
TASK_TYPES: dict[str, tuple[float, float, list[int], list[float], float]] = {
    "etl": (0.30, 600.0, [1, 2, 4], [2.0, 4.0, 8.0], 0.0),
    "inference": (0.28, 90.0, [1, 2], [1.0, 2.0, 4.0], -0.5),
    "report": (0.15, 240.0, [1], [1.0, 2.0], -0.8),
    "backup": (0.15, 1800.0, [1, 2], [2.0, 4.0], 0.3),
    "training": (0.12, 5400.0, [4, 8, 16], [16.0, 32.0, 64.0], 0.8),
}
# queue: (share of tasks, base load)
QUEUES: dict[str, tuple[float, float]] = {
    "default": (0.50, 0.6),
    "batch": (0.30, 1.0),
    "interactive": (0.12, 0.3),
    "gpu": (0.08, 1.4),
}
PRIORITIES = ["low", "medium", "high", "critical"]
PRIORITY_MIX = [0.45, 0.35, 0.15, 0.05]
# multipliers of PRIORITY_MIX that make some tasks more urgent than others
URGENT = [0.3, 0.8, 2.5, 4.0]
ROUTINE = [2.5, 0.7, 0.3, 0.15]
USERS = 40
VIP_USERS = {4, 9, 17}  # their tasks are urgent more often
MISSING_MEMORY = 0.02
FIELDS = [
    "task_id",
    "task_type",
    "requested_cpu",
    "requested_memory_gb",
    "queue",
    "user_id",
    "n_dependencies",
    "submit_time",
    "priority",
    "outcome",
    "duration_s",
]
# the columns known when a task is submitted: what a model may use to predict priority, outcome or duration
FEATURES = ["task_type", "requested_cpu", "requested_memory_gb", "queue", "user_id", "n_dependencies"]


def tasks(rows: int, seed: int = 0) -> list[dict[str, str]]:
    """Generate ``rows`` task records; the same arguments always give the same rows."""
    rng = random.Random(seed)
    type_names, type_weights = list(TASK_TYPES), [spec[0] for spec in TASK_TYPES.values()]
    queue_names, queue_weights = list(QUEUES), [spec[0] for spec in QUEUES.values()]
    user_weights = [1 / (rank + 1) for rank in range(USERS)]  # Zipf: a few users submit most tasks
    submitted = datetime(2026, 1, 5, tzinfo=timezone.utc)
    records = []
    for number in range(rows):
        submitted += timedelta(seconds=rng.expovariate(1 / 240))
        task_type = rng.choices(type_names, type_weights)[0]
        _, median_s, cpus, memories, failure_bias = TASK_TYPES[task_type]
        queue = "gpu" if task_type == "training" and rng.random() < 0.6 else rng.choices(queue_names, queue_weights)[0]
        user = rng.choices(range(USERS), user_weights)[0]
        cpu, memory = rng.choice(cpus), rng.choice(memories)
        dependencies = min(int(rng.expovariate(0.4 if task_type in ("etl", "training") else 0.9)), 20)
        load = _queue_load(queue, submitted, rng)
        size = (memory / memories[0]) ** 0.6  # bigger jobs ask for more memory
        duration = median_s * size / math.sqrt(cpu) * (1 + load) * (1 + 0.08 * dependencies)
        duration *= math.exp(rng.gauss(0, 0.45))
        # the smallest memory request of a heavy type often runs out of memory
        out_of_memory_risk = 1.5 if memory == memories[0] and task_type in ("etl", "training", "backup") else 0.0
        failure_score = -3.6 + failure_bias + out_of_memory_risk + 0.8 * load + 0.15 * dependencies
        failed = rng.random() < 1 / (1 + math.exp(-failure_score))
        if failed:
            duration *= rng.uniform(0.05, 0.8)
        records.append(
            {
                "task_id": f"J{seed:03d}-{number:06d}",
                "task_type": task_type,
                "requested_cpu": str(cpu),
                "requested_memory_gb": "" if rng.random() < MISSING_MEMORY else f"{memory:g}",
                "queue": queue,
                "user_id": f"u{user:02d}",
                "n_dependencies": str(dependencies),
                "submit_time": submitted.isoformat(timespec="seconds"),
                "priority": _priority(task_type, queue, user, rng),
                "outcome": "failed" if failed else "succeeded",
                "duration_s": f"{max(duration, 1.0):.1f}",
            }
        )
    return records


def _queue_load(queue: str, at: datetime, rng: random.Random) -> float:
    """Load of a queue at a time: its base load, higher in office hours on weekdays, with noise."""
    office_hours = at.weekday() < 5 and 8 <= at.hour < 18
    return QUEUES[queue][1] * (1.6 if office_hours else 0.7) * rng.uniform(0.7, 1.3)


def _priority(task_type: str, queue: str, user: int, rng: random.Random) -> str:
    weights = list(PRIORITY_MIX)
    for urgent in (queue == "interactive", task_type == "inference", user in VIP_USERS):
        if urgent:
            weights = [w * m for w, m in zip(weights, URGENT)]
    if task_type in ("backup", "report"):
        weights = [w * m for w, m in zip(weights, ROUTINE)]
    return rng.choices(PRIORITIES, weights)[0]


def write(out: Path, rows: int = 3000, seed: int = 0) -> Path:
    """Write ``rows`` task records as CSV to ``out``, atomically (a partial file is renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(tasks(rows, seed=seed))
    partial.replace(out)
    return out
