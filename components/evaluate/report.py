"""Evaluation reports: Markdown, and one self-contained HTML page with inline SVG plots (no scripts, no assets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from components.evaluate.metrics import EvaluationResult
from components.evaluate.plots import confusion_heatmap, reliability_chart, residual_plot, roc_chart

REGRESSION_METRICS = (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("rows", "test rows"))
# A model with prediction intervals (train_tabular's regressors) also reports these.
INTERVAL_METRICS = (
    ("interval_coverage", "p10-p90 interval coverage (share of rows inside; nominal 0.8)"),
    ("interval_width", "mean p10-p90 interval width"),
)


def summary_rows(result: EvaluationResult) -> list[tuple[str, str]]:
    """(name, formatted value) of the headline metrics."""
    return [
        ("accuracy", f"{result.scores.accuracy:.4f}"),
        ("macro F1", f"{result.scores.macro_f1:.4f}"),
        ("weighted F1", f"{result.scores.weighted_f1:.4f}"),
        ("ROC-AUC (one-vs-rest, macro)", optional_number(result.roc_auc)),
        (f"ECE ({result.calibration.bin_count} bins)", f"{result.calibration.ece:.4f}"),
        ("test rows", str(result.scores.rows)),
    ]


def unseen_labels_note(result: EvaluationResult) -> str:
    """A sentence naming the test labels the model does not know; empty when there are none."""
    if not result.unseen_labels:
        return ""
    unseen_rows = sum(result.unseen_labels.values())
    named = ", ".join(f"'{label}' ({count} rows)" for label, count in result.unseen_labels.items())
    return (
        f"{unseen_rows} of {result.scores.rows} test rows have labels the model was not trained on: {named}. "
        "They count as errors in every metric."
    )


def markdown_report(title: str, result: EvaluationResult) -> str:
    scores = result.scores
    lines = [
        f"# {markdown_cell(title)}",
        "",
        *_markdown_table(["metric", "value"], summary_rows(result), numeric=False),
        "",
    ]
    if result.unseen_labels:
        lines += ["## Labels the model does not know", "", markdown_cell(unseen_labels_note(result)), ""]
    lines += [
        "## Per class",
        "",
        *_markdown_table(["label", "precision", "recall", "F1", "ROC-AUC", "support"], _per_class_rows(result)),
        "",
        "## Confusion matrix",
        "",
        "Rows are true labels, columns predicted labels.",
        "",
        *_markdown_table(
            ["true \\ predicted", *scores.labels],
            [[label, *map(str, row)] for label, row in zip(scores.labels, scores.confusion_matrix)],
        ),
        "",
        "## Calibration",
        "",
        "Rows binned by confidence (the probability of the predicted label); empty bins are left out.",
        "",
        *_markdown_table(["confidence bin", "rows", "mean confidence", "accuracy"], _calibration_rows(result)),
        "",
    ]
    if result.slices:
        lines += [
            f"## Slices by {markdown_cell(result.slice_column)}",
            "",
            *_markdown_table([result.slice_column, "rows", "accuracy", "macro F1"], _slice_rows(result)),
            "",
        ]
    return "\n".join(lines)


def html_report(title: str, result: EvaluationResult) -> str:
    scores = result.scores
    sections = [_html_table(["metric", "value"], summary_rows(result))]
    if result.unseen_labels:
        sections += ["<h2>Labels the model does not know</h2>", f"<p>{escape(unseen_labels_note(result))}</p>"]
    sections += [
        "<h2>Per class</h2>",
        _html_table(["label", "precision", "recall", "F1", "ROC-AUC", "support"], _per_class_rows(result)),
        "<h2>Confusion matrix</h2>",
        "<p>Rows are true labels, columns predicted labels; a cell's shade is its share of the row.</p>",
        confusion_heatmap(scores.labels, scores.confusion_matrix),
        "<h2>ROC curve</h2>",
        roc_chart(result.roc, result.roc_name)
        if result.roc is not None
        else f"<p>No ROC curve: the {escape(result.roc_name)} needs both positive and negative rows.</p>",
        "<h2>Calibration</h2>",
        reliability_chart(result.calibration),
        _html_table(["confidence bin", "rows", "mean confidence", "accuracy"], _calibration_rows(result)),
    ]
    if result.slices:
        sections += [
            f"<h2>Slices by {escape(result.slice_column)}</h2>",
            _html_table([result.slice_column, "rows", "accuracy", "macro F1"], _slice_rows(result)),
        ]
    return html_page(title, sections)


def regression_rows(metrics: Mapping[str, float]) -> list[tuple[str, str]]:
    """(name, formatted value) of the regression metrics, interval metrics included when present."""
    named = REGRESSION_METRICS + tuple(item for item in INTERVAL_METRICS if item[0] in metrics)
    return [(name, _format(metrics[key])) for key, name in named]


def regression_markdown(title: str, metrics: Mapping[str, float]) -> str:
    rows = regression_rows(metrics)
    return "\n".join([f"# {markdown_cell(title)}", "", *_markdown_table(["metric", "value"], rows, numeric=False), ""])


def regression_html(title: str, metrics: Mapping[str, float], y_true: Sequence[float], y_pred: Sequence[float]) -> str:
    rows = regression_rows(metrics)
    return html_page(
        title, [_html_table(["metric", "value"], rows), "<h2>Residuals</h2>", residual_plot(y_true, y_pred)]
    )


def html_page(title: str, sections: Sequence[str]) -> str:
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
svg {{ display: block; margin: 12px 0; font-family: sans-serif; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
td.number {{ text-align: right; }}
</style>
</head>
<body>
<h1>{escape(title)}</h1>
{body}
</body>
</html>
"""


def _per_class_rows(result: EvaluationResult) -> list[list[str]]:
    return [
        [
            row.label,
            f"{row.precision:.4f}",
            f"{row.recall:.4f}",
            f"{row.f1:.4f}",
            optional_number(result.class_roc_auc.get(row.label)),
            str(row.support),
        ]
        for row in result.scores.per_class
    ]


def _calibration_rows(result: EvaluationResult) -> list[list[str]]:
    return [
        [_bin_range(row.lower, row.upper), str(row.rows), f"{row.mean_confidence:.4f}", f"{row.accuracy:.4f}"]
        for row in result.calibration.bins
    ]


def _bin_range(lower: float, upper: float) -> str:
    return f"[{lower:.2f}, {upper:.2f}" + ("]" if upper == 1 else ")")


def _slice_rows(result: EvaluationResult) -> list[list[str]]:
    return [[row.value, str(row.rows), f"{row.accuracy:.4f}", f"{row.macro_f1:.4f}"] for row in result.slices]


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True) -> list[str]:
    """A Markdown table; with ``numeric``, every column but the first is right-aligned."""
    alignment = " ---: |" if numeric else " --- |"
    return [
        "| " + " | ".join(map(markdown_cell, header)) + " |",
        "| --- |" + alignment * (len(header) - 1),
        *("| " + " | ".join(map(markdown_cell, row)) + " |" for row in rows),
    ]


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table whose first column names the row and whose other columns hold numbers."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "\n".join(
        f"<tr><th>{escape(name)}</th>" + "".join(f'<td class="number">{escape(cell)}</td>' for cell in cells) + "</tr>"
        for name, *cells in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def optional_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell or heading."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
