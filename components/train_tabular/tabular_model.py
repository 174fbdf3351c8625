"""A trained tabular model: preprocessing + estimator (+ quantile models), saved without pickle.

Layout of a model directory:
  model.json           manifest: family ("tabular"), task, target, features and their types, classes, target transform,
                       algorithm, framework, versions, hyperparameters and the sha256 of every file below
  preprocessor.skops   the fitted ColumnTransformer (impute, scale, one-hot), skops format
  estimator.skops      scikit-learn estimator (skops)   | model.ubj     XGBoost model (UBJSON)
  interval.skops       p10/p90 quantile regressors      | interval.ubj  XGBoost quantile model (regression only)
Loading checks every sha256 and loads skops files with an explicit list of trusted types; a file holding
any other type is refused by skops (``UntrustedTypesFoundException``).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io as sio
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from components.train_tabular.hyperparameters import TabularError

MANIFEST = "model.json"
FAMILY = "tabular"  # model.json's "family": how servers and gates tell a tabular model directory from others
FORMAT_VERSION = 1
QUANTILES = (0.1, 0.9)
# Types beyond skops' defaults that our own files hold; anything else in a file is refused.
TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


def build_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Median-impute and standardise numeric columns; fill and one-hot categorical ones (unseen values: all zeros)."""
    return ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )


def coerce_features(frame: pd.DataFrame, features: list[dict[str, str]], source: str) -> pd.DataFrame:
    """The feature columns of ``frame`` with the manifest's types: numeric as float, categorical as str/NaN."""
    missing = [f["name"] for f in features if f["name"] not in frame.columns]
    if missing:
        raise TabularError(f"{source}: missing feature column(s) {missing}; it has {list(frame.columns)}")
    columns = {}
    for feature in features:
        name, values = feature["name"], frame[feature["name"]]
        if feature["type"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values.index[numbers.isna() & values.notna()]
            if len(bad):
                raise TabularError(
                    f"{source}: column {name!r} is numeric but rows {list(bad[:5])} hold {list(values[bad[:5]])}"
                )
            columns[name] = numbers.astype(float)
        else:
            columns[name] = values.map(lambda v: v if pd.isna(v) else str(v)).astype(object)
    return pd.DataFrame(columns, index=frame.index)


@dataclass
class TabularModel:
    manifest: dict[str, Any]
    preprocessor: ColumnTransformer
    estimator: Any
    interval: Any = None  # dict of quantile regressors (sklearn), an XGBRegressor (xgboost) or None

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]

    def transform(self, frame: pd.DataFrame, source: str = "input") -> np.ndarray:
        return self.preprocessor.transform(coerce_features(frame, self.manifest["features"], source))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Class labels (str) for classification, target values (float) for regression."""
        matrix = self.transform(frame)
        if self.manifest["task"] == "classification":
            return np.asarray(self.classes, dtype=object)[self.estimator.predict(matrix).astype(int)]
        return self.untransform_target(self.estimator.predict(matrix))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities, one column per class in ``classes`` order."""
        if self.manifest["task"] != "classification":
            raise TabularError("predict_proba needs a classification model")
        return self.estimator.predict_proba(self.transform(frame))

    def predict_interval(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, 2): the p10 and p90 predictions of a regression model."""
        if self.interval is None:
            raise TabularError("this model has no prediction interval (only regression models do)")
        matrix = self.transform(frame)
        if isinstance(self.interval, dict):
            bounds = np.column_stack([self.interval[f"p{round(q * 100)}"].predict(matrix) for q in QUANTILES])
        else:
            bounds = self.interval.predict(matrix).reshape(len(matrix), len(QUANTILES))
        return np.sort(self.untransform_target(bounds), axis=1)  # quantile models may cross; keep lower <= upper

    def untransform_target(self, values: np.ndarray) -> np.ndarray:
        """Model-space regression outputs (standardised, maybe log1p) back in target units."""
        transform = self.manifest["target_transform"]
        values = np.asarray(values, dtype=float) * transform["scale"] + transform["mean"]
        return np.expm1(values) if transform["log1p"] else values


def save(model: TabularModel, model_dir: Path) -> dict[str, Any]:
    """Write the model directory (a temporary sibling, renamed into place last); return the manifest."""
    model_dir = Path(model_dir)
    if model_dir.exists() and any(model_dir.iterdir()):
        raise TabularError(f"model directory {model_dir} exists and is not empty")
    partial = model_dir.with_name(f".{model_dir.name}.partial")
    if partial.exists():
        for stale in partial.iterdir():
            stale.unlink()
    partial.mkdir(parents=True, exist_ok=True)
    xgb = model.manifest["framework"] == "xgboost"
    files = {"preprocessor": "preprocessor.skops", "estimator": "model.ubj" if xgb else "estimator.skops"}
    sio.dump(model.preprocessor, partial / files["preprocessor"])
    if xgb:
        model.estimator.save_model(partial / files["estimator"])
    else:
        sio.dump(model.estimator, partial / files["estimator"])
    if model.interval is not None:
        files["interval"] = "interval.ubj" if xgb else "interval.skops"
        if xgb:
            model.interval.save_model(partial / files["interval"])
        else:
            sio.dump(model.interval, partial / files["interval"])
    manifest = {
        **model.manifest,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "files": {role: {"path": name, "sha256": sha256(partial / name)} for role, name in files.items()},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if model_dir.exists():
        model_dir.rmdir()
    partial.rename(model_dir)
    return manifest


def load(model_dir: Path) -> TabularModel:
    """Load a model directory; refuse changed files (sha256) and, via skops, any type outside TRUSTED_TYPES."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise TabularError(f"{model_dir} is not a tabular model directory: no {MANIFEST}")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("family") != FAMILY:
        raise TabularError(f"{manifest_path}: family {manifest.get('family')!r} is not {FAMILY!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version")
        raise TabularError(f"{manifest_path}: format_version {found!r} is not {FORMAT_VERSION}")
    paths = {}
    for role, entry in manifest["files"].items():
        path = model_dir / entry["path"]
        if not path.is_file() or sha256(path) != entry["sha256"]:
            raise TabularError(f"{path}: missing or its sha256 differs from {MANIFEST}")
        paths[role] = path
    preprocessor = sio.load(paths["preprocessor"], trusted=TRUSTED_TYPES)
    if manifest["framework"] == "xgboost":
        estimator = (xgboost.XGBClassifier if manifest["task"] == "classification" else xgboost.XGBRegressor)()
        estimator.load_model(paths["estimator"])
        interval = None
        if "interval" in paths:
            interval = xgboost.XGBRegressor()
            interval.load_model(paths["interval"])
    else:
        estimator = sio.load(paths["estimator"], trusted=TRUSTED_TYPES)
        interval = sio.load(paths["interval"], trusted=TRUSTED_TYPES) if "interval" in paths else None
    return TabularModel(manifest, preprocessor, estimator, interval)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "skops": skops.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
