from __future__ import annotations

import re

from components.train.report import curves_page, line_chart


def test_chart_scales_points_into_the_plot_area() -> None:
    svg = line_chart("Loss", {"train": [(1, 2.0), (2, 1.0), (3, 0.5)]}, "step", "loss")
    points = [tuple(map(float, pair.split(","))) for pair in re.search(r'points="([^"]*)"', svg).group(1).split()]
    xs, ys = zip(*points)
    assert xs == tuple(sorted(xs)) and len(set(xs)) == 3
    assert ys[0] < ys[1] < ys[2]  # higher loss is drawn higher (smaller SVG y)
    assert all(0 <= x <= 560 and 0 <= y <= 300 for x, y in points)


def test_constant_series_and_empty_series_still_render() -> None:
    flat = line_chart("Accuracy", {"accuracy": [(1, 1.0), (2, 1.0)]}, "epoch", "score")
    assert "nan" not in flat and "inf" not in flat
    assert "no data" in line_chart("Empty", {"loss": []}, "step", "loss")


def test_page_escapes_text_and_uses_no_external_assets() -> None:
    page = curves_page(
        "Run <b>&</b>",
        [(1, 0.7), (2, 0.5)],
        [{"epoch": 1, "eval_loss": 0.6, "eval_accuracy": 0.5, "eval_macro_f1": 0.4}],
        {"eval_accuracy": 0.5, "device": "cpu"},
    )
    assert "Run &lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>" not in page
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "<tr><th>device</th><td>cpu</td></tr>" in page
