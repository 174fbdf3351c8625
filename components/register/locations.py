"""Where the registry lives, without importing MLflow (the authoring environment uses this for `kfp-mlops ui`).

A tracking URI given explicitly wins, then ``MLFLOW_TRACKING_URI``, then the embedded store: a SQLite
database and an artifact folder under the project's local state dir (``.local/mlflow/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from kfp_mlops.paths import LOCAL_DIR

EMBEDDED_DIR = LOCAL_DIR / "mlflow"


def embedded_tracking_uri(state_dir: Path = EMBEDDED_DIR) -> str:
    return f"sqlite:///{state_dir.resolve() / 'mlflow.db'}"


def embedded_artifact_root(state_dir: Path = EMBEDDED_DIR) -> Path:
    return state_dir.resolve() / "artifacts"


def resolve_tracking_uri(tracking_uri: str = "") -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "") or embedded_tracking_uri()


def check_task_tracking_uri(tracking_uri: str) -> None:
    """Refuse a pipeline task's ``tracking_uri`` that carries credentials: a parameter ends up in the compiled
    pipeline and the run's records; credentials come from the environment (a Kubernetes Secret)."""
    if "@" in urlparse(tracking_uri).netloc:
        raise ValueError(
            "tracking_uri must not carry credentials (they would be stored in the compiled pipeline); give the "
            "tracking server's credentials as MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or "
            "MLFLOW_TRACKING_TOKEN) from a Kubernetes Secret"
        )
