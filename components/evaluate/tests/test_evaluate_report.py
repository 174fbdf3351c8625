from __future__ import annotations

from components.evaluate.metrics import classification_scores
from components.evaluate.report import markdown_report


def table(report: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with ``header``."""
    lines = report.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_report_tables() -> None:
    scores = classification_scores(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    report = markdown_report("Evaluation", scores, {})
    assert report.startswith("# Evaluation\n")
    assert table(report, "| metric |") == [
        ["accuracy", "0.6667"],
        ["macro F1", "0.6667"],
        ["weighted F1", "0.6667"],
        ["test rows", "3"],
    ]
    assert table(report, "| label |") == [
        ["a", "1.0000", "0.5000", "0.6667", "2"],
        ["b", "0.5000", "1.0000", "0.6667", "1"],
    ]
    assert table(report, "| true \\ predicted |") == [["a", "1", "1"], ["b", "0", "1"]]
    assert "does not know" not in report


def test_labels_with_pipes_do_not_break_tables() -> None:
    scores = classification_scores(["x|y", "z"], ["x|y", "z"], ["x|y", "z"])
    report = markdown_report("Evaluation", scores, {"new|label": 2})
    assert "| x\\|y | 1.0000 |" in report
    assert "'new\\|label' (2 rows)" in report
