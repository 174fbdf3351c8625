"""Evaluation plots as inline SVG (no scripts, no external assets): confusion heatmap, ROC, reliability, residuals.

Line charts are the train component's (:func:`components.train.report.line_chart`); the heatmap and the
scatter plot are drawn here. Hovering a heatmap cell or a point shows its numbers (an SVG ``<title>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from components.evaluate.metrics import Calibration, RocCurve
from components.train.report import line_chart

BLUE = (31, 119, 180)
MAX_LABEL_CHARS = 18
MAX_SCATTER_POINTS = 2000
"""Residual plots of more rows show this many, drawn at random with a fixed seed."""
WIDTH, HEIGHT = 560, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 44, 44
TICKS = 5


def confusion_heatmap(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows are true labels and columns predicted labels; a cell's shade is its share of the row (the recall)."""
    count = len(labels)
    cell = max(16, min(48, 640 // max(count, 1)))
    names = [_short(label) for label in labels]
    label_space = 12 + 7 * max((len(name) for name in names), default=1)
    left, top = label_space + 24, 48
    width = left + count * cell + 16
    height = top + count * cell + label_space + 28
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="Confusion matrix">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">Confusion matrix</text>',
        f'<text x="{left + count * cell / 2}" y="{height - 6}" text-anchor="middle" font-size="12">predicted</text>',
        f'<text x="12" y="{top + count * cell / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 12 {top + count * cell / 2})">true</text>',
    ]
    for row, counts in enumerate(matrix):
        row_total = sum(counts)
        y = top + row * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="11">{escape(names[row])}</text>'
        )
        for column, value in enumerate(counts):
            share = value / row_total if row_total else 0.0
            red, green, blue = (round(255 + (channel - 255) * share) for channel in BLUE)
            x = left + column * cell
            tooltip = f"true {labels[row]}, predicted {labels[column]}: {value} ({share:.1%} of the row)"
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({red},{green},{blue})" '
                f'stroke="#ddd"><title>{escape(tooltip)}</title></rect>'
            )
            if cell >= 24:
                color = "#fff" if share > 0.5 else "#000"
                parts.append(
                    f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="11" '
                    f'fill="{color}">{value}</text>'
                )
    for column, name in enumerate(names):
        x = left + column * cell + cell / 2
        y = top + count * cell + 8
        parts.append(
            f'<text x="{x}" y="{y}" text-anchor="end" font-size="11" transform="rotate(-60 {x} {y})">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def roc_chart(curve: RocCurve, name: str) -> str:
    points = list(zip(curve.fpr, curve.tpr))
    return line_chart(
        f"ROC curve, {name}",
        {"ROC": points, "chance": [(0.0, 0.0), (1.0, 1.0)]},
        "false positive rate",
        "true positive rate",
        y_range=(0.0, 1.0),
    )


def reliability_chart(calibration: Calibration) -> str:
    observed = [(row.mean_confidence, row.accuracy) for row in calibration.bins]
    return line_chart(
        f"Reliability diagram (ECE {calibration.ece:.4f})",
        {"observed accuracy per bin": observed, "perfect calibration": [(0.0, 0.0), (1.0, 1.0)]},
        "mean confidence in bin",
        "accuracy",
        y_range=(0.0, 1.0),
    )


def residual_plot(y_true: Sequence[float], y_pred: Sequence[float]) -> str:
    """Residuals (true - predicted) against predictions, with the zero line."""
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    title = "Residuals (true - predicted) vs predicted"
    shown = np.arange(truth.size)
    if truth.size > MAX_SCATTER_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(truth.size, MAX_SCATTER_POINTS, replace=False))
        title += f", {MAX_SCATTER_POINTS} of {truth.size} rows"
    return scatter_chart(title, predicted[shown], (truth - predicted)[shown], "predicted", "residual", zero_line=True)


def scatter_chart(
    title: str, xs: np.ndarray, ys: np.ndarray, x_label: str, y_label: str, zero_line: bool = False
) -> str:
    """An SVG scatter plot with axes and ticks; ``zero_line`` draws y = 0 (and makes the y axis include it)."""
    x_low, x_high = _span(xs)
    y_low, y_high = _span(np.r_[ys, 0.0] if zero_line else ys)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def to_x(x: float) -> float:
        return MARGIN_LEFT + (x - x_low) / (x_high - x_low) * plot_width

    def to_y(y: float) -> float:
        return MARGIN_TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_height

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_width}" height="{plot_height}" '
        'fill="none" stroke="#999"/>',
    ]
    for tick in range(TICKS + 1):
        x_value = x_low + (x_high - x_low) * tick / TICKS
        y_value = y_low + (y_high - y_low) * tick / TICKS
        parts.append(
            f'<text x="{to_x(x_value):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{x_value:.3g}</text>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{to_y(y_value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{y_value:.3g}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_width / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'font-size="12">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{MARGIN_TOP + plot_height / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {MARGIN_TOP + plot_height / 2})">{escape(y_label)}</text>'
    )
    if zero_line:
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{to_y(0.0):.1f}" x2="{MARGIN_LEFT + plot_width}" y2="{to_y(0.0):.1f}" '
            'stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    parts.extend(
        f'<circle class="point" cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="2.5" fill="#1f77b4" fill-opacity="0.6">'
        f"<title>{x:.4g}, {y:.4g}</title></circle>"
        for x, y in zip(xs.tolist(), ys.tolist())
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _span(values: np.ndarray) -> tuple[float, float]:
    low, high = float(np.min(values)), float(np.max(values))
    if high == low:
        return low - 0.5, high + 0.5
    return low, high


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "\u2026"
