"""Fixtures: the upstream CRDs (from shared/crds beside or inside the checkout) and a job spec to vary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.launch_training.manifests import TrainingJobSpec
from kfp_mlops.crd_schema import load_crd
from kfp_mlops.paths import PROJECT_ROOT

CRD_FILES = {
    "trainjob": ("trainer.kubeflow.org_trainjobs.yaml", "v1alpha1"),
    "pytorchjob": ("kubeflow.org_pytorchjobs.yaml", "v1"),
}


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    candidates = [PROJECT_ROOT / "shared" / "crds", PROJECT_ROOT.parent / "shared" / "crds"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    pytest.skip(f"needs the upstream CRD schemas, looked in {[str(c) for c in candidates]} (present in CI)")


@pytest.fixture(scope="session")
def crds(crds_dir: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """kind -> (the CRD document, the version the builders emit)."""
    return {kind: (load_crd(crds_dir / file), version) for kind, (file, version) in CRD_FILES.items()}


@pytest.fixture
def spec() -> TrainingJobSpec:
    return TrainingJobSpec(
        name="text-clf-1a2b3c4d",
        namespace="team-a",
        image="registry.example.com/kfp-mlops-train:1.2.3",
        train_data_uri="pvc://datasets/banking77/train.parquet",
        eval_data_uri="gs://bucket/banking77/eval.parquet",
        model_output_uri="pvc://models/runs/42/model",
        training_params={"epochs": 2, "batch_size": 64, "learning_rate": 3e-5},
        num_nodes=3,
        gpus_per_node=8,
    )
