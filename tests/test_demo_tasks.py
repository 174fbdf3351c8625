import csv
import statistics
from collections import Counter

from kfp_mlops import demo_tasks


def test_same_seed_gives_the_same_records_and_another_seed_others():
    first = demo_tasks.tasks(400, seed=5)
    assert first == demo_tasks.tasks(400, seed=5)
    assert first != demo_tasks.tasks(400, seed=6)
    assert all(list(record) == demo_tasks.FIELDS for record in first)


def test_labels_are_imbalanced():
    records = demo_tasks.tasks(3000, seed=1)
    priorities = Counter(r["priority"] for r in records)
    assert set(priorities) == set(demo_tasks.PRIORITIES)
    assert priorities["low"] > 3 * priorities["critical"]
    assert priorities["critical"] / len(records) < 0.12
    failures = sum(r["outcome"] == "failed" for r in records) / len(records)
    assert 0.03 < failures < 0.25


def test_duration_depends_on_task_type_cpus_and_memory():
    records = demo_tasks.tasks(3000, seed=2)

    def median_duration(keep) -> float:
        return statistics.median(float(r["duration_s"]) for r in records if keep(r))

    assert median_duration(lambda r: r["task_type"] == "training") > 10 * median_duration(
        lambda r: r["task_type"] == "inference"
    )
    etl = [r for r in records if r["task_type"] == "etl" and r["outcome"] == "succeeded"]
    assert median_duration(lambda r: r in etl and r["requested_memory_gb"] == "8") > median_duration(
        lambda r: r in etl and r["requested_memory_gb"] == "2"
    )
    assert median_duration(lambda r: r in etl and r["requested_cpu"] == "1") > median_duration(
        lambda r: r in etl and r["requested_cpu"] == "4"
    )


def test_skew_a_few_users_submit_most_tasks_and_some_memory_is_missing():
    records = demo_tasks.tasks(3000, seed=3)
    top_three = sum(count for _, count in Counter(r["user_id"] for r in records).most_common(3))
    assert top_three > 0.3 * len(records)
    missing = sum(r["requested_memory_gb"] == "" for r in records)
    assert 0 < missing < 0.05 * len(records)
    assert min(float(r["duration_s"]) for r in records) >= 1.0


def test_write_creates_the_csv_atomically(tmp_path):
    out = demo_tasks.write(tmp_path / "nested" / "tasks.csv", rows=50, seed=4)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == demo_tasks.tasks(50, seed=4)
    assert [p.name for p in out.parent.iterdir()] == ["tasks.csv"]
