"""The drift-detector interface, kept apart from any one library.

A :class:`DriftDetector` is fitted on reference (training) data, judges a window of live data, and saves
itself to a directory with a ``detector.json`` manifest that names its backend. :func:`load_detector`
reads the manifest and hands the directory to that backend, so a pipeline never imports a backend
directly. The only backend today is alibi-detect (:mod:`components.drift.alibi_backend`). alibi-detect
0.12 and later is under the Business Source License 1.1, which is why it stays behind this interface:
another backend is one more entry in :data:`BACKENDS` and one module implementing the protocol.

A detector runs up to four tests, each at level ``p_val / number of tests`` (Bonferroni), so the chance
that a window from the reference distribution is flagged stays at most ``p_val``:

* ``tabular``: a univariate test per numeric (Kolmogorov-Smirnov) and categorical (Chi-squared) column,
  with a Bonferroni or FDR correction across the columns;
* ``series``: with a time column, the numeric columns instead, as time series: seasonal residuals judged
  against reference windows of the window's length (:mod:`components.drift.series`), because a window of
  autocorrelated, seasonal values is no i.i.d. sample of the reference and KS flags it;
* ``text``: a multivariate MMD permutation test on sentence embeddings of the text column;
* ``output``: a Chi-squared test of the window's predicted labels against the reference labels.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import pandas as pd

MANIFEST = "detector.json"
MANIFEST_KEYS = ("format_version", "backend", "columns", "settings", "tests", "reference_rows", "versions")
"""What every backend's manifest holds: ``tests`` maps test name -> {"level", ...}; ``versions`` library -> version."""
FORMAT_VERSION = 1
DEFAULT_BACKEND = "alibi-detect"
BACKENDS: dict[str, str] = {"alibi-detect": "components.drift.alibi_backend:AlibiDriftDetector"}
"""Backend name -> ``module:class`` implementing :class:`DriftDetector`; imported only when used."""
CORRECTIONS = ("bonferroni", "fdr")
MIN_PERMUTATIONS = 10


class DriftInputError(ValueError):
    """Data or settings a detector cannot use; the message names the column, row, file or setting."""


class DetectorLoadError(ValueError):
    """A detector directory that is missing, incomplete, unsafe to load or from an unknown backend."""


@dataclass(frozen=True)
class DriftColumns:
    """Which columns a detector watches. Reference data and windows share the feature column names."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    text: str = ""
    label: str = ""
    """Label column of the reference data; "" runs no output test."""
    prediction: str = "prediction"
    """Column of a window holding the model's predicted label, compared with the reference labels."""
    time: str = ""
    """Column of each row's time (reference and window); with it, the numeric columns are tested as time series."""
    group: str = ""
    """With ``time``: column naming the series a row belongs to (e.g. the host); "" is one series."""

    @property
    def tabular(self) -> tuple[str, ...]:
        """Columns of the tabular test: the numeric ones only when there is no time column."""
        return (() if self.time else self.numeric) + self.categorical

    @property
    def series(self) -> tuple[str, ...]:
        """Columns of the series test."""
        return self.numeric if self.time else ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + ((self.text,) if self.text else ())

    @property
    def fields(self) -> tuple[str, ...]:
        """What a window must hold: the features, and the time and group columns of the series test."""
        return self.features + tuple(name for name in (self.time, self.group) if name)

    def check(self) -> None:
        """Raise :class:`DriftInputError` naming the first problem."""
        if not self.features:
            raise DriftInputError("no columns to watch: give numeric, categorical or text columns")
        if self.time and not self.numeric:
            raise DriftInputError(f"time column {self.time!r} needs numeric columns to test as time series")
        if self.group and not self.time:
            raise DriftInputError(f"group column {self.group!r} needs a time column (it names a time series)")
        names = [*self.fields, *((self.label,) if self.label else ())]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DriftInputError(
                f"columns {repeated} are listed more than once (features, time, group and label must differ)"
            )
        if any(not name for name in names):
            raise DriftInputError("a column name is empty")
        if self.label and not self.prediction:
            raise DriftInputError("an output test (label column set) needs a prediction column name")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftColumns:
        return cls(**{**data, "numeric": tuple(data["numeric"]), "categorical": tuple(data["categorical"])})


@dataclass(frozen=True)
class DetectorSettings:
    p_val: float = 0.05
    """Chance of flagging a window drawn from the reference distribution (split over the tests)."""
    correction: str = "bonferroni"
    """Across tabular columns: ``bonferroni`` (family-wise) or ``fdr`` (Benjamini-Hochberg q-value)."""
    n_permutations: int = 100
    """Permutations of the MMD test; its p-value has a resolution of 1 / n_permutations."""
    encoder_dir: str = ""
    """Hugging Face model directory of the text encoder (needed with a text column)."""
    max_tokens: int = 128
    batch_size: int = 32
    """Texts embedded per forward pass."""
    device: str = ""
    """torch device for the encoder and the MMD test; "" picks CUDA when there is one."""
    seed: int = 0
    """Seeds the MMD permutations, so the same window always gets the same answer."""

    def check(self) -> None:
        if not 0.0 < self.p_val < 1.0:
            raise DriftInputError(f"p_val must be in (0, 1), got {self.p_val}")
        if self.correction not in CORRECTIONS:
            raise DriftInputError(f"correction must be one of {list(CORRECTIONS)}, got {self.correction!r}")
        if self.n_permutations < MIN_PERMUTATIONS:
            raise DriftInputError(f"n_permutations must be at least {MIN_PERMUTATIONS}, got {self.n_permutations}")
        if self.max_tokens < 2 or self.batch_size < 1:
            raise DriftInputError(
                f"max_tokens must be >= 2 and batch_size >= 1, got {self.max_tokens} and {self.batch_size}"
            )


@dataclass(frozen=True)
class Histogram:
    """A numeric column: counts of the reference and of the window over the same bins."""

    edges: list[float]
    reference: list[int]
    window: list[int]


@dataclass(frozen=True)
class Frequencies:
    """A categorical column or the labels: counts per category of the reference and of the window."""

    categories: list[str]
    reference: list[int]
    window: list[int]


@dataclass(frozen=True)
class Projection:
    """Embeddings projected on the reference's first two principal components (a sample of points)."""

    reference: list[tuple[float, float]]
    window: list[tuple[float, float]]
    explained_variance: tuple[float, float]


Distribution = Histogram | Frequencies | Projection


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    test: str
    """``KS``, ``Chi2``, ``MMD``, or the series test's ``level`` and ``spread``."""
    statistic: float
    """KS distance, Chi-squared statistic, MMD² (biased estimate, from alibi-detect); for the series test the level
    shift (in the series' robust scales) or the spread ratio of the window against its like windows."""
    p_value: float
    threshold: float
    """The p-value below which this feature counts as drifted, after the corrections."""
    drift: bool
    distribution: Distribution | None = None


@dataclass(frozen=True)
class DriftTestResult:
    name: str
    """``tabular``, ``series``, ``text`` or ``output``."""
    level: float
    """This test's share of ``p_val``."""
    drift: bool
    window_rows: int
    features: tuple[FeatureDrift, ...]
    note: str = ""
    """How the test judged this window, for the report (e.g. how many like windows the series test had)."""


@dataclass(frozen=True)
class DriftResult:
    drift: bool
    p_val: float
    reference_rows: int
    window_rows: int
    tests: tuple[DriftTestResult, ...]
    not_run: dict[str, str] = field(default_factory=dict)
    """Test name -> why it did not run on this window (e.g. no predictions)."""

    @property
    def features(self) -> list[FeatureDrift]:
        return [feature for test in self.tests for feature in test.features]

    @property
    def drifted_features(self) -> list[str]:
        """Each drifted feature once (the series test judges a column by two statistics)."""
        return list(dict.fromkeys(feature.feature for feature in self.features if feature.drift))


class DriftDetector(Protocol):
    """A backend's detector; :func:`create_detector` builds one as ``Backend(columns, settings)``."""

    backend: ClassVar[str]
    columns: DriftColumns
    settings: DetectorSettings

    def fit(self, reference: pd.DataFrame) -> None:
        """Learn the reference distribution of :attr:`columns` (and of the label column)."""

    def predict(self, window: pd.DataFrame) -> DriftResult:
        """Test a window holding the feature columns and, for the output test, the prediction column."""

    def save(self, directory: Path) -> None:
        """Write the fitted detector, with a :data:`MANIFEST` naming the backend, into ``directory``."""

    @classmethod
    def load(cls, directory: Path, *, device: str = "") -> Self:
        """A detector saved by :meth:`save`; never unpickles anything."""


def level_per_test(p_val: float, tests: int) -> float:
    """Bonferroni share of ``p_val`` for each of ``tests`` tests."""
    return p_val / tests


def create_detector(
    columns: DriftColumns, settings: DetectorSettings, backend: str = DEFAULT_BACKEND
) -> DriftDetector:
    """An unfitted detector of ``backend``."""
    columns.check()
    settings.check()
    if columns.text and not settings.encoder_dir:
        raise DriftInputError(f"text column {columns.text!r} needs an encoder: set encoder_dir (or the encoder input)")
    return _backend_class(backend)(columns, settings)


def load_detector(directory: str | Path, *, device: str = "") -> DriftDetector:
    """The detector saved in ``directory``, by the backend its manifest names."""
    manifest = read_manifest(directory)
    return _backend_class(manifest["backend"]).load(Path(directory), device=device)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DetectorLoadError(f"{directory} is not a drift detector directory: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DetectorLoadError(f"cannot read {path}: {error}") from error
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise DetectorLoadError(f"{path} lacks {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DetectorLoadError(
            f"{path} has format_version {manifest['format_version']}; this code reads {FORMAT_VERSION}"
        )
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _backend_class(backend: str) -> type[DriftDetector]:
    if backend not in BACKENDS:
        raise DetectorLoadError(f"unknown drift backend {backend!r}; known: {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)
