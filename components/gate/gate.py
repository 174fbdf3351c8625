"""Champion/challenger gate: evaluate both models on one test set, bless the challenger only if it clears every bar.

Absolute bars hold always (``min_accuracy``, ``min_macro_f1``). When there is a champion, the challenger's
``compare_metric`` must beat the champion's by at least ``min_improvement`` (0: at least as good; negative:
a little worse is fine), and none of accuracy, macro F1, weighted F1 and ROC-AUC may fall more than
``max_regression`` below the champion's. Evaluation is :mod:`components.evaluate`'s, so both models are
scored the same way; labels a model does not know count as its errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.evaluate.evaluate import evaluate_model, read_test_set, write_atomically
from components.evaluate.metrics import EvaluationResult
from components.evaluate.report import markdown_cell, optional_number

GUARDED_METRICS = ("accuracy", "macro_f1", "weighted_f1", "roc_auc")
"""Metrics (higher is better) that ``max_regression`` guards and that ``compare_metric`` may name."""
TOLERANCE = 1e-9
"""Slack for float noise: an improvement of 0.1 computed as 0.0999999... still meets ``min_improvement=0.1``."""


class GateError(ValueError):
    """A gate setting out of range, or a champion the gate cannot read."""


@dataclass(frozen=True)
class GateThresholds:
    min_accuracy: float = 0.0
    min_macro_f1: float = 0.0
    compare_metric: str = "macro_f1"
    min_improvement: float = 0.0
    max_regression: float = 0.01

    def check(self) -> None:
        """Raise :class:`GateError` naming the first setting out of range."""
        for name in ("min_accuracy", "min_macro_f1"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GateError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.compare_metric not in GUARDED_METRICS:
            raise GateError(f"compare_metric must be one of {list(GUARDED_METRICS)}, got {self.compare_metric!r}")
        if not -1.0 <= self.min_improvement <= 1.0:
            raise GateError(f"min_improvement must be in [-1, 1], got {self.min_improvement}")
        if not 0.0 <= self.max_regression <= 1.0:
            raise GateError(f"max_regression must be in [0, 1], got {self.max_regression}")


@dataclass(frozen=True)
class GateCheck:
    threshold: str
    """The setting checked: ``min_accuracy``, ``min_macro_f1``, ``min_improvement`` or ``max_regression``."""
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    blessed: bool
    reason: str
    """``"blessed: ..."`` with every check, or ``"not blessed: ..."`` with the failed ones; each names its threshold."""
    checks: list[GateCheck]


@dataclass(frozen=True)
class GateResult:
    decision: GateDecision
    challenger: EvaluationResult
    champion: EvaluationResult | None
    """None when there is no champion yet."""


def decide(
    challenger: Mapping[str, float], champion: Mapping[str, float] | None, thresholds: GateThresholds
) -> GateDecision:
    """Check the challenger's metrics against the absolute bars and, when there is one, the champion's metrics."""
    thresholds.check()
    checks = [
        _at_least("min_accuracy", "accuracy", challenger["accuracy"], thresholds.min_accuracy),
        _at_least("min_macro_f1", "macro_f1", challenger["macro_f1"], thresholds.min_macro_f1),
    ]
    if champion is not None:
        checks.append(_improvement(challenger, champion, thresholds.compare_metric, thresholds.min_improvement))
        checks += [
            _regression(metric, challenger[metric], champion[metric], thresholds.max_regression)
            for metric in GUARDED_METRICS
            if metric in challenger and metric in champion
        ]
    blessed = all(check.passed for check in checks)
    shown = checks if blessed else [check for check in checks if not check.passed]
    details = ([] if champion is not None else ["no champion yet"]) + [check.detail for check in shown]
    return GateDecision(blessed, ("blessed: " if blessed else "not blessed: ") + "; ".join(details), checks)


def champion_model_dir(champion_model: str) -> str | None:
    """The local directory of the champion (``file://`` is stripped); None for ``""``, meaning no champion yet."""
    if not champion_model:
        return None
    if champion_model.startswith("file://"):
        return champion_model.removeprefix("file://")
    if "://" in champion_model:
        raise GateError(
            f"champion_model {champion_model!r} is a remote URI; the gate reads a local model directory "
            "(resolve the URI to a path first, e.g. the /gcs/ mount of a gs:// URI)"
        )
    return champion_model


def run_gate(
    challenger_dir: str,
    test_path: str,
    comparison_path: str,
    champion_model: str = "",
    thresholds: GateThresholds = GateThresholds(),
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
) -> GateResult:
    """Evaluate the challenger and the champion on the test set, decide, and write the Markdown comparison last."""
    thresholds.check()
    champion_dir = champion_model_dir(champion_model)
    test = read_test_set(test_path, text_column, label_column)
    challenger = evaluate_model(challenger_dir, test, batch_size)
    champion = evaluate_model(champion_dir, test, batch_size) if champion_dir is not None else None
    decision = decide(challenger.metrics, champion.metrics if champion else None, thresholds)
    result = GateResult(decision, challenger, champion)
    write_atomically(comparison_path, comparison_markdown(result, challenger_dir, champion_dir, test_path))
    return result


def comparison_markdown(result: GateResult, challenger_dir: str, champion_dir: str | None, test_path: str) -> str:
    challenger = result.challenger.metrics
    champion = result.champion.metrics if result.champion else {}
    verdict = "blessed" if result.decision.blessed else "not blessed"
    lines = [
        f"# Champion/challenger gate: {verdict}",
        "",
        markdown_cell(result.decision.reason),
        "",
        f"- challenger: `{challenger_dir}`",
        f"- champion: `{champion_dir}`" if champion_dir else "- champion: none yet",
        f"- test set: `{test_path}` ({result.challenger.scores.rows} rows)",
        "",
        "| metric | challenger | champion | challenger - champion |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric in (*GUARDED_METRICS, "ece"):
        mine, theirs = challenger.get(metric), champion.get(metric)
        delta = f"{mine - theirs:+.4f}" if mine is not None and theirs is not None else ""
        lines.append(f"| {metric} | {optional_number(mine)} | {optional_number(theirs)} | {delta} |")
    lines += ["", "## Checks", "", "| threshold | result | detail |", "| --- | --- | --- |"]
    lines += [
        f"| {check.threshold} | {'pass' if check.passed else 'FAIL'} | {markdown_cell(check.detail)} |"
        for check in result.decision.checks
    ]
    return "\n".join(lines) + "\n"


def _at_least(threshold: str, metric: str, value: float, minimum: float) -> GateCheck:
    passed = value >= minimum - TOLERANCE
    return GateCheck(threshold, passed, f"{threshold}: {metric} {value:.4f} {'>=' if passed else '<'} {minimum:.4f}")


def _improvement(
    challenger: Mapping[str, float], champion: Mapping[str, float], metric: str, min_improvement: float
) -> GateCheck:
    undefined = [
        name for name, metrics in (("challenger", challenger), ("champion", champion)) if metric not in metrics
    ]
    if undefined:
        # roc_auc is undefined when no class has both positive and negative test rows: fail closed.
        return GateCheck("min_improvement", False, f"min_improvement: {metric} is undefined for the {undefined[0]}")
    gain = challenger[metric] - champion[metric]
    passed = gain >= min_improvement - TOLERANCE
    return GateCheck(
        "min_improvement",
        passed,
        f"min_improvement: {metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f} is a change of "
        f"{gain:+.4f}, {'at least' if passed else 'less than'} {min_improvement:+.4f}",
    )


def _regression(metric: str, value: float, champion_value: float, max_regression: float) -> GateCheck:
    drop = champion_value - value
    if drop <= max_regression + TOLERANCE:
        detail = f"{metric} {value:.4f} vs champion {champion_value:.4f}, within {max_regression:.4f}"
        return GateCheck("max_regression", True, f"max_regression: {detail}")
    detail = (
        f"{metric} {value:.4f} is {drop:.4f} below the champion's {champion_value:.4f}, more than {max_regression:.4f}"
    )
    return GateCheck("max_regression", False, f"max_regression: {detail}")
