"""Where the project's files and local state live."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Local, git-ignored state: one venv per image, pipeline runs, generated demo data.
ENVS_DIR = Path(os.environ.get("KFP_MLOPS_ENVS", PROJECT_ROOT / ".envs"))
LOCAL_DIR = Path(os.environ.get("KFP_MLOPS_LOCAL", PROJECT_ROOT / ".local"))
COMPILED_DIR = PROJECT_ROOT / "pipelines" / "compiled"
