"""Train a tabular classifier or regressor (XGBoost, random forest, SVM, linear) with its preprocessing.

Reads Parquet or CSV train/eval files, fits preprocessing + estimator on the train split (classes
weighted by inverse frequency unless ``class_weight`` is "none"), adds p10/p90 quantile models for
regression, evaluates on the eval split against a trivial baseline and saves the model directory
(see tabular_model.py). Metrics are printed as Katib ``<RFC 3339 time> name=value`` lines.

Run by the ``train_tabular`` component, or on its own (e.g. as a Katib or Optuna trial of the tune
components)::

    python -m components.train_tabular.tabular_trainer --config config.json   # or --config '{"train_path": ...}'

The config is a JSON object of :func:`train_tabular_model`'s arguments; a hyperparameter may also be given
as a field of its own (``"max_depth": 4``), which is how a tuner sets the values of a trial.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from sklearn.svm import SVC, SVR
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from components.train_tabular import hyperparameters as hp
from components.train_tabular import tabular_model
from components.train_tabular.hyperparameters import TabularError
from components.train_tabular.tabular_model import QUANTILES, TabularModel
from components.tune.metric_lines import katib_metric_lines

TASKS = ("classification", "regression")


@dataclass
class TabularResult:
    metrics: dict[str, float]
    model_metadata: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)
    model: TabularModel = field(repr=False)


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet file or directory (recognised by content, not name) or a CSV file; or Parquet at a URI
    that pyarrow opens (gs://, s3://, file://), which is how a Katib trial pod reads its data."""
    if "://" in str(path):
        try:
            frame = pd.read_parquet(str(path))
        except (OSError, ValueError) as error:
            raise TabularError(f"{path}: unreadable as Parquet: {error}") from error
        if frame.empty:
            raise TabularError(f"{path}: no rows")
        return frame.reset_index(drop=True)
    path = Path(path)
    if not path.exists():
        raise TabularError(f"{path}: no such file")
    try:
        if path.is_dir() or _starts_with(path, b"PAR1"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise TabularError(f"{path}: unreadable as Parquet or CSV: {error}") from error
    if frame.empty:
        raise TabularError(f"{path}: no rows")
    return frame.reset_index(drop=True)


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as f:
        return f.read(len(magic)) == magic


def train_tabular_model(
    train_path: str | Path,
    eval_path: str | Path,
    model_dir: str | Path,
    task: str = "classification",
    target_column: str = "priority",
    feature_columns: list[str] | None = None,
    algorithm: str = "xgboost",
    hyperparameters: str | dict | None = "",
    seed: int = 42,
    num_threads: int = 0,
) -> TabularResult:
    """Train, evaluate and save; raise TabularError (naming the file, column, row or field) on bad input.

    num_threads caps the threads of every fit (0: all cores); on shared, oversubscribed CPUs the
    OpenMP-parallel fits (XGBoost, histogram gradient boosting) run far faster with 1.
    """
    if num_threads < 0:
        raise TabularError(f"num_threads must be 0 or more, got {num_threads}")
    with threadpool_limits(num_threads or None):
        return _train(train_path, eval_path, model_dir, task, target_column, feature_columns, algorithm,
                      hyperparameters, seed, num_threads or -1)


def _train(
    train_path: str | Path,
    eval_path: str | Path,
    model_dir: str | Path,
    task: str,
    target_column: str,
    feature_columns: list[str] | None,
    algorithm: str,
    hyperparameters: str | dict | None,
    seed: int,
    n_jobs: int,
) -> TabularResult:
    params = hp.resolve(algorithm, task, hyperparameters)
    if Path(model_dir).exists() and any(Path(model_dir).iterdir()):
        raise TabularError(f"model directory {model_dir} exists and is not empty")
    train, evaluation = read_table(train_path), read_table(eval_path)
    for frame, source in ((train, train_path), (evaluation, eval_path)):
        if target_column not in frame.columns:
            raise TabularError(f"{source}: missing target column {target_column!r}; it has {list(frame.columns)}")
    features, dropped = feature_types(train, target_column, list(feature_columns or []), str(train_path))
    x_train = tabular_model.coerce_features(train, features, str(train_path))
    x_eval = tabular_model.coerce_features(evaluation, features, str(eval_path))
    numeric = [f["name"] for f in features if f["type"] == "numeric"]
    categorical = [f["name"] for f in features if f["type"] == "categorical"]
    preprocessor = tabular_model.build_preprocessor(numeric, categorical)

    started = time.perf_counter()
    matrix_train = preprocessor.fit_transform(x_train)
    manifest = {
        "family": tabular_model.FAMILY,
        "task": task,
        "target": target_column,
        "algorithm": algorithm,
        "framework": "xgboost" if algorithm == "xgboost" else "scikit-learn",
        "features": features,
        "dropped_columns": dropped,
        "hyperparameters": params,
        "seed": seed,
        "train_rows": len(train),
    }
    if task == "classification":
        classes = label_classes(train[target_column], str(train_path))
        y_train = encode_labels(train[target_column], classes, str(train_path))
        y_eval = encode_labels(evaluation[target_column], classes, str(eval_path))
        estimator = fit_classifier(algorithm, params, matrix_train, y_train, seed, n_jobs)
        model = TabularModel({**manifest, "classes": classes, "target_transform": None}, preprocessor, estimator)
    else:
        y_train = numeric_target(train[target_column], str(train_path), target_column, params["target_transform"])
        y_eval = numeric_target(evaluation[target_column], str(eval_path), target_column, "none")
        scaled, transform = standardise(y_train, log1p=params["target_transform"] == "log1p")
        estimator = fit_regressor(algorithm, params, matrix_train, scaled, seed, n_jobs)
        interval = fit_interval(algorithm, params, matrix_train, scaled, seed, n_jobs)
        model = TabularModel(
            {**manifest, "classes": None, "target_transform": transform, "interval_quantiles": list(QUANTILES)},
            preprocessor,
            estimator,
            interval,
        )
    train_seconds = time.perf_counter() - started

    if task == "classification":
        metrics = classification_metrics(model, x_eval, y_eval, baseline=int(np.bincount(y_train).argmax()))
    else:
        metrics = regression_metrics(model, x_eval, y_eval, baseline=float(np.mean(y_train)))
    metrics.update(
        train_seconds=round(train_seconds, 3), train_rows=float(len(train)), eval_rows=float(len(evaluation))
    )
    model.manifest["metrics"] = metrics
    saved = tabular_model.save(model, Path(model_dir))
    print(katib_metric_lines(metrics), flush=True)
    metadata = {
        "framework": saved["framework"],
        "format": "skops+xgboost-ubj" if saved["framework"] == "xgboost" else "skops",
        "task": task,
        "algorithm": algorithm,
        "target": target_column,
        "features": [f["name"] for f in features],
        "labels": saved["classes"],
        "train_rows": len(train),
    }
    return TabularResult(metrics, {k: v for k, v in metadata.items() if v is not None}, saved, model)


def feature_types(
    frame: pd.DataFrame, target: str, requested: list[str], source: str
) -> tuple[list[dict[str, str]], list[str]]:
    """Feature columns and their types (numeric or categorical), plus the columns left out by default.

    Without ``requested``, every column but the target is a feature, except text columns where more
    than half the values are distinct (identifiers, timestamps), which cannot generalise.
    """
    if target in requested:
        raise TabularError(f"feature_columns must not include the target column {target!r}")
    missing = [name for name in requested if name not in frame.columns]
    if missing:
        raise TabularError(f"{source}: missing feature column(s) {missing}; it has {list(frame.columns)}")
    dropped: list[str] = []
    if requested:
        names = requested
    else:
        names = []
        for name in frame.columns.drop(target):
            is_numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
            (names if is_numeric or frame[name].nunique() <= len(frame) / 2 else dropped).append(name)
    if not names:
        raise TabularError(f"{source}: no feature columns besides the target {target!r}")
    features = [
        {
            "name": name,
            "type": "numeric"
            if pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
            else "categorical",
        }
        for name in names
    ]
    return features, dropped


def label_classes(labels: pd.Series, source: str) -> list[str]:
    """The distinct train labels as strings, sorted (numerically when they are all integers)."""
    _check_no_missing(labels, source)
    distinct = labels.unique().tolist()
    if all(_is_integral(v) for v in distinct):
        classes = [str(v) for v in sorted(int(v) for v in distinct)]
    else:
        classes = sorted(str(v) for v in distinct)
    if len(classes) < 2:
        raise TabularError(f"{source}: target column {labels.name!r} needs at least two classes, has {classes}")
    return classes


def _is_integral(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer)) or isinstance(value, float) and value.is_integer()


def encode_labels(labels: pd.Series, classes: list[str], source: str) -> np.ndarray:
    _check_no_missing(labels, source)
    as_text = labels.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    unknown = sorted(set(as_text) - set(classes))
    if unknown:
        raise TabularError(f"{source}: labels {unknown} of column {labels.name!r} are not in the train split {classes}")
    return as_text.map({label: index for index, label in enumerate(classes)}).to_numpy(dtype=int)


def numeric_target(values: pd.Series, source: str, column: str, transform: str) -> np.ndarray:
    _check_no_missing(values, source)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.index[numbers.isna()]
    if len(bad):
        raise TabularError(f"{source}: target column {column!r} must be numeric; rows {list(bad[:5])} are not")
    if transform == "log1p" and (numbers <= -1).any():
        raise TabularError(f"{source}: target_transform 'log1p' needs target column {column!r} > -1")
    return numbers.to_numpy(dtype=float)


def _check_no_missing(values: pd.Series, source: str) -> None:
    missing = values.index[values.isna()]
    if len(missing):
        raise TabularError(f"{source}: target column {values.name!r} is empty in rows {list(missing[:10])}")


def standardise(y: np.ndarray, log1p: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale the regression target to mean 0, sd 1 (after log1p if asked): SVR and ridge need it, trees don't mind."""
    values = np.log1p(y) if log1p else y
    mean, scale = float(values.mean()), float(values.std()) or 1.0
    return (values - mean) / scale, {"log1p": log1p, "mean": mean, "scale": scale}


def fit_classifier(
    algorithm: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int, n_jobs: int
) -> Any:
    balanced = "balanced" if params["class_weight"] == "balanced" else None
    if algorithm == "xgboost":
        model = xgboost.XGBClassifier(**_xgb_params(params), random_state=seed, tree_method="hist", n_jobs=n_jobs)
        return model.fit(x, y, sample_weight=compute_sample_weight(balanced, y) if balanced else None)
    if algorithm == "random_forest":
        model = RandomForestClassifier(
            **_forest_params(params), class_weight=balanced, random_state=seed, n_jobs=n_jobs
        )
    elif algorithm == "svm":
        # Platt-scaled probabilities (for ROC-AUC and predict_proba) from 3-fold calibration of one SVC
        svc = SVC(C=params["C"], gamma=params["gamma"], class_weight=balanced, random_state=seed)
        model = CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
    else:
        model = LogisticRegression(C=params["C"], class_weight=balanced, max_iter=2000, random_state=seed)
    return model.fit(x, y)


def fit_regressor(
    algorithm: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int, n_jobs: int
) -> Any:
    if algorithm == "xgboost":
        model = xgboost.XGBRegressor(**_xgb_params(params), random_state=seed, tree_method="hist", n_jobs=n_jobs)
        return model.fit(x, y)
    if algorithm == "random_forest":
        return RandomForestRegressor(**_forest_params(params), random_state=seed, n_jobs=n_jobs).fit(x, y)
    if algorithm == "svm":
        return SVR(C=params["C"], gamma=params["gamma"], epsilon=params["epsilon"]).fit(x, y)
    return Ridge(alpha=params["alpha"]).fit(x, y)


def fit_interval(
    algorithm: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int, n_jobs: int
) -> Any:
    """p10/p90 models: XGBoost's quantile objective for xgboost, quantile gradient boosting otherwise."""
    if algorithm == "xgboost":
        model = xgboost.XGBRegressor(
            **_xgb_params(params),
            objective="reg:quantileerror",
            quantile_alpha=np.array(QUANTILES),
            random_state=seed,
            tree_method="hist",
            n_jobs=n_jobs,
        )
        return model.fit(x, y)
    return {
        f"p{round(q * 100)}": HistGradientBoostingRegressor(
            loss="quantile", quantile=q, max_iter=100, random_state=seed
        ).fit(x, y)
        for q in QUANTILES
    }


def _xgb_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: params[name] for name in hp.ALGORITHM_PARAMS["xgboost"]}


def _forest_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: params[name] for name in hp.ALGORITHM_PARAMS["random_forest"]}


def classification_metrics(model: TabularModel, x: pd.DataFrame, y: np.ndarray, baseline: int) -> dict[str, float]:
    matrix = model.preprocessor.transform(x)
    predicted = model.estimator.predict(matrix).astype(int)
    probabilities = model.estimator.predict_proba(matrix)
    labels = list(range(len(model.classes)))
    metrics = {
        "eval_accuracy": float(accuracy_score(y, predicted)),
        "eval_macro_f1": float(f1_score(y, predicted, average="macro", labels=labels, zero_division=0)),
    }
    # one-vs-rest AUC averaged over the classes present in the eval split (defined only for those)
    present = [c for c in labels if 0 < (y == c).sum() < len(y)]
    if present:
        metrics["eval_roc_auc"] = float(np.mean([roc_auc_score(y == c, probabilities[:, c]) for c in present]))
    constant = np.full_like(y, baseline)
    metrics["baseline_accuracy"] = float(accuracy_score(y, constant))
    metrics["baseline_macro_f1"] = float(f1_score(y, constant, average="macro", labels=labels, zero_division=0))
    return metrics


def regression_metrics(model: TabularModel, x: pd.DataFrame, y: np.ndarray, baseline: float) -> dict[str, float]:
    matrix = model.preprocessor.transform(x)
    predicted = model.untransform_target(model.estimator.predict(matrix))
    bounds = model.predict_interval(x)
    return {
        "eval_rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "eval_mae": float(mean_absolute_error(y, predicted)),
        "eval_r2": float(r2_score(y, predicted)),
        "eval_interval_coverage": float(np.mean((y >= bounds[:, 0]) & (y <= bounds[:, 1]))),
        "eval_interval_width": float(np.mean(bounds[:, 1] - bounds[:, 0])),
        "baseline_rmse": float(np.sqrt(mean_squared_error(y, np.full_like(y, baseline)))),
        "baseline_mae": float(mean_absolute_error(y, np.full_like(y, baseline))),
    }


# The --config fields and the JSON types they take.
CONFIG_FIELDS: dict[str, tuple[type, ...]] = {
    "train_path": (str,),
    "eval_path": (str,),
    "model_dir": (str,),
    "task": (str,),
    "target_column": (str,),
    "feature_columns": (list,),
    "algorithm": (str,),
    "hyperparameters": (dict, str),
    "seed": (int,),
    "num_threads": (int,),
}
REQUIRED_CONFIG_FIELDS = ("train_path", "eval_path", "model_dir")
HYPERPARAMETER_NAMES = tuple(
    dict.fromkeys(name for table in (*hp.ALGORITHM_PARAMS.values(), *hp.TASK_PARAMS.values()) for name in table)
)


def config_arguments(text: str) -> dict[str, Any]:
    """:func:`train_tabular_model`'s arguments from a JSON object, or a file holding one; hyperparameters
    given as fields of their own join ``hyperparameters``. Raises TabularError naming a bad field."""
    source = text
    if not text.lstrip().startswith("{"):
        try:
            source = Path(text).read_text()
        except OSError as error:
            raise TabularError(f"--config: {text} is neither a JSON object nor a readable file: {error}") from error
    try:
        config = json.loads(source)
    except json.JSONDecodeError as error:
        raise TabularError(f"--config is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise TabularError(f"--config must be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_FIELDS) - set(HYPERPARAMETER_NAMES))
    if unknown:
        raise TabularError(
            f"--config: unknown field(s) {unknown}; known fields: {', '.join(CONFIG_FIELDS)}, "
            f"or a hyperparameter: {', '.join(HYPERPARAMETER_NAMES)}"
        )
    missing = [name for name in REQUIRED_CONFIG_FIELDS if name not in config]
    if missing:
        raise TabularError(f"--config: missing field(s) {missing}")
    arguments = {name: config[name] for name in CONFIG_FIELDS if name in config}
    for name, value in arguments.items():
        types = CONFIG_FIELDS[name]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join({dict: "object", str: "string", int: "integer", list: "list"}[t] for t in types)
            raise TabularError(f"--config: field {name!r} must be a JSON {expected}, got {value!r}")
    separate = {name: config[name] for name in HYPERPARAMETER_NAMES if name in config}
    if separate:
        given = arguments.get("hyperparameters") or {}
        if isinstance(given, str):
            try:
                given = json.loads(given)
            except json.JSONDecodeError as error:
                raise TabularError(f"--config: field 'hyperparameters' is not valid JSON: {error}") from error
        if not isinstance(given, dict):
            raise TabularError(f"--config: field 'hyperparameters' must be a JSON object, got {given!r}")
        twice = sorted(set(given) & set(separate))
        if twice:
            raise TabularError(f"--config: {twice} given both as fields and in hyperparameters")
        arguments["hyperparameters"] = {**given, **separate}
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a tabular classifier or regressor on Parquet or CSV splits.")
    parser.add_argument("--config", required=True, help="a JSON object of train_tabular_model arguments, or a file")
    args = parser.parse_args(argv)
    try:
        train_tabular_model(**config_arguments(args.config))
    except TabularError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
