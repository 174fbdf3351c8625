"""The learned detectors, fitted per series on its training rows: an Isolation Forest on window features and a
small torch autoencoder on windows. Both see row t as the last ``width`` values standardised by the training
rows' median and robust sigma.

Saved without pickle: the forest as skops (loaded with an explicit list of trusted types), the autoencoder's
weights as safetensors tensors; the numbers around them (centre, scale, typical error) go to the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import IsolationForest

from components.anomaly import surprise as S
from components.anomaly.scorer import DetectorSpec
from components.anomaly.surprise import DetectorError

FOREST_TRUSTED_TYPES = [
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
    "numpy.random.mtrand.RandomState",
]
AE_HIDDEN = (8, 3)  # width -> 8 -> 3 -> 8 -> width
WINDOW_CLIP = 50.0  # standardised values beyond this (e.g. a 1000-sigma spike) are clipped before the autoencoder


def _features(windows: np.ndarray) -> np.ndarray:
    return np.hstack([windows, np.diff(windows, axis=1)])


@dataclass
class ForestModel:
    forest: IsolationForest
    centre: float
    scale: float
    width: int

    def surprise(self, series: np.ndarray, start: int) -> np.ndarray:
        """The forest's anomaly score ``2^(-depth / c)`` of each row's window features."""
        windows = S.standardised_windows(series, self.width, self.centre, self.scale, start)
        return -self.forest.score_samples(_features(windows)) if len(windows) else np.empty(0)

    def manifest(self) -> dict[str, Any]:
        return {"centre": self.centre, "scale": self.scale}


def autoencoder_module(width: int) -> torch.nn.Sequential:
    first, bottleneck = AE_HIDDEN
    return torch.nn.Sequential(
        torch.nn.Linear(width, first), torch.nn.Tanh(), torch.nn.Linear(first, bottleneck),
        torch.nn.Tanh(), torch.nn.Linear(bottleneck, first), torch.nn.Tanh(), torch.nn.Linear(first, width),
    )  # fmt: skip


@dataclass
class AutoencoderModel:
    module: torch.nn.Sequential
    centre: float
    scale: float
    width: int
    typical_error: float

    def surprise(self, series: np.ndarray, start: int) -> np.ndarray:
        """Reconstruction error of each row's window, in units of the median training error."""
        windows = S.standardised_windows(series, self.width, self.centre, self.scale, start)
        return _reconstruction_errors(self.module, windows) / self.typical_error

    def manifest(self) -> dict[str, Any]:
        return {"centre": self.centre, "scale": self.scale, "typical_error": self.typical_error}


def _reconstruction_errors(module: torch.nn.Module, windows: np.ndarray) -> np.ndarray:
    if not len(windows):
        return np.empty(0)
    inputs = torch.from_numpy(np.clip(windows, -WINDOW_CLIP, WINDOW_CLIP).astype(np.float32))
    with torch.no_grad():
        return ((module(inputs) - inputs) ** 2).mean(dim=1).numpy().astype(np.float64)


def fit_window_model(spec: DetectorSpec, train_values: np.ndarray) -> ForestModel | AutoencoderModel:
    """Fit the spec's learned detector on one series' training rows (at least ``width + 2`` of them)."""
    values = S.checked_values(train_values, "training values")
    if values.size < spec.width + 2:
        raise DetectorError(f"the {spec.kind} detector needs at least {spec.width + 2} training rows, got {values.size}")
    centre, scale = S.centre_and_scale(values)
    windows = S.standardised_windows(values, spec.width, centre, scale)
    if spec.kind == "isolation_forest":
        forest = IsolationForest(n_estimators=spec.trees, max_samples=min(256, len(windows)), random_state=spec.seed)
        forest.fit(_features(windows))
        return ForestModel(forest, centre, scale, spec.width)
    if spec.kind != "autoencoder":
        raise DetectorError(f"the {spec.kind} detector has nothing to fit")
    generator = torch.Generator().manual_seed(spec.seed)
    module = autoencoder_module(spec.width)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * parameter.shape[-1] ** -0.5)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    train = torch.from_numpy(np.clip(windows, -WINDOW_CLIP, WINDOW_CLIP).astype(np.float32))
    for _ in range(spec.epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(module(train), train)
        loss.backward()
        optimizer.step()
    module.eval()
    typical = max(float(np.median(_reconstruction_errors(module, windows))), S.TINY_SCALE)
    return AutoencoderModel(module, centre, scale, spec.width, typical)


def save_forest(model: ForestModel, path: Path) -> None:
    import skops.io as sio

    sio.dump(model.forest, path)


def load_forest(spec: DetectorSpec, path: Path, numbers: dict[str, Any]) -> ForestModel:
    import skops.io as sio

    forest = sio.load(path, trusted=FOREST_TRUSTED_TYPES)
    if not isinstance(forest, IsolationForest):
        raise DetectorError(f"{path} holds a {type(forest).__name__}, not an IsolationForest")
    return ForestModel(forest, float(numbers["centre"]), float(numbers["scale"]), spec.width)


def autoencoder_tensors(model: AutoencoderModel, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": tensor.detach().clone().contiguous() for name, tensor in model.module.state_dict().items()}


def autoencoder_from_tensors(
    spec: DetectorSpec, tensors: dict[str, torch.Tensor], prefix: str, numbers: dict[str, Any]
) -> AutoencoderModel:
    module = autoencoder_module(spec.width)
    expected = module.state_dict()
    try:
        module.load_state_dict({name: tensors[f"{prefix}.{name}"] for name in expected})
    except (KeyError, RuntimeError) as error:
        raise DetectorError(f"autoencoder weights for {prefix} are missing or misshapen: {error}") from error
    module.eval()
    return AutoencoderModel(module, float(numbers["centre"]), float(numbers["scale"]), spec.width,
                            float(numbers["typical_error"]))  # fmt: skip
