"""One report from the drift component's page (rendered by its real renderer) and tfdv_drift's result."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from components.drift.detectors import DriftResult, DriftTestResult, FeatureDrift, Frequencies
from components.drift.report import ReportContext, render_html, render_markdown
from components.drift_report.merge import (
    DETECTOR_HEADING,
    TFDV_HEADING,
    ReportInputError,
    read_tfdv_result,
    write_report,
)

TFDV_RESULT = Path(__file__).with_name("tfdv_result.json")
"""Written by tfdv_drift on demo tickets (a drifted window); components/tfdv_drift's tests check that its output has
the same keys, so the two components keep to one format."""


def detector_result(drift: bool) -> DriftResult:
    labels = Frequencies(categories=["billing", "outage"], reference=[60, 40], window=[20, 80] if drift else [58, 42])
    feature = FeatureDrift(feature="prediction", test="Chi2", statistic=31.5 if drift else 0.1,
                           p_value=1e-8 if drift else 0.8, threshold=0.025, drift=drift, distribution=labels)  # fmt: skip
    test = DriftTestResult(name="output", level=0.025, drift=drift, window_rows=100, features=(feature,))
    return DriftResult(drift=drift, p_val=0.05, reference_rows=100, window_rows=100, tests=(test,))


CONTEXT = ReportContext(window="[2026-03-04T00:00:00+00:00, 2026-03-05T00:00:00+00:00)", source="/logs",
                        backend="alibi-detect", versions={"alibi-detect": "0.13.0"}, source_rows=100, instances=100,
                        seconds=1.0, skipped=Counter({"request body is not JSON": 2}))  # fmt: skip


@pytest.fixture
def detector_files(tmp_path):
    def write(drift: bool) -> tuple[str, str]:
        result = detector_result(drift)
        (tmp_path / "report.html").write_text(render_html(result, CONTEXT))
        (tmp_path / "summary.md").write_text(render_markdown(result, CONTEXT))
        return str(tmp_path / "report.html"), str(tmp_path / "summary.md")

    return write


def test_the_page_shows_both_verdicts_and_keeps_the_detector_report_whole(detector_files, tmp_path):
    report, summary = detector_files(drift=False)
    out = tmp_path / "out"
    tfdv = write_report(report, summary, str(TFDV_RESULT), False, str(out / "report.html"), str(out / "summary.md"),
                        detector_drifted=[])  # fmt: skip
    page = (out / "report.html").read_text()
    assert tfdv["drift"] is True
    verdicts = re.search(r"<table class='results verdicts'>(.*?)</table>", page).group(1)
    assert "<td>alibi-detect (drift)</td><td>no drift</td>" in verdicts and "no p-value below its threshold" in verdicts
    assert "<td>TFDV (tfdv_drift)</td><td>drift</td>" in verdicts and "category drifted" in verdicts
    assert page.count("<h1>") == 1 and f"<h2>{DETECTOR_HEADING}</h2>" in page
    assert f"<h2>{TFDV_HEADING}: drift</h2>" in page
    assert "<td>category</td><td>prediction</td><td>L-infinity distance</td><td>0.2402</td>" in page
    detector_body = render_html(detector_result(False), CONTEXT).split("<h1>Drift report</h1>")[1].split("</body>")[0]
    assert detector_body in page, "the detector's tables, plots and notes are all there"
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("# Drift report\n") and markdown.count("\n# ") == 0
    assert "| alibi-detect (drift) | no drift | - |" in markdown and "| TFDV (tfdv_drift) | drift | category |" in markdown
    assert f"## {DETECTOR_HEADING}" in markdown and "| category | prediction | L-infinity distance | 0.2402 |" in markdown
    assert sorted(path.name for path in out.iterdir()) == ["report.html", "summary.md"]


def test_drift_in_the_detector_shows_as_drift(detector_files, tmp_path):
    report, summary = detector_files(drift=True)
    tfdv = json.loads(TFDV_RESULT.read_text())
    tfdv["drift"] = False
    tfdv["features"] = [{**feature, "drift": False} for feature in tfdv["features"]]
    tfdv["not_compared"] = {"channel": "the window has no such column"}
    (tmp_path / "tfdv.json").write_text(json.dumps(tfdv))
    write_report(report, summary, str(tmp_path / "tfdv.json"), True, str(tmp_path / "r.html"), str(tmp_path / "s.md"),
                 detector_drifted=["prediction"])  # fmt: skip
    page = (tmp_path / "r.html").read_text()
    assert "<tr class='drift'><td>alibi-detect (drift)</td><td>drift</td><td>two-sample tests" in page
    assert "prediction drifted" in page
    assert "| alibi-detect (drift) | drift | prediction |" in (tmp_path / "s.md").read_text()
    assert "<td>TFDV (tfdv_drift)</td><td>no drift</td>" in page and "none over its threshold" in page
    assert "Not compared: channel: the window has no such column." in page


@pytest.mark.parametrize(
    "case, expected",
    [
        ("not json", "cannot read the TFDV result"),
        ("missing key", "lacks ['features']"),
        ("feature without value", "features[1] lacks ['value']"),
        ("other version", "format_version 2"),
        ("not a drift page", "is not a page written by the drift component"),
    ],
)
def test_bad_inputs_are_named_and_nothing_is_written(case, expected, detector_files, tmp_path):
    report, summary = detector_files(drift=False)
    tfdv = json.loads(TFDV_RESULT.read_text())
    text = None
    if case == "not json":
        text = "{not json"
    elif case == "missing key":
        del tfdv["features"]
    elif case == "feature without value":
        del tfdv["features"][1]["value"]
    elif case == "other version":
        tfdv["format_version"] = 2
    else:
        Path(report).write_text("<html><body><p>something else</p></body></html>")
    (tmp_path / "tfdv.json").write_text(text if text is not None else json.dumps(tfdv))
    out = tmp_path / "out"
    with pytest.raises(ReportInputError) as raised:
        write_report(report, summary, str(tmp_path / "tfdv.json"), False, str(out / "r.html"), str(out / "s.md"))
    assert expected in str(raised.value)
    assert not out.exists()


def test_the_committed_tfdv_result_reads():
    assert read_tfdv_result(TFDV_RESULT)["features"][1]["feature"] == "category"
