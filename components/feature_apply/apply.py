"""Registers the feature repo's definitions in the Feast registry (``feast apply``) and records what it holds."""

from __future__ import annotations

from typing import Any

from components.features.outputs import write_json
from components.features.store import DEFAULT_CONFIG_FILE, apply_repo, open_store


def run_apply(
    definitions_path: str,
    *,
    sources: str = "",
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = DEFAULT_CONFIG_FILE,
) -> dict[str, Any]:
    """Applies the repo and writes the applied definitions as JSON to ``definitions_path``.

    Returns the artifact metadata: project, the feature views, feature services, entities and deleted objects.
    """
    store = open_store(repo_path or None, state_dir=state_dir or None, config_file=config_file)
    applied = apply_repo(store, sources or None)
    write_json(definitions_path, applied)
    return {
        "project": applied["project"],
        "feature_views": sorted(applied["feature_views"]),
        "feature_services": applied["feature_services"],
        "entities": applied["entities"],
        "deleted": applied["deleted"],
        "format": "json",
    }
