"""The evaluation report as Markdown: overall metrics, a per-class table and the confusion matrix."""

from __future__ import annotations

from collections.abc import Mapping

from components.evaluate.metrics import ClassificationScores


def markdown_report(title: str, scores: ClassificationScores, unseen_labels: Mapping[str, int]) -> str:
    """``unseen_labels``: test labels the model cannot predict, with their row counts (all counted as errors)."""
    lines = [
        f"# {_cell(title)}",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy | {scores.accuracy:.4f} |",
        f"| macro F1 | {scores.macro_f1:.4f} |",
        f"| weighted F1 | {scores.weighted_f1:.4f} |",
        f"| test rows | {scores.rows} |",
        "",
    ]
    if unseen_labels:
        unseen_rows = sum(unseen_labels.values())
        named = ", ".join(f"'{_cell(label)}' ({count} rows)" for label, count in unseen_labels.items())
        lines += [
            "## Labels the model does not know",
            "",
            f"{unseen_rows} of {scores.rows} test rows have labels the model was not trained on: {named}. "
            "They count as errors in every metric.",
            "",
        ]
    lines += [
        "## Per class",
        "",
        "| label | precision | recall | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {_cell(row.label)} | {row.precision:.4f} | {row.recall:.4f} | {row.f1:.4f} | {row.support} |"
            for row in scores.per_class
        ),
        "",
        "## Confusion matrix",
        "",
        "Rows are true labels, columns predicted labels.",
        "",
        "| true \\ predicted | " + " | ".join(_cell(label) for label in scores.labels) + " |",
        "| --- |" + " ---: |" * len(scores.labels),
        *(
            f"| {_cell(label)} | " + " | ".join(str(count) for count in row) + " |"
            for label, row in zip(scores.labels, scores.confusion_matrix)
        ),
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or heading."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
