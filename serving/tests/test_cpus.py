"""available_cpus: the affinity, capped by a cgroup CPU quota read from real cgroup files."""

import os
from pathlib import Path

import pytest

from serving.cpus import available_cpus, cgroup_cpu_quota

AFFINITY = len(os.sched_getaffinity(0))


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu.max": "garbled\n"}, None),
        ({}, None),
    ],
    ids=["v2-unlimited", "v2-1.5", "v1-unlimited", "v1-0.5", "unreadable", "no-cgroup"],
)
def test_the_quota_is_read_from_cgroup_v2_or_v1(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    assert cgroup_cpu_quota(write(tmp_path, files)) == quota


def test_a_quota_caps_the_affinity_rounded_up(tmp_path: Path) -> None:
    assert available_cpus(write(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1
    assert available_cpus(write(tmp_path / "big", {"cpu.max": f"{(AFFINITY + 8) * 100000} 100000"})) == AFFINITY
    assert available_cpus(write(tmp_path / "none", {"cpu.max": "max 100000"})) == AFFINITY
    if AFFINITY >= 2:
        assert available_cpus(write(tmp_path / "1.2", {"cpu.max": "120000 100000"})) == 2
