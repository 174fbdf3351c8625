"""Score any model directory the project trains on a labelled test set, dispatching on what the directory holds.

| directory holds | kind | scored by | metrics the gate judges (first: the default ``compare_metric``) |
|---|---|---|---|
| ``config.json`` | text classifier | ``components/evaluate`` | macro_f1, accuracy, weighted_f1, roc_auc |
| ``model.json``, ``"family": "tabular"``, ``"task": "classification"`` | tabular classifier | ``components/train_tabular/scoring.py`` | macro_f1, accuracy, weighted_f1, roc_auc |
| ``model.json``, ``"family": "tabular"``, ``"task": "regression"`` | tabular regressor | ``components/train_tabular/scoring.py`` | rmse, mae, r2 |
| ``model.json``, ``"family": "anomaly"`` | anomaly detector | ``components/anomaly/scoring.py`` | f1, precision, recall |

The tabular and anomaly scorers are imported only when such a model is scored. ``rmse`` and ``mae`` are lower
is better; every other metric is higher is better.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.evaluate.predict import ModelDirError

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "weighted_f1", "roc_auc")


@dataclass(frozen=True)
class ModelKind:
    name: str
    judged_metrics: tuple[str, ...]
    """The quality metrics the gate compares (``max_regression``) and may ``compare_metric`` on; the first is the
    default ``compare_metric``."""

    @property
    def a_name(self) -> str:
        """The name with its indefinite article: "a text classifier", "an anomaly detector"."""
        return ("an " if self.name[0] in "aeiou" else "a ") + self.name

    @property
    def primary_metric(self) -> str:
        return self.judged_metrics[0]

    @property
    def is_classifier(self) -> bool:
        return "accuracy" in self.judged_metrics


TEXT_CLASSIFIER = ModelKind("text classifier", CLASSIFICATION_METRICS)
TABULAR_CLASSIFIER = ModelKind("tabular classifier", CLASSIFICATION_METRICS)
TABULAR_REGRESSOR = ModelKind("tabular regressor", ("rmse", "mae", "r2"))
ANOMALY_DETECTOR = ModelKind("anomaly detector", ("f1", "precision", "recall"))
KINDS = (TEXT_CLASSIFIER, TABULAR_CLASSIFIER, TABULAR_REGRESSOR, ANOMALY_DETECTOR)
KNOWN_METRICS = tuple(dict.fromkeys(metric for kind in KINDS for metric in kind.judged_metrics))


def model_kind(model_dir: str | Path) -> ModelKind:
    """What ``model_dir`` holds, from its ``config.json`` (Hugging Face) or ``model.json`` (``family``, ``task``)."""
    path = Path(model_dir)
    if (path / "config.json").is_file():
        return TEXT_CLASSIFIER
    manifest_path = path / "model.json"
    if not manifest_path.is_file():
        if not path.exists():
            raise ModelDirError(f"{path} is not a model directory: it does not exist")
        raise ModelDirError(
            f"{path} is not a model directory: it holds neither config.json (text) nor model.json (tabular, anomaly)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelDirError(f"{manifest_path} is not readable JSON: {error}") from error
    family = manifest.get("family") if isinstance(manifest, dict) else None
    if family == "anomaly":
        return ANOMALY_DETECTOR
    if family == "tabular":
        task = manifest.get("task")
        if task == "classification":
            return TABULAR_CLASSIFIER
        if task == "regression":
            return TABULAR_REGRESSOR
        raise ModelDirError(f"{manifest_path}: \"task\" is {task!r}, not \"classification\" or \"regression\"")
    raise ModelDirError(f"{manifest_path}: \"family\" is {family!r}, not \"tabular\" or \"anomaly\"")


def score_model(
    model_dir: str,
    kind: ModelKind,
    test_path: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
) -> dict[str, float]:
    """The metrics of the ``kind`` model in ``model_dir`` on the labelled Parquet ``test_path``: label_column is the
    label (classifiers), the target (regressors) or the anomaly label (detectors)."""
    if kind is TEXT_CLASSIFIER:
        from components.evaluate.evaluate import evaluate_model, read_test_set

        return evaluate_model(model_dir, read_test_set(test_path, text_column, label_column), batch_size).metrics
    if kind in (TABULAR_CLASSIFIER, TABULAR_REGRESSOR):
        from components.train_tabular.scoring import score_tabular_model

        return score_tabular_model(model_dir, test_path, label_column)
    from components.anomaly.scoring import score_anomaly_model  # the one kind left: ANOMALY_DETECTOR

    return score_anomaly_model(model_dir, test_path, label_column)


def scored_rows(metrics: dict[str, float]) -> int | None:
    """The number of scored test rows, when the scorer reports it (``test_rows`` or ``rows``)."""
    rows = metrics.get("test_rows", metrics.get("rows"))
    return None if rows is None else int(rows)
