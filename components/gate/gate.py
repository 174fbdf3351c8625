"""Champion/challenger gate: score both models on one test set, bless the challenger only if it clears every bar.

The models are any kind :mod:`components.gate.scorers` knows (text or tabular classifier, tabular regressor,
anomaly detector); both must be of the same kind. Absolute bars hold always: ``min_accuracy`` and
``min_macro_f1`` for classifiers, and any ``thresholds`` bound such as ``{"rmse": "<=12"}``. When there is a
champion, the challenger's ``compare_metric`` (default: the kind's primary metric) must beat the champion's by
at least ``min_improvement`` (0: at least as good; negative: a little worse is fine), and none of the kind's
judged metrics may fall more than ``max_regression`` behind the champion's. For ``rmse`` and ``mae`` (lower is
better, in the target's units) both are relative to the champion's value; for every other metric they are
absolute differences.

The champion is ``champion_model`` (a local directory) when given, else the version the registry's
``champion`` alias points at (downloaded and verified), else there is none yet. With the registry, a challenger
that is not blessed is recorded in the alias history as ``declined`` (the champion stays).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.evaluate.evaluate import write_atomically
from components.evaluate.report import markdown_cell, optional_number
from components.gate.scorers import (
    KNOWN_METRICS,
    LOWER_IS_BETTER,
    TEXT_CLASSIFIER,
    ModelKind,
    model_kind,
    score_model,
    scored_rows,
)

CHAMPION_ALIAS = "champion"
TOLERANCE = 1e-9
"""Slack for float noise: an improvement of 0.1 computed as 0.0999999... still meets ``min_improvement=0.1``."""
_BOUND = re.compile(r"^\s*(<=|>=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_NOT_METRICS = ("test_rows", "rows")


class GateError(ValueError):
    """A gate setting out of range, or a champion the gate cannot read."""


@dataclass(frozen=True)
class Bound:
    """One absolute bar from ``thresholds``: ``metric operator value``, e.g. ``rmse <= 12``."""

    metric: str
    operator: str
    """``<=`` or ``>=``."""
    value: float


def parse_thresholds(text: str) -> tuple[Bound, ...]:
    """``thresholds``: a JSON object of metric → ``"<=NUMBER"``, ``">=NUMBER"`` or a bare number (``>=`` for
    higher-is-better metrics, ``<=`` for rmse and mae). Empty: no bounds."""
    if not text.strip():
        return ()
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise GateError(f'thresholds is not JSON ({error}); give an object such as {{"rmse": "<=12"}}') from None
    if not isinstance(parsed, dict):
        raise GateError(f'thresholds must be a JSON object such as {{"rmse": "<=12"}}, got {text!r}')
    bounds = []
    for metric, bar in parsed.items():
        if isinstance(bar, (int, float)) and not isinstance(bar, bool):
            bounds.append(Bound(metric, "<=" if metric in LOWER_IS_BETTER else ">=", float(bar)))
            continue
        match = _BOUND.match(bar) if isinstance(bar, str) else None
        if match is None:
            raise GateError(
                f'thresholds["{metric}"] is {json.dumps(bar)}: give "<=NUMBER", ">=NUMBER" or a number'
            )
        bounds.append(Bound(metric, match.group(1), float(match.group(2))))
    return tuple(bounds)


@dataclass(frozen=True)
class GateThresholds:
    min_accuracy: float = 0.0
    min_macro_f1: float = 0.0
    compare_metric: str = ""
    """Empty: the model kind's primary metric (macro_f1, rmse or f1)."""
    min_improvement: float = 0.0
    max_regression: float = 0.01
    bounds: tuple[Bound, ...] = ()

    def check(self) -> None:
        """Raise :class:`GateError` naming the first setting out of range."""
        for name in ("min_accuracy", "min_macro_f1"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GateError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.compare_metric and self.compare_metric not in KNOWN_METRICS:
            raise GateError(f"compare_metric must be one of {list(KNOWN_METRICS)}, got {self.compare_metric!r}")
        if not -1.0 <= self.min_improvement <= 1.0:
            raise GateError(f"min_improvement must be in [-1, 1], got {self.min_improvement}")
        if not 0.0 <= self.max_regression <= 1.0:
            raise GateError(f"max_regression must be in [0, 1], got {self.max_regression}")

    def check_for(self, kind: ModelKind) -> None:
        """Raise :class:`GateError` for a setting that does not apply to ``kind``."""
        self.check()
        if self.compare_metric and self.compare_metric not in kind.judged_metrics:
            raise GateError(
                f"compare_metric {self.compare_metric!r} is not judged for {kind.a_name}; use one of "
                f"{list(kind.judged_metrics)}"
            )
        if not kind.is_classifier:
            for name in ("min_accuracy", "min_macro_f1"):
                if getattr(self, name):
                    raise GateError(
                        f"{name} applies to classifiers, and the challenger is {kind.a_name} (metrics "
                        f"{', '.join(kind.judged_metrics)}): set a bar with thresholds, e.g. "
                        f'{{"{kind.primary_metric}": "{"<=" if kind.primary_metric in LOWER_IS_BETTER else ">="}..."}}'
                    )

    def metric_for(self, kind: ModelKind) -> str:
        return self.compare_metric or kind.primary_metric


@dataclass(frozen=True)
class GateCheck:
    threshold: str
    """The setting checked: ``min_accuracy``, ``min_macro_f1``, ``thresholds.<metric>``, ``min_improvement`` or
    ``max_regression``."""
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    blessed: bool
    reason: str
    """``"blessed: ..."`` with every check, or ``"not blessed: ..."`` with the failed ones; each names its threshold.
    It leads with the champion (``champion <name> version <n>``, ``champion <path>``) or ``no champion yet``."""
    checks: list[GateCheck]


@dataclass(frozen=True)
class Scored:
    model_dir: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Champion:
    """Where the champion came from: a registry version (``version`` set) or a local path."""

    model_dir: str
    model_name: str = ""
    version: str = ""

    @property
    def label(self) -> str:
        return f"{self.model_name} version {self.version}" if self.version else self.model_dir


@dataclass(frozen=True)
class RegistryLink:
    """The model registry the gate reads the champion from and records a declined challenger in."""

    model_name: str
    tracking_uri: str = ""
    challenger_version: str = ""
    """The challenger's registered version (register's output); with it a declined challenger is recorded."""
    actor: str = ""


@dataclass(frozen=True)
class GateResult:
    decision: GateDecision
    kind: ModelKind
    challenger: Scored
    champion: Scored | None
    """None when there is no champion yet."""
    champion_source: Champion | None = None


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    thresholds: GateThresholds,
    kind: ModelKind = TEXT_CLASSIFIER,
    champion_label: str = "",
) -> GateDecision:
    """Check the challenger's metrics against the absolute bars and, when there is one, the champion's metrics."""
    thresholds.check_for(kind)
    _check_bound_metrics(thresholds.bounds, challenger, kind)
    checks = []
    if kind.is_classifier:
        checks += [
            _at_least("min_accuracy", "accuracy", challenger["accuracy"], thresholds.min_accuracy),
            _at_least("min_macro_f1", "macro_f1", challenger["macro_f1"], thresholds.min_macro_f1),
        ]
    checks += [_bound(bound, challenger) for bound in thresholds.bounds]
    if champion is not None:
        checks.append(_improvement(challenger, champion, thresholds.metric_for(kind), thresholds.min_improvement))
        checks += [
            _regression(metric, challenger[metric], champion[metric], thresholds.max_regression)
            for metric in kind.judged_metrics
            if metric in challenger and metric in champion
        ]
    blessed = all(check.passed for check in checks)
    shown = checks if blessed else [check for check in checks if not check.passed]
    lead = "no champion yet" if champion is None else f"champion {champion_label}" if champion_label else ""
    details = ([lead] if lead else []) + [check.detail for check in shown]
    return GateDecision(blessed, ("blessed: " if blessed else "not blessed: ") + "; ".join(details), checks)


def champion_model_dir(champion_model: str) -> str | None:
    """The local directory of the champion (``file://`` is stripped); None for ``""``, meaning no champion given."""
    if not champion_model:
        return None
    if champion_model.startswith("file://"):
        return champion_model.removeprefix("file://")
    if "://" in champion_model:
        raise GateError(
            f"champion_model {champion_model!r} is a remote URI; the gate reads a local model directory "
            "(resolve the URI to a path first, e.g. the /gcs/ mount of a gs:// URI, or leave it empty and give "
            "registry_model_name to use the registry's champion)"
        )
    return champion_model


@contextmanager
def find_champion(champion_model: str, registry: RegistryLink | None) -> Iterator[Champion | None]:
    """The champion: ``champion_model`` when given, else the registry's ``champion`` version downloaded into a
    temporary directory (removed afterwards), else None."""
    local = champion_model_dir(champion_model)
    if local is not None or registry is None:
        yield None if local is None else Champion(local)
        return
    from components.register.registry import ModelRegistry

    store = ModelRegistry(registry.tracking_uri)
    current = store.get_alias(registry.model_name, CHAMPION_ALIAS)
    if current is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        model_dir = store.download(registry.model_name, current.version, Path(scratch) / "model")
        yield Champion(str(model_dir), registry.model_name, current.version)


def run_gate(
    challenger_dir: str,
    test_path: str,
    comparison_path: str,
    champion_model: str = "",
    thresholds: GateThresholds = GateThresholds(),
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
    registry: RegistryLink | None = None,
) -> GateResult:
    """Score the challenger and the champion on the test set, decide, record a declined challenger in the
    registry, and write the Markdown comparison last."""
    thresholds.check()
    kind = model_kind(challenger_dir)
    thresholds.check_for(kind)
    score = dict(test_path=test_path, text_column=text_column, label_column=label_column, batch_size=batch_size)
    with find_champion(champion_model, registry) as champion:
        champion_kind = model_kind(champion.model_dir) if champion else None
        if champion_kind is not None and champion_kind != kind:
            raise GateError(
                f"champion {champion.label} is {champion_kind.a_name} and the challenger {kind.a_name}: "
                "a gate compares models of one kind"
            )
        challenger = Scored(challenger_dir, score_model(challenger_dir, kind, **score))
        _check_bound_metrics(thresholds.bounds, challenger.metrics, kind)
        defending = Scored(champion.model_dir, score_model(champion.model_dir, kind, **score)) if champion else None
    label = champion.label if champion else ""
    decision = decide(challenger.metrics, defending.metrics if defending else None, thresholds, kind, label)
    result = GateResult(decision, kind, challenger, defending, champion)
    if registry is not None and registry.challenger_version and not decision.blessed:
        from components.register.registry import ModelRegistry

        ModelRegistry(registry.tracking_uri).record_declined(
            registry.model_name, CHAMPION_ALIAS, registry.challenger_version,
            reason=f"not blessed by gate: {decision.reason.removeprefix('not blessed: ')}", actor=registry.actor,
        )  # fmt: skip
    write_atomically(comparison_path, comparison_markdown(result, test_path, registry))
    return result


def comparison_markdown(result: GateResult, test_path: str, registry: RegistryLink | None = None) -> str:
    challenger = result.challenger.metrics
    champion = result.champion.metrics if result.champion else {}
    source = result.champion_source
    verdict = "blessed" if result.decision.blessed else "not blessed"
    challenger_version = (
        f" ({registry.model_name} version {registry.challenger_version})"
        if registry and registry.challenger_version
        else ""
    )
    if source is None:
        champion_line = "- champion: none yet"
    elif source.version:
        uri = f"models:/{source.model_name}/{source.version}"
        champion_line = f"- champion: {source.model_name} version {source.version} (`{uri}`)"
    else:
        champion_line = f"- champion: `{source.model_dir}`"
    rows = scored_rows(challenger)
    kind = result.kind
    others = sorted(name for name in challenger if name not in kind.judged_metrics and name not in _NOT_METRICS)
    lines = [
        f"# Champion/challenger gate: {verdict}",
        "",
        markdown_cell(result.decision.reason),
        "",
        f"- challenger: `{result.challenger.model_dir}`{challenger_version}, {kind.a_name}",
        champion_line,
        f"- test set: `{test_path}`" + (f" ({rows} rows)" if rows is not None else ""),
        "",
        "| metric | challenger | champion | challenger - champion |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric in (*kind.judged_metrics, *(name for name in others if not name.startswith("slice:"))):
        mine, theirs = challenger.get(metric), champion.get(metric)
        delta = f"{mine - theirs:+.4f}" if mine is not None and theirs is not None else ""
        name = f"{metric} (lower is better)" if metric in LOWER_IS_BETTER else metric
        lines.append(f"| {name} | {optional_number(mine)} | {optional_number(theirs)} | {delta} |")
    lines += ["", "## Checks", "", "| threshold | result | detail |", "| --- | --- | --- |"]
    lines += [
        f"| {check.threshold} | {'pass' if check.passed else 'FAIL'} | {markdown_cell(check.detail)} |"
        for check in result.decision.checks
    ]
    return "\n".join(lines) + "\n"


def _check_bound_metrics(bounds: tuple[Bound, ...], challenger: Mapping[str, float], kind: ModelKind) -> None:
    reported = set(kind.judged_metrics) | {name for name in challenger if name not in _NOT_METRICS}
    for bound in bounds:
        if bound.metric not in reported:
            raise GateError(
                f'thresholds["{bound.metric}"]: {kind.a_name} reports no metric {bound.metric!r}; '
                f"it reports {', '.join(sorted(reported))}"
            )


def _at_least(threshold: str, metric: str, value: float, minimum: float) -> GateCheck:
    passed = value >= minimum - TOLERANCE
    return GateCheck(threshold, passed, f"{threshold}: {metric} {value:.4f} {'>=' if passed else '<'} {minimum:.4f}")


def _bound(bound: Bound, challenger: Mapping[str, float]) -> GateCheck:
    threshold = f"thresholds.{bound.metric}"
    value = challenger.get(bound.metric)
    if value is None:  # e.g. roc_auc with a test set where no class has both positive and negative rows
        return GateCheck(threshold, False, f"{threshold}: {bound.metric} is undefined for the challenger")
    if bound.operator == "<=":
        passed = value <= bound.value + TOLERANCE
        shown = "<=" if passed else ">"
    else:
        passed = value >= bound.value - TOLERANCE
        shown = ">=" if passed else "<"
    return GateCheck(threshold, passed, f"{threshold}: {bound.metric} {value:.4f} {shown} {bound.value:.4f}")


def _gain(metric: str, value: float, champion_value: float) -> float:
    """How much better ``value`` is than the champion's: a difference, or for rmse/mae a fraction of the champion's."""
    if metric not in LOWER_IS_BETTER:
        return value - champion_value
    if champion_value > 0:
        return (champion_value - value) / champion_value
    return 0.0 if value <= champion_value + TOLERANCE else -math.inf


def _improvement(
    challenger: Mapping[str, float], champion: Mapping[str, float], metric: str, min_improvement: float
) -> GateCheck:
    undefined = [
        name for name, metrics in (("challenger", challenger), ("champion", champion)) if metric not in metrics
    ]
    if undefined:
        # roc_auc is undefined when no class has both positive and negative test rows: fail closed.
        return GateCheck("min_improvement", False, f"min_improvement: {metric} is undefined for the {undefined[0]}")
    gain = _gain(metric, challenger[metric], champion[metric])
    passed = gain >= min_improvement - TOLERANCE
    change = "a relative gain" if metric in LOWER_IS_BETTER else "a change"
    return GateCheck(
        "min_improvement",
        passed,
        f"min_improvement: {metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f} is {change} of "
        f"{gain:+.4f}, {'at least' if passed else 'less than'} {min_improvement:+.4f}",
    )


def _regression(metric: str, value: float, champion_value: float, max_regression: float) -> GateCheck:
    loss = -_gain(metric, value, champion_value)
    if loss <= max_regression + TOLERANCE:
        detail = f"{metric} {value:.4f} vs champion {champion_value:.4f}, within {max_regression:.4f}"
        return GateCheck("max_regression", True, f"max_regression: {detail}")
    if metric in LOWER_IS_BETTER:
        detail = (
            f"{metric} {value:.4f} is {loss:.4f} (relative) worse than the champion's {champion_value:.4f}, "
            f"more than {max_regression:.4f}"
        )
    else:
        detail = (
            f"{metric} {value:.4f} is {loss:.4f} below the champion's {champion_value:.4f}, "
            f"more than {max_regression:.4f}"
        )
    return GateCheck("max_regression", False, f"max_regression: {detail}")
