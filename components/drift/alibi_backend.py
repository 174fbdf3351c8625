"""The alibi-detect backend of :class:`components.drift.detectors.DriftDetector`.

alibi-detect 0.12 and later is licensed under the Business Source License 1.1 (not an open-source
licence); check that your use is permitted. Everything alibi-specific lives in this module, so a
different backend can replace it (see :mod:`components.drift.detectors`).

* ``tabular``: ``TabularDrift``: Kolmogorov-Smirnov per numeric column, Chi-squared per categorical column
  (``categories_per_feature``; categories are coded by :mod:`components.drift.features`), Bonferroni or FDR.
* ``text``: ``MMDDrift`` (PyTorch backend, Gaussian RBF kernel with the median-heuristic bandwidth of the
  reference) on sentence embeddings. Texts are embedded by alibi-detect's ``preprocess_drift`` with a
  :class:`MeanPooledEncoder`: the mean of the last hidden states over the real tokens, L2-normalised, which
  is how all-MiniLM-L6-v2 makes its sentence embeddings.
* ``output``: ``TabularDrift`` with one categorical feature: the labels (Chi-squared).
* ``series`` (with a time column): not alibi-detect's, :class:`components.drift.series.SeriesTest`, run beside
  alibi-detect's tests; alibi-detect's tests assume i.i.d. windows, which time series are not.

Saved layout: ``detector.json`` (the manifest: columns, settings, category codes, library versions), one
``save_detector`` directory per test (``config.toml`` + ``x_ref.npy``; reference embeddings, not texts, for
the text test), ``series/`` (``series.json`` + ``reference.npz``: the reference rows) and ``encoder/`` (the
encoder and tokenizer, safetensors). Loading refuses any pickle-type file and loads arrays with
``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Self

import alibi_detect
import numpy as np
import pandas as pd
import scipy
import torch
import transformers
from alibi_detect.cd import MMDDrift, TabularDrift
from alibi_detect.cd.pytorch.preprocess import preprocess_drift
from alibi_detect.saving import load_detector as alibi_load_detector
from alibi_detect.saving import save_detector as alibi_save_detector
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from components.drift import features
from components.drift.detectors import (
    FORMAT_VERSION,
    DetectorLoadError,
    DetectorSettings,
    DriftColumns,
    DriftInputError,
    DriftResult,
    DriftTestResult,
    FeatureDrift,
    level_per_test,
    read_manifest,
    write_manifest,
)
from components.drift.series import SeriesTest

log = logging.getLogger(__name__)

BACKEND = "alibi-detect"
ENCODER_DIR = "encoder"
SERIES_DIR = "series"
MIN_REFERENCE_ROWS = 20
UNSAFE_SUFFIXES = frozenset({".dill", ".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib"})
"""Files that would be unpickled (alibi-detect's legacy and custom-model formats): refused on load."""


class MeanPooledEncoder(torch.nn.Module):
    """Sentence embeddings: the mean of the last hidden states over the unpadded tokens, L2-normalised.

    Padding is masked out, so a text's embedding does not depend on the batch it is embedded in.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def load_encoder(model_dir: str | Path, device: torch.device) -> tuple[MeanPooledEncoder, PreTrainedTokenizerBase]:
    """The encoder of a local Hugging Face model directory (e.g. train's model, or MiniLM), safetensors only."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise DriftInputError(f"encoder directory {path} is not a Hugging Face model directory (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise DriftInputError(f"encoder directory {path} has no .safetensors weights (only safetensors are loaded)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as error:
        raise DriftInputError(f"cannot load the encoder in {path}: {error}") from error
    return MeanPooledEncoder(model).to(device).eval(), tokenizer


def library_versions() -> dict[str, str]:
    return {
        "alibi-detect": alibi_detect.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


class AlibiDriftDetector:
    """Tabular, text and output drift tests of alibi-detect behind the ``DriftDetector`` protocol."""

    backend: ClassVar[str] = BACKEND

    def __init__(self, columns: DriftColumns, settings: DetectorSettings):
        self.columns = columns
        self.settings = settings
        self.device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.reference_rows = 0
        self._tests: dict[str, Any] = {}  # test name -> fitted alibi-detect detector
        self._series: SeriesTest | None = None
        self._references: dict[str, np.ndarray] = {}  # test name -> its x_ref (for the plots)
        self._categories: dict[str, list[str]] = {}
        self._labels: list[str] = []
        self._encoder: MeanPooledEncoder | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def test_names(self) -> list[str]:
        wanted = {
            "tabular": self.columns.tabular, "series": self.columns.series, "text": self.columns.text,
            "output": self.columns.label,
        }  # fmt: skip
        return [name for name, columns in wanted.items() if columns]

    @property
    def level(self) -> float:
        return level_per_test(self.settings.p_val, len(self.test_names))

    # --- fit -----------------------------------------------------------------------------------------

    def fit(self, reference: pd.DataFrame) -> None:
        where = "the reference data"
        label = self.columns.label
        features.require_columns(reference, [*self.columns.fields, *([label] if label else [])], where)
        if len(reference) < MIN_REFERENCE_ROWS:
            raise DriftInputError(f"{where} has {len(reference)} rows; at least {MIN_REFERENCE_ROWS} are needed")
        if label:
            label_keys = features.category_keys(reference, label)
            self._labels = features.vocabulary(label_keys)
            if len(self._labels) < 2:
                raise DriftInputError(
                    f"label column {label!r} of {where} has {len(self._labels)} distinct value(s); "
                    "the output test needs at least 2"
                )
        if self.columns.tabular:
            self._categories = {
                column: features.vocabulary(features.category_keys(reference, column))
                for column in self.columns.categorical
            }
            categorical = {
                len(self._tabular_numeric) + index: list(range(len(self._categories[column])))
                for index, column in enumerate(self.columns.categorical)
            }
            self._fit_test("tabular", TabularDrift(
                self._tabular_matrix(reference, where), p_val=self.level, categories_per_feature=categorical,
                correction=self.settings.correction,
            ))  # fmt: skip
        if self.columns.series:
            self._series = SeriesTest.fit(reference, self.columns, where)
        if self.columns.text:
            self._encoder, self._tokenizer = load_encoder(self.settings.encoder_dir, self.device)
            embeddings = self.embed(features.texts(reference, self.columns.text, where))
            # device=None: the saved detector picks CUDA wherever it is loaded, if there is one.
            self._fit_test("text", MMDDrift(
                embeddings, backend="pytorch", p_val=self.level, n_permutations=self.settings.n_permutations,
                device=None,
            ))  # fmt: skip
        if label:
            codes = features.encode(label_keys, self._labels).astype(np.float64)[:, None]
            self._fit_test("output", TabularDrift(
                codes, p_val=self.level, categories_per_feature={0: list(range(len(self._labels)))}
            ))  # fmt: skip
        self.reference_rows = len(reference)

    def _fit_test(self, name: str, detector: Any) -> None:
        self._tests[name] = detector
        self._references[name] = detector.get_config()["x_ref"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings (float32, one row per text) through alibi-detect's ``preprocess_drift``."""
        if self._encoder is None:
            raise DriftInputError("this detector has no text encoder")
        order = np.argsort([len(text) for text in texts], kind="stable")  # similar lengths batch with less padding
        embedded = preprocess_drift(
            [texts[i] for i in order], model=self._encoder, device=self.device, tokenizer=self._tokenizer,
            max_len=self.settings.max_tokens, batch_size=self.settings.batch_size,
        )  # fmt: skip
        restored = np.empty_like(embedded)
        restored[order] = embedded
        return restored

    # --- predict -------------------------------------------------------------------------------------

    def predict(self, window: pd.DataFrame) -> DriftResult:
        if not self._tests and self._series is None:
            raise DriftInputError("the detector is not fitted: call fit() or load() first")
        where = "the window"
        if len(window) == 0:
            raise DriftInputError(f"{where} is empty")
        features.require_columns(window, self.columns.fields, where)
        tests, not_run = [], {}
        if "tabular" in self._tests:
            tests.append(self._predict_tabular(window, where))
        if self._series is not None:
            tests.append(self._series.test(window, self.level, self.settings.correction, self.settings.seed))
        if "text" in self._tests:
            tests.append(self._predict_text(window, where))
        if "output" in self._tests:
            prediction = self.columns.prediction
            if prediction not in window.columns or window[prediction].isna().all():
                not_run["output"] = f"the window has no predictions (column {prediction!r})"
            else:
                tests.append(self._predict_output(window[window[prediction].notna()]))
        return DriftResult(
            drift=any(test.drift for test in tests),
            p_val=self.settings.p_val,
            reference_rows=self.reference_rows,
            window_rows=len(window),
            tests=tuple(tests),
            not_run=not_run,
        )

    def _predict_tabular(self, window: pd.DataFrame, where: str) -> DriftTestResult:
        x = self._tabular_matrix(window, where)
        data = self._tests["tabular"].predict(x, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        p_values = np.asarray(data["p_val"], dtype=float)
        thresholds = _feature_thresholds(p_values, data["threshold"])
        x_ref = self._references["tabular"]
        results = []
        for index, column in enumerate(self.columns.tabular):
            if column in self._categories:
                test = "Chi2"
                categories = self._categories[column]
                distribution = features.frequencies(
                    x_ref[:, index].astype(np.int64), x[:, index].astype(np.int64), categories
                )
            else:
                test, distribution = "KS", features.histogram(x_ref[:, index], x[:, index])
            results.append(FeatureDrift(
                feature=column, test=test, statistic=float(data["distance"][index]), p_value=float(p_values[index]),
                threshold=float(thresholds[index]), drift=bool(p_values[index] < thresholds[index]),
                distribution=distribution,
            ))  # fmt: skip
        return DriftTestResult("tabular", self.level, bool(data["is_drift"]), len(window), tuple(results))

    def _predict_text(self, window: pd.DataFrame, where: str) -> DriftTestResult:
        embeddings = self.embed(features.texts(window, self.columns.text, where))
        with torch.random.fork_rng(devices=[]):  # seeded permutations, without touching the caller's RNG
            torch.manual_seed(self.settings.seed)
            data = self._tests["text"].predict(embeddings, return_p_val=True, return_distance=True)["data"]
        result = FeatureDrift(
            feature=self.columns.text, test="MMD", statistic=float(data["distance"]), p_value=float(data["p_val"]),
            threshold=self.level, drift=bool(data["is_drift"]),
            distribution=features.projection(self._references["text"], embeddings, self.settings.seed),
        )  # fmt: skip
        return DriftTestResult("text", self.level, bool(data["is_drift"]), len(window), (result,))

    def _predict_output(self, window: pd.DataFrame) -> DriftTestResult:
        codes = features.encode(features.category_keys(window, self.columns.prediction), self._labels)
        data = self._tests["output"].predict(codes.astype(np.float64)[:, None], return_p_val=True)["data"]
        result = FeatureDrift(
            feature=self.columns.prediction, test="Chi2", statistic=float(data["distance"][0]),
            p_value=float(data["p_val"][0]), threshold=float(data["threshold"]), drift=bool(data["is_drift"]),
            distribution=features.frequencies(self._references["output"][:, 0].astype(np.int64), codes, self._labels),
        )  # fmt: skip
        return DriftTestResult("output", self.level, bool(data["is_drift"]), len(window), (result,))

    @property
    def _tabular_numeric(self) -> tuple[str, ...]:
        """Numeric columns of the tabular test (none when the series test takes them)."""
        return () if self.columns.series else self.columns.numeric

    def _tabular_matrix(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        numeric = [features.numeric_values(frame, column, where) for column in self._tabular_numeric]
        categorical = [
            features.encode(features.category_keys(frame, column), self._categories[column]).astype(np.float64)
            for column in self.columns.categorical
        ]
        return np.column_stack(numeric + categorical)

    # --- save / load ---------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        if not self._tests and self._series is None:
            raise DriftInputError("the detector is not fitted: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, detector in self._tests.items():
            (directory / name).mkdir()
            alibi_save_detector(detector, directory / name)
        if self._series is not None:
            self._series.save(directory / SERIES_DIR)
        if self._encoder is not None:
            self._encoder.model.save_pretrained(directory / ENCODER_DIR, safe_serialization=True)
            self._tokenizer.save_pretrained(directory / ENCODER_DIR)
        write_manifest(directory, {
            "format_version": FORMAT_VERSION,
            "backend": BACKEND,
            "columns": self.columns.to_json(),
            "settings": asdict(self.settings),
            "tests": {name: {"level": self.level, "directory": name} for name in self.test_names},
            "categories": self._categories,
            "labels": self._labels,
            "reference_rows": self.reference_rows,
            "versions": library_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip

    @classmethod
    def load(cls, directory: Path, *, device: str = "") -> Self:
        directory = Path(directory)
        manifest = read_manifest(directory)
        _refuse_pickles(directory)
        saved_version = manifest.get("versions", {}).get("alibi-detect")
        if saved_version != alibi_detect.__version__:
            log.warning("detector %s was saved with alibi-detect %s; this is %s", directory, saved_version,
                        alibi_detect.__version__)  # fmt: skip
        settings = DetectorSettings(**{**manifest["settings"], "device": device})
        detector = cls(DriftColumns.from_json(manifest["columns"]), settings)
        for name in detector.test_names:
            if name == "series":
                detector._series = _load_series(directory / SERIES_DIR, detector.columns)
                continue
            if not (directory / name / "config.toml").is_file():
                raise DetectorLoadError(f"{directory / name / 'config.toml'} is missing: the detector is incomplete")
            try:
                detector._fit_test(name, alibi_load_detector(directory / name))
            except (OSError, ValueError, KeyError) as error:
                raise DetectorLoadError(f"cannot load the {name} test from {directory / name}: {error}") from error
        if detector.columns.text:
            try:
                detector._encoder, detector._tokenizer = load_encoder(directory / ENCODER_DIR, detector.device)
            except DriftInputError as error:
                raise DetectorLoadError(str(error)) from error
        detector._categories = manifest["categories"]
        detector._labels = manifest["labels"]
        detector.reference_rows = manifest["reference_rows"]
        return detector


def _load_series(directory: Path, columns: DriftColumns) -> SeriesTest:
    try:
        return SeriesTest.load(directory, columns)
    except (OSError, ValueError, KeyError) as error:
        raise DetectorLoadError(f"cannot load the series test from {directory}: {error}") from error


def _feature_thresholds(p_values: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Per-feature p-value thresholds from alibi-detect's batch threshold.

    Bonferroni, or FDR with a rejection: one threshold for all. FDR without a rejection returns the whole
    Benjamini-Hochberg ladder, ``q * rank / n``; each feature is held to the rung of its rank.
    """
    if np.ndim(threshold) == 0:
        return np.full(len(p_values), float(threshold))
    ranks = np.argsort(np.argsort(p_values, kind="stable"), kind="stable")
    return np.asarray(threshold, dtype=float)[ranks]


def _refuse_pickles(directory: Path) -> None:
    unsafe = sorted(path for path in directory.rglob("*") if path.suffix in UNSAFE_SUFFIXES)
    if unsafe:
        raise DetectorLoadError(
            f"{directory} holds {[str(path.relative_to(directory)) for path in unsafe]}: pickle-based files are "
            "never loaded (a detector saved by this code has none)"
        )
