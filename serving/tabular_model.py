"""KServe model that serves a tabular classifier or regressor written by the ``train_tabular`` component.

The model directory holds ``model.json`` (``"family": "tabular"``), the skops preprocessing and the
estimator (skops or XGBoost UBJSON); it is loaded with :func:`components.train_tabular.tabular_model.load`,
which checks every file's sha256 and unpickles nothing.

Protocols (routing, health and metadata come from KServe):

* V1: ``POST /v1/models/NAME:predict`` with ``{"instances": [{"feature": value, ...}, ...]}``: every
  feature of the model must be a field (``null`` means missing: the model imputes it as in training);
  other fields (ids, say) are ignored. Numeric features take numbers, categorical ones strings.
  Classification returns ``{"predictions": [{"label", "score", "scores": {label: probability}}]}``,
  regression ``{"predictions": [{"value", "p10", "p90"}]}`` (the p10-p90 prediction interval).
* V2 (Open Inference Protocol): ``POST /v2/models/NAME/infer`` with one tensor per feature, named after
  it, shape ``[N]`` (or ``[N, 1]``): ``BYTES`` for categorical features, a numeric datatype for numeric
  ones (NaN means missing). Outputs: ``label`` (BYTES) and ``score`` (FP32) for classification, ``value``,
  ``p10`` and ``p90`` (FP64) for regression, each of shape ``[N]``.

Concurrent requests are coalesced by :class:`serving.batching.AdaptiveBatcher` into one call of the
model on a worker thread. Bad input raises :class:`kserve.errors.InvalidInput` (HTTP 400) naming the
instance and the field, or the tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from serving.cpus import available_cpus
from serving.model_kind import ModelLoadError, local_model_path
from serving.predictor_base import (
    CLASSIFICATION_OUTPUTS, NUMERIC_V2_TYPES, BatchedPredictor, ClassPrediction, type_name, v2_string,
)  # fmt: skip

DEFAULT_MAX_INSTANCES = 1000
DEFAULT_MAX_BATCH_SIZE = 256
DEFAULT_MAX_BATCH_WAIT_MS = 0.0
REGRESSION_OUTPUTS = [("value", "FP64"), ("p10", "FP64"), ("p90", "FP64")]


@dataclass(frozen=True)
class ValuePrediction:
    value: float
    p10: float
    p90: float


Row = dict[str, Any]  # feature name -> float (NaN: missing) or str / None


class TabularPredictor(BatchedPredictor):
    """Serves a ``train_tabular`` model directory over KServe's V1 and V2 protocols."""

    instance_noun = "row"

    def __init__(
        self,
        name: str,
        model_dir: str,
        *,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_wait_ms: float = DEFAULT_MAX_BATCH_WAIT_MS,
    ):
        if max_instances < 1:
            raise ValueError(f"max_instances must be at least 1, got {max_instances}")
        super().__init__(name, self.predict_rows, max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms)
        self.model_dir = model_dir
        self.max_instances = max_instances
        self.features: list[dict[str, str]] = []
        self.task = ""

    def load(self) -> bool:
        # imported when a model loads: scikit-learn, skops and XGBoost take seconds to import
        from components.train_tabular import tabular_model

        path = local_model_path(self.model_dir)
        try:
            self._model = tabular_model.load(path)
        except Exception as error:  # sha256 mismatch, untrusted skops type, corrupt file: all mean "cannot serve"
            raise ModelLoadError(f"cannot load the tabular model in {path}: {error}") from error
        self.task = self._model.manifest["task"]
        self.features = list(self._model.manifest["features"])
        _limit_threads(self._model, default_model_threads())
        if self.task == "regression" and self._model.interval is None:
            raise ModelLoadError(f"{path / 'model.json'}: a regression model without its p10/p90 interval model")
        self.ready = True
        return self.ready

    def predict_rows(self, rows: list[Row]) -> list[ClassPrediction] | list[ValuePrediction]:
        """Predict checked rows (see :meth:`inputs_from_v1`); blocking, so the server calls it off the event loop."""
        frame = pd.DataFrame.from_records(rows, columns=[feature["name"] for feature in self.features])
        if self.task == "classification":
            probabilities = self._model.predict_proba(frame)
            return [ClassPrediction.best_of(self._model.classes, row) for row in probabilities.tolist()]
        values = self._model.predict(frame)
        bounds = self._model.predict_interval(frame)
        return [ValuePrediction(float(v), float(low), float(high)) for v, (low, high) in zip(values, bounds.tolist())]

    def get_input_types(self) -> list[dict]:
        return [
            {"name": f["name"], "datatype": "FP64" if f["type"] == "numeric" else "BYTES", "shape": [-1]}
            for f in self.features
        ]

    def output_tensors(self) -> list[tuple[str, str]]:
        return CLASSIFICATION_OUTPUTS if self.task == "classification" else REGRESSION_OUTPUTS

    def inputs_from_v1(self, payload: Any) -> list[Row]:
        """The feature values of each V1 instance, checked; raise InvalidInput naming the instance and field."""
        rows = []
        for index, instance in enumerate(self.v1_instances(payload)):
            where = f"instances[{index}]"
            if not isinstance(instance, dict):
                raise InvalidInput(
                    f"{where} must be an object of feature values, got {type_name(instance)}; "
                    f"features: {self._feature_list()}"
                )
            missing = [f["name"] for f in self.features if f["name"] not in instance]
            if missing:
                raise InvalidInput(f"{where} lacks feature field(s) {missing} (null stands for a missing value)")
            rows.append({f["name"]: _v1_value(instance[f["name"]], f, f"{where}.{f['name']}") for f in self.features})
        return rows

    def inputs_from_v2(self, request: InferRequest) -> list[Row]:
        """The rows of a V2 request: one tensor per feature; raise InvalidInput naming the tensor."""
        names = [f["name"] for f in self.features]
        takes = f"this model takes one tensor per feature: {names}"
        tensors = self.v2_tensors(request, names, missing_hint=takes, unknown_hint=takes)
        numeric = {f["name"]: f["type"] == "numeric" for f in self.features}

        def check_datatype(name: str, datatype: str, where: str) -> None:
            if numeric[name] and datatype not in NUMERIC_V2_TYPES:
                raise InvalidInput(f"{where} is a numeric feature: datatype must be numeric, got {datatype}")
            if not numeric[name] and datatype != "BYTES":
                raise InvalidInput(f"{where} is a categorical feature: datatype must be BYTES, got {datatype}")

        columns, count = self.v2_columns(
            tensors, names, check_datatype=check_datatype, allow_column=True,
            convert=lambda name, value, where: _v2_value(value, numeric[name], where),
        )  # fmt: skip
        return [{name: columns[name][i] for name in names} for i in range(count)]

    def _feature_list(self) -> str:
        return ", ".join(f"{f['name']} ({f['type']})" for f in self.features)


def default_model_threads() -> int:
    """One CPU is left to the event loop (HTTP, JSON): the model's threads get the others."""
    return max(1, available_cpus() - 1)


def _limit_threads(model: Any, threads: int) -> None:
    """Cap the threads of the estimators (XGBoost's, a forest's joblib workers) and the process's thread pools.

    Predicting a few rows with every core busy is slower than with one thread when the event loop needs a core
    too: the threads spin waiting for each other (see train_tabular's num_threads).
    """
    from threadpoolctl import threadpool_limits

    interval = model.interval.values() if isinstance(model.interval, dict) else [model.interval]
    for estimator in [model.estimator, *interval]:
        if estimator is not None and "n_jobs" in estimator.get_params():
            estimator.set_params(n_jobs=threads)
    threadpool_limits(limits=threads)


def _v1_value(value: Any, feature: dict[str, str], where: str) -> float | str | None:
    if value is None:
        return math.nan if feature["type"] == "numeric" else None
    if feature["type"] == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"{where} is a numeric feature: give a number or null, got {type_name(value)}")
        if not math.isfinite(value):
            raise InvalidInput(f"{where} must be a finite number, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{where} is a categorical feature: give a string or null, got {type_name(value)}")
    return value


def _v2_value(value: Any, numeric: bool, where: str) -> float | str:
    if not numeric:
        return v2_string(value, where)
    number = float(value)
    if math.isinf(number):
        raise InvalidInput(f"{where} must be finite (NaN means missing), got {number}")
    return number
