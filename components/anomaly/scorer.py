"""Score one metric series row by row or in blocks, keeping bounded state: the engine behind every detector.

A detector turns each row into one or more *surprises* (:mod:`components.anomaly.surprise`, or a fitted
Isolation Forest / autoencoder), then:

1. **relative to recent max**, per surprise: ``ratio = surprise / max(the previous `memory` rows' surprises)``,
   0 until ``warmup`` surprises are known. A ratio above 1 means "more surprising than anything recent", so a
   lasting anomaly stands out at its onset, and a noisy series does not alert all the time;
2. **combine**: the largest of the ratios;
3. **hold**: a row whose combined ratio does not beat those of the previous ``hold`` rows scores 0 (0 turns
   this off), so one event raises one alert, not one per row;
4. **refractory**: after a row whose held ratio is at least 1 (a new recent maximum: score >= 0.5), the next
   ``refractory`` rows score 0, so a surprise that keeps growing for a few rows alerts once;
5. **score** ``ratio / (1 + ratio)`` in [0, 1): above 0.5 means more surprising than anything recent.

:class:`SeriesScorer` keeps the last :meth:`DetectorSpec.context_rows` values, the recent surprises and
ratios, so scoring a series in pieces (or one row at a time) gives exactly the scores of scoring it whole.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from components.anomaly import surprise as S
from components.anomaly.surprise import DetectorError

KINDS = ("robust", "zscore", "isolation_forest", "autoencoder", "ensemble")


@dataclass(frozen=True)
class DetectorSpec:
    """A detector kind and its parameters (one fixed set for every series it scores).

    ``window``/``min_history``: rows of history of the robust and z-score surprises (and at least that many
    before they score). ``knn_widths``/``history``/``neighbours``: the ensemble's nearest-neighbour surprises
    (window widths, how many earlier windows they search, which neighbour's distance counts). ``width``: the
    window of the learned detectors. ``memory``/``warmup``/``hold``/``refractory``: the stages above.
    """

    kind: str = "ensemble"
    window: int = 400
    min_history: int = 150
    knn_widths: tuple[int, ...] = (10, 48)
    history: int = 2000
    neighbours: int = 10
    width: int = 16
    trees: int = 100
    epochs: int = 200
    seed: int = 0
    memory: int = 1500
    warmup: int = 50
    hold: int = 100
    refractory: int = 50

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DetectorError(f"detector must be one of {list(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "knn_widths", tuple(int(w) for w in self.knn_widths))
        positive = ["window", "min_history", "history", "neighbours", "width", "trees", "epochs", "memory", "warmup"]
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise DetectorError(f"detector parameter {name} must be >= 1, got {getattr(self, name)}")
        for name in ("hold", "refractory"):
            if getattr(self, name) < 0:
                raise DetectorError(f"detector parameter {name} must be >= 0, got {getattr(self, name)}")
        if self.kind == "ensemble" and (not self.knn_widths or min(self.knn_widths) < 1):
            raise DetectorError(f"detector parameter knn_widths must be positive widths, got {list(self.knn_widths)}")

    @classmethod
    def from_parameters(cls, kind: str, parameters: dict[str, Any]) -> DetectorSpec:
        """The spec for ``kind`` with ``parameters`` overriding the defaults; unknown names are an error."""
        known = {f.name: f for f in fields(cls) if f.name != "kind"}
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise DetectorError(f"unknown detector parameter(s) {unknown}; known: {sorted(known)}")
        values = {}
        for name, value in parameters.items():
            if name == "knn_widths":
                if not isinstance(value, (list, tuple)) or not all(_is_int(w) for w in value):
                    raise DetectorError(f"detector parameter knn_widths must be a list of integers, got {value!r}")
                values[name] = tuple(int(w) for w in value)
            elif not _is_int(value):
                raise DetectorError(f"detector parameter {name} must be an integer, got {value!r}")
            else:
                values[name] = int(value)
        return cls(kind=kind, **values)

    def parameters(self) -> dict[str, Any]:
        """The parameters this kind uses, JSON-ready."""
        used = {
            "robust": ("window", "min_history"),
            "zscore": ("window", "min_history"),
            "isolation_forest": ("width", "trees", "seed"),
            "autoencoder": ("width", "epochs", "seed"),
            "ensemble": ("window", "min_history", "knn_widths", "history", "neighbours"),
        }[self.kind] + ("memory", "warmup", "hold", "refractory")
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in used}

    @property
    def components(self) -> int:
        return 1 + len(self.knn_widths) if self.kind == "ensemble" else 1

    @property
    def learned(self) -> bool:
        return self.kind in ("isolation_forest", "autoencoder")

    def context_rows(self) -> int:
        """Values a series must keep so that its next row scores as if the whole series were at hand."""
        if self.kind in ("robust", "zscore"):
            return self.window
        if self.learned:
            return self.width - 1
        return max([self.window] + [2 * width + self.history - 2 for width in self.knn_widths])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


class SlidingMax:
    """Maximum of the last ``span`` pushed values (NaN is pushed as "unknown" and never the maximum), O(1) per push."""

    def __init__(self, span: int):
        self.span = span
        self.pushed = 0  # values pushed so far
        self.known = 0  # known (non-NaN) values pushed so far
        self._entries: deque[tuple[int, float]] = deque()  # (push number, value), values decreasing

    def current(self) -> float:
        """The maximum of the last ``span`` values pushed; NaN when none of them is known."""
        return self._entries[0][1] if self._entries else math.nan

    def push(self, value: float) -> None:
        if not math.isnan(value):
            while self._entries and self._entries[-1][1] <= value:
                self._entries.pop()
            self._entries.append((self.pushed, value))
            self.known += 1
        self.pushed += 1
        while self._entries and self._entries[0][0] <= self.pushed - 1 - self.span:
            self._entries.popleft()

    def to_state(self) -> dict[str, Any]:
        return {"pushed": self.pushed, "known": self.known, "ages": [self.pushed - 1 - i for i, _ in self._entries],
                "values": [v for _, v in self._entries]}  # fmt: skip

    @classmethod
    def from_state(cls, span: int, state: dict[str, Any]) -> SlidingMax:
        restored = cls(span)
        restored.pushed, restored.known = int(state["pushed"]), int(state["known"])
        restored._entries = deque(
            (restored.pushed - 1 - int(age), float(value)) for age, value in zip(state["ages"], state["values"])
        )
        return restored


@dataclass
class SeriesScorer:
    """One series' detector: the spec, what was fitted for this series (if anything) and the bounded state."""

    spec: DetectorSpec
    fitted: Any = None  # FittedWindowModel for isolation_forest and autoencoder
    context: deque[float] = field(default=None)  # type: ignore[assignment]
    recent: list[SlidingMax] = field(default=None)  # type: ignore[assignment]
    held: SlidingMax = field(default=None)  # type: ignore[assignment]
    quiet: int = 0  # rows left in the refractory period

    def __post_init__(self) -> None:
        if self.spec.learned and self.fitted is None:
            raise DetectorError(f"the {self.spec.kind} detector must be fitted before it scores")
        if self.context is None:
            self.context = deque(maxlen=self.spec.context_rows())
        if self.recent is None:
            self.recent = [SlidingMax(self.spec.memory) for _ in range(self.spec.components)]
        if self.held is None:
            self.held = SlidingMax(max(self.spec.hold, 1))

    def score(self, values: Iterable[float]) -> np.ndarray:
        """Scores in [0, 1) of the next rows of the series; the state moves on past them."""
        new = S.checked_values(np.fromiter(values, dtype=np.float64))
        if new.size == 0:
            return new
        start = len(self.context)
        series = np.concatenate([np.fromiter(self.context, dtype=np.float64, count=start), new])
        surprises = self._surprises(series, start)  # rows x components
        scores = np.empty(new.size)
        for row, row_surprises in enumerate(surprises):
            ratio = 0.0
            for recent, surprise in zip(self.recent, row_surprises):
                reference = recent.current()
                if recent.known >= self.spec.warmup and not math.isnan(surprise):
                    ratio = max(ratio, surprise / max(reference, S.TINY_SCALE))
                recent.push(float(surprise))
            held = 0.0 if self.spec.hold and self.held.pushed and ratio <= self.held.current() else ratio
            self.held.push(ratio)
            if self.quiet:
                self.quiet -= 1
                held = 0.0
            elif held >= 1.0:
                self.quiet = self.spec.refractory
            scores[row] = held / (1.0 + held)
        self.context.extend(new.tolist())
        return scores

    def _surprises(self, series: np.ndarray, start: int) -> np.ndarray:
        spec = self.spec
        if spec.kind == "robust":
            return S.robust_surprise(series, spec.window, spec.min_history, start)[:, None]
        if spec.kind == "zscore":
            return S.zscore_surprise(series, spec.window, spec.min_history, start)[:, None]
        if spec.kind == "ensemble":
            parts = [S.robust_surprise(series, spec.window, spec.min_history, start)]
            parts += [S.knn_surprise(series, width, spec.history, spec.neighbours, spec.min_history, start)
                      for width in spec.knn_widths]  # fmt: skip
            return np.stack(parts, axis=1)
        return self.fitted.surprise(series, start)[:, None]

    def to_state(self) -> dict[str, Any]:
        """The state as JSON-ready lists (bounded by the spec: context_rows values plus the sliding maxima)."""
        return {"context": list(self.context), "recent": [r.to_state() for r in self.recent], "held": self.held.to_state(),
                "quiet": self.quiet}  # fmt: skip

    def with_state(self, state: dict[str, Any]) -> SeriesScorer:
        """A scorer with this one's spec and fitted model, resuming from ``state`` (from :meth:`to_state`)."""
        spec = self.spec
        if len(state["recent"]) != spec.components:
            raise DetectorError(f"state has {len(state['recent'])} surprise histories, the {spec.kind} detector {spec.components}")
        return replace(
            self,
            context=deque((float(v) for v in state["context"]), maxlen=spec.context_rows()),
            recent=[SlidingMax.from_state(spec.memory, r) for r in state["recent"]],
            held=SlidingMax.from_state(max(spec.hold, 1), state["held"]),
            quiet=int(state["quiet"]),
        )

    def fresh(self) -> SeriesScorer:
        """A scorer with this one's spec and fitted model and no history (a series seen for the first time)."""
        return SeriesScorer(self.spec, self.fitted)
