from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape

import numpy as np

from components.evaluate.metrics import EvaluationResult, evaluate_predictions, regression_metrics
from components.evaluate.plots import MAX_SCATTER_POINTS, confusion_heatmap, residual_plot
from components.evaluate.report import html_report, markdown_report, regression_html, regression_markdown

SVG = "{http://www.w3.org/2000/svg}"


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


def svgs(page: str) -> list[ET.Element]:
    """Every inline SVG of an HTML page, parsed as XML (so each must be well-formed)."""
    return [ET.fromstring(match) for match in re.findall(r"<svg.*?</svg>", page, re.DOTALL)]


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=""", page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


def three_row_result(**options: object) -> EvaluationResult:
    """True a, a, b predicted a, b, b."""
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    return evaluate_predictions(["a", "a", "b"], ["a", "b"], probabilities, **options)


def test_report_tables() -> None:
    report = markdown_report("Evaluation", three_row_result(calibration_bins=2))
    assert report.startswith("# Evaluation\n")
    assert table(report, "| metric |") == [
        ["accuracy", "0.6667"],
        ["macro F1", "0.6667"],
        ["weighted F1", "0.6667"],
        ["ROC-AUC (one-vs-rest, macro)", "1.0000"],  # the scores rank every b above every a
        ["ECE (2 bins)", f"{abs(2 / 3 - (0.9 + 0.6 + 0.8) / 3):.4f}"],
        ["test rows", "3"],
    ]
    assert table(report, "| label |") == [
        ["a", "1.0000", "0.5000", "0.6667", "1.0000", "2"],
        ["b", "0.5000", "1.0000", "0.6667", "1.0000", "1"],
    ]
    assert table(report, "| true \\\\ predicted |") == [["a", "1", "1"], ["b", "0", "1"]]
    assert table(report, "| confidence bin |") == [["[0.50, 1.00]", "3", "0.7667", "0.6667"]]
    assert "does not know" not in report
    assert "Slices" not in report


def test_labels_with_pipes_do_not_break_tables() -> None:
    result = evaluate_predictions(
        ["x|y", "z", "new|label"], ["x|y", "z"], np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    )
    report = markdown_report("Evaluation", result)
    assert "| x\\|y | 0.5000 | 1.0000 |" in report
    assert "'new\\|label' (1 rows)" in report


def test_slices_section() -> None:
    report = markdown_report("Evaluation", three_row_result(slice_values=["en", "de", "en"], slice_column="lang"))
    assert table(report, "| lang |") == [["de", "1", "0.0000", "0.0000"], ["en", "2", "1.0000", "1.0000"]]


def test_html_report_is_self_contained_with_heatmap_roc_and_reliability_plots() -> None:
    labels = ["billing", "bug", "login"]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(3), size=40)
    y_true = [labels[index % 3] for index in range(39)] + ["<refund>"]
    result = evaluate_predictions(y_true, labels, probabilities, slice_values=["a"] * 20 + ["b"] * 20, slice_column="s")
    page = html_report("Evaluation of <model> & co", result)

    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Evaluation of &lt;model&gt; &amp; co</title>" in page
    assert "&lt;refund&gt;" in page and "<refund>" not in page
    assert_self_contained(page)
    heatmap, roc, reliability = svgs(page)
    assert heatmap.get("aria-label") == "Confusion matrix"
    cells = heatmap.findall(f"{SVG}rect[@class='cell']")
    assert len(cells) == 4 * 4  # the unseen label gets a row and a column
    refund_to_billing = result.scores.confusion_matrix[3][0]
    assert f"true &lt;refund&gt;, predicted billing: {refund_to_billing}" in page
    assert roc.get("aria-label") == "ROC curve, micro-average over all classes"
    assert reliability.get("aria-label").startswith(f"Reliability diagram (ECE {result.calibration.ece:.4f})")
    assert "<h2>Slices by s</h2>" in page


def test_heatmap_shades_by_share_of_the_row() -> None:
    heatmap = ET.fromstring(confusion_heatmap(["a", "b"], [[3, 1], [0, 0]]))
    fills = [cell.get("fill") for cell in heatmap.findall(f"{SVG}rect[@class='cell']")]
    # white (255, 255, 255) towards blue (31, 119, 180): 0.75 and 0.25 of the way; an empty row stays white.
    assert fills == ["rgb(87,153,199)", "rgb(199,221,236)", "rgb(255,255,255)", "rgb(255,255,255)"]


def test_a_two_class_model_without_negative_rows_has_no_roc_curve() -> None:
    result = evaluate_predictions(["pos", "pos"], ["neg", "pos"], np.array([[0.3, 0.7], [0.6, 0.4]]))
    assert result.roc is None
    page = html_report("Evaluation", result)
    assert escape("No ROC curve: the class 'pos' vs rest needs both positive and negative rows.") in page
    assert len(svgs(page)) == 2


def test_regression_reports() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.5, 2.0, 2.0, 4.5])
    metrics = regression_metrics(y_true, y_pred)
    report = regression_markdown("Regression", metrics)
    assert table(report, "| metric |") == [
        ["RMSE", f"{metrics['rmse']:.4f}"],
        ["MAE", "0.5000"],
        ["R²", f"{metrics['r2']:.4f}"],
        ["test rows", "4"],
    ]
    page = regression_html("Regression", metrics, y_true, y_pred)
    assert_self_contained(page)
    (plot,) = svgs(page)
    points = plot.findall(f"{SVG}circle[@class='point']")
    assert [point.find(f"{SVG}title").text for point in points] == ["1.5, -0.5", "2, 0", "2, 1", "4.5, -0.5"]
    assert plot.find(f"{SVG}line") is not None  # the zero line


def test_residual_plot_of_many_rows_shows_a_fixed_sample() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=MAX_SCATTER_POINTS * 2)
    y_pred = y_true + rng.normal(size=y_true.size)
    plot = residual_plot(y_true, y_pred)
    assert plot == residual_plot(y_true, y_pred)
    assert len(ET.fromstring(plot).findall(f"{SVG}circle")) == MAX_SCATTER_POINTS
    assert f"{MAX_SCATTER_POINTS} of {y_true.size} rows" in plot
