"""Training curves as one self-contained HTML page: inline SVG line charts, no scripts, no external assets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape

Point = tuple[float, float]

WIDTH, HEIGHT = 560, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 44, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
TICKS = 5


def line_chart(
    title: str,
    series: Mapping[str, Sequence[Point]],
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An SVG line chart of one or more named series of (x, y) points, with axes, ticks and a legend.

    The y axis spans the data unless ``y_range`` fixes it; integer x values get integer ticks.
    """
    points = [point for values in series.values() for point in values]
    if not points:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="40">'
            f'<text x="8" y="24">{escape(title)}: no data</text></svg>'
        )
    x_low, x_high = _span(x for x, _ in points)
    y_low, y_high = y_range or _span(y for _, y in points)
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
    for x_value in _x_ticks(x_low, x_high, all(float(x).is_integer() for x, _ in points)):
        parts.append(
            f'<text x="{to_x(x_value):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{_number(x_value)}</text>'
        )
    for tick in range(TICKS + 1):
        y_value = y_low + (y_high - y_low) * tick / TICKS
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{to_y(y_value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{_number(y_value)}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_width / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'font-size="12">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{MARGIN_TOP + plot_height / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {MARGIN_TOP + plot_height / 2})">{escape(y_label)}</text>'
    )
    legend_x = MARGIN_LEFT
    for index, (name, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        coordinates = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in values)
        parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{coordinates}"/>')
        if len(values) <= 50:
            parts.extend(f'<circle cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="3" fill="{color}"/>' for x, y in values)
        parts.append(
            f'<text x="{legend_x}" y="{MARGIN_TOP - 8}" font-size="12" fill="{color}">&#9632; {escape(name)}</text>'
        )
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "\n".join(parts)


def curves_page(
    title: str,
    train_loss: Sequence[Point],
    eval_history: Sequence[Mapping[str, float]],
    summary: Mapping[str, float | int | str],
) -> str:
    """The HTML page: train loss per step, eval loss per epoch, eval accuracy and macro F1 per epoch, a summary table.

    ``eval_history`` has one mapping per epoch with keys ``epoch``, ``eval_loss``, ``eval_accuracy``, ``eval_macro_f1``.
    """
    eval_loss = [(row["epoch"], row["eval_loss"]) for row in eval_history]
    eval_scores = {
        "accuracy": [(row["epoch"], row["eval_accuracy"]) for row in eval_history],
        "macro F1": [(row["epoch"], row["eval_macro_f1"]) for row in eval_history],
    }
    rows = "\n".join(
        f"<tr><th>{escape(name)}</th><td>{escape(_number(value) if isinstance(value, float) else str(value))}</td></tr>"
        for name, value in summary.items()
    )
    charts = "\n".join(
        [
            line_chart("Train loss", {"train loss": train_loss}, "step", "loss"),
            line_chart("Eval loss", {"eval loss": eval_loss}, "epoch", "loss"),
            line_chart("Eval scores", eval_scores, "epoch", "score", y_range=(0.0, 1.0)),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
svg {{ display: block; margin: 12px 0; font-family: sans-serif; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
</style>
</head>
<body>
<h1>{escape(title)}</h1>
<table>
{rows}
</table>
{charts}
</body>
</html>
"""


def _span(values: Iterable[float]) -> tuple[float, float]:
    numbers = list(values)
    low, high = min(numbers), max(numbers)
    if high == low:
        return low - 0.5, high + 0.5
    return low, high


def _x_ticks(low: float, high: float, integers: bool) -> list[float]:
    if integers:
        step = max(1, math.ceil((high - low) / TICKS))
        return [float(x) for x in range(math.ceil(low), math.floor(high) + 1, step)]
    return [low + (high - low) * tick / TICKS for tick in range(TICKS + 1)]


def _number(value: float) -> str:
    return f"{value:.3g}"
