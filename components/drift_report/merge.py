"""One drift report from two detectors: the drift component's (alibi-detect tests) and tfdv_drift's (TFDV
statistics distances), so the KFP UI shows both verdicts on one page.

The drift component's HTML page is kept whole (its CSS, tables and inline SVG plots) under a table of both
verdicts, with its heading demoted; the TFDV comparison is rendered from tfdv_drift's JSON result as a
section of the same page. The Markdown summary is merged the same way. Both outputs are written to
temporary names and renamed into place once both are rendered.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from components.drift.report import TITLE

TFDV_FORMAT_VERSION = 1
TFDV_KEYS = ("format_version", "drift", "reference_rows", "window_rows", "categorical_threshold",
             "numeric_threshold", "features", "not_compared")  # fmt: skip
FEATURE_KEYS = ("feature", "window_column", "measure", "value", "threshold", "drift")
DETECTOR_HEADING = "alibi-detect: statistical tests on the window"
TFDV_HEADING = "TFDV: statistics of the window against the training data"


class ReportInputError(ValueError):
    """An input report or result that is not what the drift or tfdv_drift component writes; names the file."""


def read_tfdv_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """tfdv_drift's result document, checked."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReportInputError(f"cannot read the TFDV result {path}: {error}") from error
    missing = [key for key in TFDV_KEYS if key not in document] if isinstance(document, dict) else list(TFDV_KEYS)
    if missing:
        raise ReportInputError(f"TFDV result {path} lacks {missing}: is it tfdv_drift's result output?")
    if document["format_version"] != TFDV_FORMAT_VERSION:
        raise ReportInputError(f"TFDV result {path} has format_version {document['format_version']}; "
                               f"this code reads {TFDV_FORMAT_VERSION}")  # fmt: skip
    for index, feature in enumerate(document["features"]):
        absent = [key for key in FEATURE_KEYS if key not in feature]
        if absent:
            raise ReportInputError(f"TFDV result {path}: features[{index}] lacks {absent}")
    return document


def merge_html(detector_html: str, detector_drift: bool, detector_drifted: list[str], tfdv: dict[str, Any],
               source: str = "the drift report") -> str:  # fmt: skip
    """The drift component's page with both verdicts on top and the TFDV section after its own.

    detector_drifted: the features the drift component found drifted (its report's metadata)."""
    heading = f"<h1>{TITLE}</h1>"
    if "<body>" not in detector_html or "</body>" not in detector_html or heading not in detector_html:
        raise ReportInputError(f"{source} is not a page written by the drift component (no <body> with {heading})")
    head, rest = detector_html.split("<body>", 1)
    body, tail = rest.rsplit("</body>", 1)
    body = body.replace(heading, f"<h2>{escape(DETECTOR_HEADING)}</h2>", 1)
    return "".join([
        head, "<body>", heading, _verdict_table(detector_drift, detector_drifted, tfdv), body, _tfdv_section(tfdv), "</body>", tail,
    ])  # fmt: skip


def merge_markdown(detector_markdown: str, detector_drift: bool, detector_drifted: list[str], tfdv: dict[str, Any]) -> str:
    detector_section = detector_markdown.replace(f"# {TITLE}", f"## {DETECTOR_HEADING}", 1)
    lines = [
        f"# {TITLE}",
        "",
        "| detector | verdict | drifted |",
        "|---|---|---|",
        f"| alibi-detect (drift) | {_verdict(detector_drift)} | {_cell(', '.join(detector_drifted) or '-')} |",
        f"| TFDV (tfdv_drift) | {_verdict(tfdv['drift'])} | {_cell(', '.join(_drifted(tfdv)) or '-')} |",
        "",
        detector_section.rstrip("\n"),
        "",
        f"## {TFDV_HEADING}",
        "",
        _tfdv_sentence(tfdv),
        "",
        "| feature | window column | measure | value | threshold | drift |",
        "|---|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {_cell(f['feature'])} | {_cell(f['window_column'])} | {f['measure']} | {f['value']:.4g} "
        f"| {f['threshold']:.4g} | {'**yes**' if f['drift'] else 'no'} |"
        for f in tfdv["features"]
    ]
    lines += [f"- not compared: {_cell(column)}: {_cell(why)}" for column, why in tfdv["not_compared"].items()]
    return "\n".join(lines) + "\n"


def write_report(
    detector_report_path: str,
    detector_summary_path: str,
    tfdv_result_path: str,
    detector_drift: bool,
    report_path: str,
    summary_path: str,
    detector_drifted: list[str] = (),
) -> dict[str, Any]:
    """Merge and write both outputs; returns the TFDV document."""
    tfdv = read_tfdv_result(tfdv_result_path)
    try:
        detector_html = Path(detector_report_path).read_text(encoding="utf-8")
        detector_markdown = Path(detector_summary_path).read_text(encoding="utf-8")
    except OSError as error:
        raise ReportInputError(f"cannot read the drift component's report: {error}") from error
    drifted = list(detector_drifted)
    html = merge_html(detector_html, detector_drift, drifted, tfdv, source=detector_report_path)
    markdown = merge_markdown(detector_markdown, detector_drift, drifted, tfdv)
    for text, path in ((html, report_path), (markdown, summary_path)):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    return tfdv


def _verdict_table(detector_drift: bool, detector_drifted: list[str], tfdv: dict[str, Any]) -> str:
    rows = [
        ("alibi-detect (drift)", detector_drift,
         "two-sample tests at the detector's p_val (details below): "
         + (", ".join(detector_drifted) + " drifted" if detector_drifted else "no p-value below its threshold")),
        ("TFDV (tfdv_drift)", tfdv["drift"],
         "distance of each feature's distribution from the training data's over a threshold: "
         + (", ".join(_drifted(tfdv)) + " drifted" if _drifted(tfdv) else "none over its threshold")),
    ]  # fmt: skip
    cells = "".join(
        f"<tr class='{'drift' if drift else ''}'><td>{escape(name)}</td><td>{_verdict(drift)}</td>"
        f"<td>{escape(what)}</td></tr>"
        for name, drift, what in rows
    )
    return f"<table class='results verdicts'><tr><th>detector</th><th>verdict</th><th>what it found</th></tr>{cells}</table>"


def _tfdv_section(tfdv: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr class='{'drift' if f['drift'] else ''}'><td>{escape(f['feature'])}</td>"
        f"<td>{escape(f['window_column'])}</td><td>{escape(f['measure'])}</td><td>{f['value']:.4g}</td>"
        f"<td>{f['threshold']:.4g}</td><td>{'yes' if f['drift'] else 'no'}</td></tr>"
        for f in tfdv["features"]
    )
    notes = "".join(
        f"<p class='note'>Not compared: {escape(column)}: {escape(why)}.</p>" for column, why in tfdv["not_compared"].items()
    )
    return (
        f"<h2>{escape(TFDV_HEADING)}: {'drift' if tfdv['drift'] else 'no drift'}</h2><p>{escape(_tfdv_sentence(tfdv))}</p>"
        "<table class='results'><tr><th>feature</th><th>window column</th><th>measure</th><th>value</th>"
        f"<th>threshold</th><th>drift</th></tr>{rows}</table>{notes}"
    )


def _tfdv_sentence(tfdv: dict[str, Any]) -> str:
    version = tfdv.get("versions", {}).get("tensorflow-data-validation", "")
    return (
        f"L-infinity distance for categorical features (threshold {tfdv['categorical_threshold']:g}), Jensen-Shannon "
        f"divergence for numeric ones (threshold {tfdv['numeric_threshold']:g}); the window's predicted labels are "
        f"compared with the training labels. {tfdv['window_rows']} window rows, {tfdv['reference_rows']} training "
        f"rows; tensorflow-data-validation {version}."
    )


def _drifted(tfdv: dict[str, Any]) -> list[str]:
    return [feature["feature"] for feature in tfdv["features"] if feature["drift"]]


def _verdict(drift: bool) -> str:
    return "drift" if drift else "no drift"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
