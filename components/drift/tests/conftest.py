from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from components.drift.tests.helpers import banking77, build_tiny_encoder

# The test machines' cores are shared: with more busy threads than free cores, torch's OpenMP threads wait
# on each other, and a small MMD test took 2.4 s with 2 threads against 0.3 s with 1.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def banking77_train() -> pd.DataFrame:
    return banking77("train")


@pytest.fixture(scope="session")
def banking77_test() -> pd.DataFrame:
    return banking77("test")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, banking77_train: pd.DataFrame) -> Path:
    """A random two-layer BERT (hidden size 32) whose vocabulary covers BANKING77's words."""
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny", banking77_train["text"].tolist())
