"""How many CPUs this process may really use: its CPU affinity, capped by a cgroup CPU quota.

In a Kubernetes pod with a CPU limit, ``os.sched_getaffinity`` still lists every CPU of the node; the limit is
a CFS quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). Sizing thread pools by
the node's CPUs under a quota of one or two makes the threads wait for quota most of the time.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (2.5 for ``250000 100000``), or None when there is none or it cannot be read."""
    try:
        if (root / "cpu.max").is_file():  # cgroup v2: "max 100000" or "250000 100000"
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():  # cgroup v1: quota -1 means none
            quota = int((v1 / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs in this process's affinity, at most the cgroup quota rounded up; at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)
