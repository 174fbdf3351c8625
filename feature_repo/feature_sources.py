"""Where the feature views' Parquet sources live: one file per view under one folder or GCS prefix.

``KFP_MLOPS_FEATURE_SOURCES`` (read when the repo is applied) names that folder: a local path
(relative paths resolve against this repo), or ``gs://bucket/prefix`` for the cluster profile.
The pipeline step that computes the features writes ``<folder>/<view name>.parquet``.
"""

import os

SOURCES_ENV = "KFP_MLOPS_FEATURE_SOURCES"
DEFAULT_SOURCES = "data/sources"


def source_path(view_name: str) -> str:
    return f"{os.environ.get(SOURCES_ENV, DEFAULT_SOURCES).rstrip('/')}/{view_name}.parquet"
