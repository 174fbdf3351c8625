"""The seeded demo host metrics (kfp_mlops/demo_metrics.py), written without numpy by the command line."""

import csv
from statistics import mean

from kfp_mlops import cli, demo_data, demo_metrics


def test_rows_are_seeded_wide_and_labelled():
    rows = demo_metrics.host_metrics(hosts=2, steps=2000, seed=3)
    assert rows == demo_metrics.host_metrics(hosts=2, steps=2000, seed=3)
    assert rows != demo_metrics.host_metrics(hosts=2, steps=2000, seed=4)
    assert len(rows) == 2 * 2000 and list(rows[0]) == demo_metrics.FIELDS
    assert [r["host"] for r in rows[:4]] == ["host-0", "host-1", "host-0", "host-1"]  # by time, then host
    assert rows[2]["timestamp"] == "2024-01-01T00:05:00+00:00"
    labelled = [r for r in rows if r["anomaly"] == "1"]
    assert 0 < len(labelled) < len(rows) / 2
    kinds = {k for s in demo_metrics.series(hosts=2, steps=2000, seed=3) for k in s.kinds if k}
    assert kinds <= set(demo_metrics.ANOMALY_KINDS) and kinds


def test_drift_moves_every_metric():
    plain = demo_metrics.host_metrics(steps=600, seed=1)
    drifted = demo_metrics.host_metrics(steps=600, seed=1, drift=True)
    for metric, factor in demo_metrics.DRIFT_FACTORS.items():
        ratio = mean(float(r[metric]) for r in drifted) / mean(float(r[metric]) for r in plain)
        assert abs(ratio - factor) < 0.05 * factor, metric


def test_the_cli_and_demo_sources_write_it(tmp_path):
    out = tmp_path / "metrics.csv"
    assert cli.main(["demo-data", "metrics", "--out", str(out), "--rows", "600"]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 600 and rows == demo_metrics.host_metrics(steps=600)
    resolved = demo_data.with_demo_data({"source": "demo:metrics"}, {}, tmp_path / "demo")
    assert resolved["source"] == str(tmp_path / "demo" / "metrics.csv")
