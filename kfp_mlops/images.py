"""Runtime images: one per dependency family, each built from one extra of the uv lock.

A component names its image with ``image("train")``. The reference is computed when the component
module is imported, so the registry prefix is chosen at compile time through ``KFP_MLOPS_REGISTRY``
(``kfp-mlops compile --registry ...`` sets it).
"""

from __future__ import annotations

import os
import re

from kfp_mlops import __version__

DEFAULT_REGISTRY = "ghcr.io/kfp-mlops"
REGISTRY_ENV = "KFP_MLOPS_REGISTRY"

# image name -> what it is for; each name is also the uv extra it is built from.
IMAGES: dict[str, str] = {
    "data": "ingest and Feast features (pyarrow, google-cloud-storage, feast)",
    "validate": "TensorFlow Data Validation (tensorflow 2.16, pandas<2, pyarrow<11)",
    "train": "training and evaluation (torch, transformers 5, scikit-learn, xgboost, optuna)",
    "tune": "Katib experiments (kubeflow-katib, protobuf<5)",
    "serve": "KServe model servers and deploy (kserve, torch, transformers, feast)",
    "monitor": "drift detection (alibi-detect[torch], numpy<2, transformers<5)",
}

_IMAGE_REF = re.compile(r"(?:^|/)kfp-mlops-(?P<name>[a-z]+)(?::[\w.+-]+)?(?:@sha256:[0-9a-f]+)?$")


def image_tag() -> str:
    """The tag every image carries: the project version (``+`` is not allowed in tags)."""
    return __version__.replace("+", "-")


def image(name: str, registry: str | None = None) -> str:
    """The full image reference for a runtime image, e.g. ``ghcr.io/kfp-mlops/kfp-mlops-train:0.1.0``."""
    if name not in IMAGES:
        raise ValueError(f"unknown image {name!r}; known images: {', '.join(IMAGES)}")
    prefix = (registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY).rstrip("/")
    return f"{prefix}/kfp-mlops-{name}:{image_tag()}"


def image_name(reference: str) -> str | None:
    """The runtime image name in a reference made by :func:`image`, whatever its registry; else None."""
    match = _IMAGE_REF.search(reference)
    if match and match.group("name") in IMAGES:
        return match.group("name")
    return None
