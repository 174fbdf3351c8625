"""KFP definition of drift_report (image `monitor`); the logic is in merge.py."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("monitor"), install_kfp_package=False)
def drift_report(
    detector_report: Input[HTML],
    detector_summary: Input[Markdown],
    detector_drift: bool,
    tfdv_result: Input[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
):
    """Merge the drift component's report (alibi-detect tests) and tfdv_drift's result (TFDV distances) into one
    offline HTML report and one Markdown summary with both verdicts.

    detector_report and detector_summary are the drift component's report and summary, detector_drift its
    return value (the drifted features come from the report's metadata), tfdv_result the tfdv_drift
    component's result. The page keeps the drift report whole (tables, inline SVG plots; no scripts) under a
    table of both verdicts and adds the TFDV section.
    """
    from components.drift_report.merge import write_report

    tfdv = write_report(
        detector_report.path, detector_summary.path, tfdv_result.path, detector_drift, report.path, summary.path,
        detector_drifted=detector_report.metadata.get("drifted_features", []),
    )
    report.metadata.update({"alibi_detect_drift": detector_drift, "tfdv_drift": tfdv["drift"]})
