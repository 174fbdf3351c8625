"""The validation report: a self-contained HTML page and a Markdown summary.

The HTML carries its CSS inline and loads nothing (no scripts, no CDN), so it renders offline in
the KFP UI; TFDV's own Facets view is not used because it loads its code from the web.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

if TYPE_CHECKING:
    from components.validate.validation import ValidationResult

DATASET_FEATURE = "(dataset)"  # how anomalies about the whole dataset are listed
_TOP_VALUES_SHOWN = 3
_VALUE_CHARS_SHOWN = 40
_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity distance",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon divergence",
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: "normalized absolute difference",
}


@dataclass(frozen=True)
class AnomalyRow:
    feature: str
    severity: str
    short_description: str
    description: str


@dataclass(frozen=True)
class MeasurementRow:
    feature: str
    comparison: str  # "drift" or "skew"
    measure: str
    value: float
    threshold: float

    @property
    def exceeded(self) -> bool:
        return self.value > self.threshold


@dataclass(frozen=True)
class FeatureSummary:
    type: str
    count: int
    missing_percent: float
    unique: int | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    top_values: tuple[tuple[str, int], ...] = ()


def anomaly_rows(anomalies: anomalies_pb2.Anomalies) -> list[AnomalyRow]:
    """One row per anomaly reason, dataset-level first, then by feature name."""
    infos = []
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append((DATASET_FEATURE, anomalies.dataset_anomaly_info))
    infos += sorted(anomalies.anomaly_info.items())
    rows = []
    for feature, info in infos:
        severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
        for reason in info.reason or [info]:
            rows.append(AnomalyRow(feature, severity, reason.short_description, reason.description))
    return rows


def measurement_rows(anomalies: anomalies_pb2.Anomalies) -> list[MeasurementRow]:
    """The skew and drift measurements TFDV made, whether or not they crossed their threshold."""
    rows = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        comparisons = (("drift", info.drift_measurements), ("skew", info.skew_measurements))
        for comparison, measurements in comparisons:
            for measurement in measurements:
                rows.append(
                    MeasurementRow(
                        feature,
                        comparison,
                        _MEASURE_NAMES.get(measurement.type, str(measurement.type)),
                        measurement.value,
                        measurement.threshold,
                    )
                )
    return rows


def feature_summaries(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
) -> dict[str, FeatureSummary]:
    """Per-feature figures of the (single, unsliced) dataset in a statistics list, in TFDV's order."""
    dataset = statistics.datasets[0]
    summaries = {}
    for feature in dataset.features:
        kind = feature.WhichOneof("stats")
        if kind is None:
            continue
        name = ".".join(feature.path.step) or feature.name
        stats = getattr(feature, kind)
        common = stats.common_stats
        base = {
            "type": statistics_pb2.FeatureNameStatistics.Type.Name(feature.type),
            "count": common.num_non_missing,
            "missing_percent": 100.0 * common.num_missing / max(dataset.num_examples, 1),
        }
        if kind == "num_stats":
            summaries[name] = FeatureSummary(
                **base, mean=stats.mean, std=stats.std_dev, min=stats.min, max=stats.max
            )
        elif kind == "string_stats":
            top = tuple(
                (value.value, int(value.frequency)) for value in stats.top_values[:_TOP_VALUES_SHOWN]
            )
            summaries[name] = FeatureSummary(**base, unique=stats.unique, top_values=top)
        elif kind == "bytes_stats":
            summaries[name] = FeatureSummary(**base, unique=stats.unique)
        else:
            summaries[name] = FeatureSummary(**base)
    return summaries




def _number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _top_values(summary: FeatureSummary) -> str:
    if summary.unique is not None and summary.unique == summary.count:
        # TFDV's top-k counts are approximate at high cardinality: unique texts would read as repeats.
        return "all values distinct"
    return ", ".join(f"{_shorten(value)} ({count:,})" for value, count in summary.top_values)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_CHARS_SHOWN else text[: _VALUE_CHARS_SHOWN - 1] + "…"


def _status_line(result: ValidationResult) -> str:
    count = len(result.anomalous_features)
    return f"FAILED: {count} anomalous feature(s)" if count else "PASSED: no anomalies"


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em;
       color: #1f2328; font-size: 14px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.anomalous { background: #ffebe9; font-weight: 600; }
tr.exceeded td { background: #ffebe9; }
.status { display: inline-block; padding: 4px 10px; border-radius: 4px; font-weight: 600; }
.passed { background: #dafbe1; color: #116329; } .failed { background: #ffebe9; color: #a40e26; }
.note { color: #59636e; }
"""


def _table(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cells(values: list[str], numeric: frozenset[int] = frozenset()) -> str:
    return "".join(
        f'<td class="num">{html.escape(value)}</td>' if index in numeric
        else f"<td>{html.escape(value)}</td>"
        for index, value in enumerate(values)
    )


def _statistics_section(result: ValidationResult, max_features: int) -> str:
    splits = {
        "train": feature_summaries(result.train_statistics),
        "eval": feature_summaries(result.eval_statistics),
    }
    anomalous = [name for name in result.anomalous_features if name != DATASET_FEATURE]
    names = list(dict.fromkeys(anomalous + list(splits["train"]) + list(splits["eval"])))
    left_out = max(0, len(names) - max_features)
    rows = []
    for name in names[:max_features]:
        cell_class = ' class="anomalous"' if name in anomalous else ""
        for position, (split, summaries) in enumerate(splits.items()):
            feature_cell = f'<td rowspan="2"{cell_class}>{html.escape(name)}</td>' if position == 0 else ""
            summary = summaries.get(name)
            if summary is None:
                values = [split, "absent"] + [""] * 8
            else:
                values = [
                    split, summary.type, _number(summary.count), f"{summary.missing_percent:.1f}",
                    _number(summary.unique), _number(summary.mean), _number(summary.std),
                    _number(summary.min), _number(summary.max), _top_values(summary),
                ]
            rows.append(f"<tr>{feature_cell}{_cells(values, frozenset(range(2, 9)))}</tr>")
    headers = [
        "feature", "split", "type", "count", "missing %", "unique", "mean", "std", "min", "max", "top values",
    ]
    note = (
        f'<p class="note">{left_out} more feature(s) not shown (max_report_features); '
        "the statistics artifact holds them all.</p>"
        if left_out else ""
    )
    return "<h2>Feature statistics</h2>" + _table(headers, rows) + note


def render_html(result: ValidationResult, max_features: int) -> str:
    """The report page: overview, anomalies, skew/drift measurements, per-feature statistics."""
    status_class = "failed" if result.anomalous_features else "passed"
    rows_cells = _cells([_number(result.train_rows), _number(result.eval_rows)], frozenset({0, 1}))
    overview = [
        f"<tr><th>rows</th>{rows_cells}</tr>",
        f'<tr><th>features in schema</th><td colspan="2">{len(result.schema.feature)}</td></tr>',
        f'<tr><th>schema</th><td colspan="2">{html.escape(result.schema_source)}</td></tr>',
    ]
    for split, columns in result.skipped_columns.items():
        if columns:
            overview.append(
                f'<tr><th>not validated ({split})</th><td colspan="2">'
                f"{html.escape(', '.join(columns))} (types TFDV has no statistics for)</td></tr>"
            )
    parts = [
        "<h1>Data validation report</h1>",
        f'<p><span class="status {status_class}">{html.escape(_status_line(result))}</span></p>',
        "<table><thead><tr><th></th><th>train</th><th>eval</th></tr></thead><tbody>"
        + "".join(overview) + "</tbody></table>",
        "<h2>Anomalies (eval data against the schema)</h2>",
    ]
    anomalies = anomaly_rows(result.anomalies)
    if anomalies:
        rows = [
            f"<tr>{_cells([row.feature, row.severity, row.short_description, row.description])}</tr>"
            for row in anomalies
        ]
        parts.append(_table(["feature", "severity", "anomaly", "description"], rows))
    else:
        parts.append("<p>No anomalies.</p>")
    measurements = measurement_rows(result.anomalies)
    if measurements:
        parts.append("<h2>Skew and drift (eval against train)</h2>")
        rows = []
        for row in measurements:
            row_class = ' class="exceeded"' if row.exceeded else ""
            values = [
                row.feature, row.comparison, row.measure, f"{row.value:.4g}", f"{row.threshold:.4g}",
            ]
            rows.append(f"<tr{row_class}>{_cells(values, frozenset({3, 4}))}</tr>")
        parts.append(_table(["feature", "comparison", "measure", "value", "threshold"], rows))
    parts.append(_statistics_section(result, max_features))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Data validation report</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _markdown_cell(text: str) -> str:
    """Text for one table cell: one line, pipes and HTML escaped (KFP's Markdown view renders HTML)."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def render_markdown(result: ValidationResult) -> str:
    """A short summary: outcome, counts, the anomalies and the skew/drift measurements."""
    lines = [
        f"## Data validation: {_status_line(result)}",
        "",
        "| | train | eval |",
        "|---|---:|---:|",
        f"| rows | {result.train_rows:,} | {result.eval_rows:,} |",
        "",
        f"Features in schema: {len(result.schema.feature)}. "
        f"Schema: {_markdown_cell(result.schema_source)}.",
    ]
    for split, columns in result.skipped_columns.items():
        if columns:
            names = _markdown_cell(", ".join(columns))
            lines.append(f"Not validated ({split}, types TFDV has no statistics for): {names}.")
    anomalies = anomaly_rows(result.anomalies)
    if anomalies:
        lines += ["", "### Anomalies", ""]
        lines += ["| feature | severity | anomaly | description |", "|---|---|---|---|"]
        lines += [
            f"| {_markdown_cell(row.feature)} | {row.severity} | {_markdown_cell(row.short_description)} "
            f"| {_markdown_cell(row.description)} |"
            for row in anomalies
        ]
    measurements = measurement_rows(result.anomalies)
    if measurements:
        lines += ["", "### Skew and drift (eval against train)", ""]
        lines += [
            "| feature | comparison | measure | value | threshold | exceeded |",
            "|---|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {_markdown_cell(row.feature)} | {row.comparison} | {row.measure} | {row.value:.4g} "
            f"| {row.threshold:.4g} | {'yes' if row.exceeded else 'no'} |"
            for row in measurements
        ]
    return "\n".join(lines) + "\n"
