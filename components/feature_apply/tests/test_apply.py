"""feature_apply: registers the project's feature repo and records the applied definitions."""

from __future__ import annotations

import json

import pytest

from components.feature_apply.apply import run_apply
from components.features.store import FeatureStoreError, open_store


def test_apply_writes_the_definitions_and_registers_them(tmp_path):
    out = tmp_path / "out" / "definitions"
    metadata = run_apply(str(out), sources=str(tmp_path / "sources"), state_dir=str(tmp_path / "state"))
    assert metadata["feature_views"] == ["customer_ticket_history", "host_metric_windows", "queue_task_stats", "user_task_stats"]
    assert metadata["entities"] == ["customer", "host", "queue", "user"]
    assert metadata["deleted"] == []
    definitions = json.loads(out.read_text())
    assert definitions["feature_views"]["queue_task_stats"] == {
        "entities": ["queue"],
        "features": ["queue_task_count", "queue_avg_duration_s", "queue_failure_rate"],
        "ttl_seconds": 3 * 24 * 3600,
        "source": str(tmp_path / "sources" / "queue_task_stats.parquet"),
    }
    registered = open_store(state_dir=tmp_path / "state").list_feature_views()
    assert sorted(view.name for view in registered) == metadata["feature_views"]
    assert sorted(out.parent.iterdir()) == [out]


def test_a_repo_without_configuration_fails_and_writes_nothing(tmp_path):
    out = tmp_path / "out" / "definitions"
    with pytest.raises(FeatureStoreError, match=f"feature repo {tmp_path / 'empty'} has no feature_store.yaml"):
        run_apply(str(out), repo_path=str(tmp_path / "empty"), state_dir=str(tmp_path / "state"))
    assert not out.parent.exists() or not list(out.parent.iterdir())
