"""KFP definition of drift (image `monitor`); the logic is in drift.py."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("monitor"), install_kfp_package=False)
def drift(
    detector: Input[Model],
    payloads: str,
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    window_data: Output[Dataset],
    payload_format: str = "kserve",
    window_end: str = "",
    window_hours: float = 24.0,
    inference_service: str = "",
    time_column: str = "",
    max_samples: int = 1000,
    min_samples: int = 100,
    seed: int = 0,
    device: str = "",
    num_threads: int = 0,
) -> bool:
    """Test a time window of live traffic for drift against a detector from fit_drift_detector; returns drift.

    payloads is the serving payload log (payload_format "kserve": Parquet under dt=YYYY-MM-DD/hour=HH/, a local
    directory or gs:// prefix, KServe V1/V2 request and response bodies) or a flat Parquet table of features
    (payload_format "table", filtered on time_column when given). The window is the window_hours before
    window_end (ISO 8601 with a zone; empty: now), optionally of one inference_service. At most max_samples
    instances (a seeded sample) are tested; fewer than min_samples fails the task. Outputs: report (offline
    HTML with per-feature p-values, distances and inline SVG plots), summary (Markdown), metrics, and
    window_data (the tested rows as Parquet, e.g. for a TFDV comparison). Returns drift, the single return
    value, so pipelines branch on dsl.If(task.outputs["Output"] == True): kfp.local resolves no NamedTuple
    field in a condition.
    """
    from components.drift.drift import run_drift

    if num_threads > 0:  # e.g. the pod's CPU limit: torch otherwise starts one thread per core of the node
        import torch

        torch.set_num_threads(num_threads)

    run = run_drift(
        detector_dir=detector.path,
        payloads=payloads,
        report_path=report.path,
        summary_path=summary.path,
        window_data_path=window_data.path,
        payload_format=payload_format,
        window_end=window_end,
        window_hours=window_hours,
        inference_service=inference_service,
        time_column=time_column,
        max_samples=max_samples,
        min_samples=min_samples,
        seed=seed,
        device=device,
    )
    for name, value in run.metrics.items():
        metrics.log_metric(name, value)
    window_data.metadata.update({"rows": run.result.window_rows, "window": str(run.window)})
    report.metadata["drifted_features"] = run.result.drifted_features
    return run.result.drift
