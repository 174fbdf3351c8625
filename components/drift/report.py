"""The drift report: one offline HTML page (inline CSS and SVG, no scripts) and a Markdown summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from components.drift.detectors import DriftResult, FeatureDrift, Frequencies, Histogram, Projection

TITLE = "Drift report"
"""The heading of both reports (``# TITLE``, ``<h1>TITLE</h1>``); the drift_report component demotes it when merging."""
REFERENCE_COLOUR = "#4c78a8"
WINDOW_COLOUR = "#f58518"
MAX_CATEGORIES_SHOWN = 15
STATISTIC_NAMES = {
    "KS": "KS distance", "Chi2": "Chi-squared", "MMD": "MMD²", "level": "level shift (scales)",
    "spread": "spread ratio",
}  # fmt: skip
TEST_TITLES = {
    "tabular": "Tabular features (KS for numeric, Chi-squared for categorical)",
    "series": "Time series (seasonal residuals: level and spread against like windows of the reference)",
    "text": "Text (MMD permutation test on sentence embeddings)",
    "output": "Model output (Chi-squared on predicted vs reference labels)",
}


@dataclass(frozen=True)
class ReportContext:
    window: str
    source: str
    backend: str
    versions: dict[str, str]
    source_rows: int
    instances: int
    """Readable instances in the window, before sampling down to the tested rows."""
    seconds: float
    skipped: Counter[str] = field(default_factory=Counter)
    examples: Sequence[str] = ()
    without_prediction: Counter[str] = field(default_factory=Counter)


def render_markdown(result: DriftResult, context: ReportContext) -> str:
    verdict = "**Drift detected**" if result.drift else "No drift detected"
    lines = [
        f"# {TITLE}",
        "",
        f"{verdict} at p_val {result.p_val:g} (split evenly over {len(result.tests) + len(result.not_run)} test(s)).",
        "",
        f"- window: {context.window}; source: `{context.source}`",
        f"- tested rows: {result.window_rows} (of {context.instances} readable instances, {context.source_rows} "
        f"logged rows); reference rows: {result.reference_rows}",
        f"- backend: {context.backend} {context.versions.get(context.backend, '')}; took {context.seconds:.1f} s",
    ]
    lines += [f"- {name} test not run: {why}" for name, why in result.not_run.items()]
    lines += [f"- {test.name} test: {test.note}" for test in result.tests if test.note]
    lines += ["", "| test | feature | statistic | p-value | threshold | drift |", "|---|---|---|---|---|---|"]
    for test in result.tests:
        for feature in sorted(test.features, key=lambda item: item.p_value):
            lines.append(
                f"| {test.name} | {_cell(feature.feature)} | {STATISTIC_NAMES[feature.test]} {feature.statistic:.4g} "
                f"| {feature.p_value:.3g} | {feature.threshold:.3g} | {'**yes**' if feature.drift else 'no'} |"
            )
    if context.skipped:
        lines += ["", "Skipped while reading the window:"]
        lines += [f"- {count} × {_cell(reason)}" for reason, count in context.skipped.most_common()]
    if context.without_prediction:
        lines += ["", "Instances kept without a prediction:"]
        lines += [f"- {count} × {_cell(reason)}" for reason, count in context.without_prediction.most_common()]
    return "\n".join(lines) + "\n"


def render_html(result: DriftResult, context: ReportContext) -> str:
    verdict = "Drift detected" if result.drift else "No drift detected"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Drift report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{TITLE}</h1><p class='verdict {'drift' if result.drift else 'ok'}'>{verdict}</p>",
        "<table class='facts'>",
        _fact("window", context.window),
        _fact("source", context.source),
        _fact("tested rows", f"{result.window_rows} (of {context.instances} readable instances, "
                             f"{context.source_rows} logged rows)"),  # fmt: skip
        _fact("reference rows", str(result.reference_rows)),
        _fact("p_val", f"{result.p_val:g}, split evenly (Bonferroni) over "
                       f"{len(result.tests) + len(result.not_run)} test(s)"),  # fmt: skip
        _fact("backend", f"{context.backend} ({', '.join(f'{k} {v}' for k, v in context.versions.items())})"),
        _fact("time taken", f"{context.seconds:.1f} s"),
        "</table>",
        f"<p class='legend'><span style='color:{REFERENCE_COLOUR}'>■</span> reference "
        f"<span style='color:{WINDOW_COLOUR}'>■</span> window</p>",
    ]
    for name, why in result.not_run.items():
        parts.append(f"<p class='note'>The {escape(name)} test did not run: {escape(why)}.</p>")
    for test in result.tests:
        parts.append(f"<h2>{escape(TEST_TITLES.get(test.name, test.name))}: {'drift' if test.drift else 'no drift'}"
                     f"</h2><p>Test level {test.level:.3g}; {test.window_rows} window rows.</p>")  # fmt: skip
        if test.note:
            parts.append(f"<p>{escape(test.note)}.</p>")
        parts.append(_feature_table(test.features))
        parts.append("<div class='plots'>")
        for feature in sorted(test.features, key=lambda item: item.p_value):
            parts.append(_plot_card(feature))
        parts.append("</div>")
    if context.skipped or context.without_prediction:
        parts.append("<h2>Reading the window</h2>")
        if context.skipped:
            parts.append(_count_list("Skipped requests or instances", context.skipped))
        if context.examples:
            examples = "".join(f"<li><code>{escape(example)}</code></li>" for example in context.examples)
            parts.append(f"<p>First examples:</p><ul>{examples}</ul>")
        if context.without_prediction:
            parts.append(_count_list("Instances kept without a prediction", context.without_prediction))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _feature_table(features: Sequence[FeatureDrift]) -> str:
    rows = "".join(
        f"<tr class='{'drift' if f.drift else ''}'><td>{escape(f.feature)}</td><td>{f.test}</td>"
        f"<td>{f.statistic:.4g}</td><td>{f.p_value:.3g}</td><td>{f.threshold:.3g}</td>"
        f"<td>{'yes' if f.drift else 'no'}</td></tr>"
        for f in sorted(features, key=lambda item: item.p_value)
    )
    return (
        "<table class='results'><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th>"
        f"<th>threshold</th><th>drift</th></tr>{rows}</table>"
    )


def _plot_card(feature: FeatureDrift) -> str:
    distribution = feature.distribution
    if isinstance(distribution, Histogram):
        plot = histogram_svg(distribution)
    elif isinstance(distribution, Frequencies):
        plot = frequencies_svg(distribution)
    elif isinstance(distribution, Projection):
        plot = projection_svg(distribution)
    else:
        plot = "<p>(no plot)</p>"
    caption = f"{STATISTIC_NAMES[feature.test]} {feature.statistic:.4g}, p = {feature.p_value:.3g}"
    return f"<figure><figcaption><b>{escape(feature.feature)}</b> {escape(caption)}</figcaption>{plot}</figure>"


def histogram_svg(histogram: Histogram, width: int = 360, height: int = 170) -> str:
    """Both histograms as shares of their rows, overlaid, over the shared bins."""
    shares = [_shares(histogram.reference), _shares(histogram.window)]
    top = max(max(share) for share in shares) or 1.0
    plot_height, bins = height - 30, len(histogram.reference)
    bar = (width - 20) / bins
    parts = []
    for share, colour in zip(shares, (REFERENCE_COLOUR, WINDOW_COLOUR)):
        for index, value in enumerate(share):
            bar_height = value / top * (plot_height - 10)
            parts.append(
                f"<rect x='{10 + index * bar:.1f}' y='{plot_height - bar_height:.1f}' width='{bar:.1f}' "
                f"height='{bar_height:.1f}' fill='{colour}' fill-opacity='0.5'/>"
            )
    low, high = histogram.edges[0], histogram.edges[-1]
    parts.append(f"<line x1='10' y1='{plot_height}' x2='{width - 10}' y2='{plot_height}' stroke='#333'/>")
    parts.append(f"<text x='10' y='{height - 8}'>{low:.4g}</text>")
    parts.append(f"<text x='{width - 10}' y='{height - 8}' text-anchor='end'>{high:.4g}</text>")
    return _svg(width, height, parts)


def frequencies_svg(frequencies: Frequencies, width: int = 420) -> str:
    """Shares per category, reference and window side by side; the categories with the largest shares."""
    reference, window = _shares(frequencies.reference), _shares(frequencies.window)
    order = sorted(range(len(frequencies.categories)), key=lambda i: -max(reference[i], window[i]))
    shown = order[:MAX_CATEGORIES_SHOWN]
    row, label_width = 18, 170
    height = row * len(shown) + 24
    top = max([max(reference[i], window[i]) for i in shown] + [1e-9])
    parts = []
    for position, index in enumerate(shown):
        y = 4 + position * row
        name = frequencies.categories[index]
        parts.append(f"<text x='{label_width - 4}' y='{y + 12}' text-anchor='end'>{escape(_shorten(name))}</text>")
        bars = ((reference[index], REFERENCE_COLOUR), (window[index], WINDOW_COLOUR))
        for offset, (share, colour) in enumerate(bars):
            bar_width = share / top * (width - label_width - 50)
            parts.append(
                f"<rect x='{label_width}' y='{y + offset * 7}' width='{bar_width:.1f}' height='7' fill='{colour}'/>"
            )
        parts.append(f"<text x='{width - 4}' y='{y + 12}' text-anchor='end'>{window[index]:.0%}</text>")
    if len(order) > len(shown):
        parts.append(f"<text x='4' y='{height - 6}'>… {len(order) - len(shown)} more categories</text>")
    return _svg(width, height, parts)


def projection_svg(projection: Projection, size: int = 300) -> str:
    """A scatter of both samples on the reference's first two principal components."""
    points = projection.reference + projection.window
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high, y_low, y_high = min(xs), max(xs), min(ys), max(ys)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
    parts = []
    for sample, colour in ((projection.reference, REFERENCE_COLOUR), (projection.window, WINDOW_COLOUR)):
        for x, y in sample:
            cx = 10 + (x - x_low) / x_span * (size - 20)
            cy = size - 30 - (y - y_low) / y_span * (size - 40)
            parts.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='2' fill='{colour}' fill-opacity='0.6'/>")
    first, second = projection.explained_variance
    parts.append(f"<text x='10' y='{size - 8}'>PC1 ({first:.0%}) × PC2 ({second:.0%} of the variance)</text>")
    return _svg(size, size, parts)


def _svg(width: int, height: int, parts: list[str]) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-size='11' font-family='sans-serif'>{''.join(parts)}</svg>"
    )


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def _shorten(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fact(name: str, value: str) -> str:
    return f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>"


def _count_list(title: str, counts: Counter[str]) -> str:
    items = "".join(f"<li>{count} × {escape(reason)}</li>" for reason, count in counts.most_common())
    return f"<p>{escape(title)}:</p><ul>{items}</ul>"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; }
.verdict { font-size: 1.3em; font-weight: bold; }
.verdict.drift { color: #b30000; } .verdict.ok { color: #2a7a2a; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 0.9em; }
tr.drift td { background: #fde0dc; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #eee; padding: 6px; }
figcaption { font-size: 0.85em; margin-bottom: 4px; }
.note { color: #8a5a00; }
"""
