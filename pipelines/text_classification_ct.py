"""Continuous training for text classification: drift check on the latest window of logged traffic against the served
model's training split (by default the registry champion's) → if drift: retrain on fresh data (ingest → validate →
train_and_release: train → register → evaluate → gate against the champion → deploy, with a canary on KServe).

Meant for a recurring run (``kfp-mlops schedule text_classification_ct --cron ...``); ``kfp-mlops run
text_classification_ct --local`` runs one cycle.
"""

from kfp import dsl

from components.drift.component import drift
from components.drift_report.component import drift_report
from components.fit_drift_detector.component import fit_drift_detector
from components.ingest.component import ingest
from components.reference_data.component import resolve_reference_data
from components.tfdv_drift.component import tfdv_drift
from components.validate.component import validate
from pipelines.text_classification import talks_to_registry, train_and_release

PREDICTION_COLUMN = "prediction"
"""Where the drift component puts the predicted labels it reads from the logged responses."""
# The MMD test copies its kernel matrix once per permutation; with glibc's default thresholds the heap keeps
# growing with the permutations (2.4 GB peak for one 500-permutation test, 1.0 GB with this: see the drift README).
MALLOC_MMAP_THRESHOLD = "1048576"


def served_training_data(reference_data: str, model_name: str, tracking_uri: str) -> dsl.PipelineTask:
    """The reference the drift check compares with: reference_data when given, else the training split the registry
    recorded for model_name's champion (the served version), so a recurring run follows each promotion. The
    task reads the registry; it is never cached, since the champion moves between runs."""
    reference = resolve_reference_data(
        reference_data=reference_data, registry_model_name=model_name, tracking_uri=tracking_uri
    ).set_display_name("reference-data")
    return talks_to_registry(reference)


def drift_then_compare(
    reference: dsl.PipelineTask, detector: dsl.PipelineTask, window: dict, comparison: dict
) -> dsl.PipelineTask:
    """Test the window with the fitted detector (drift's ``window`` arguments), compare it with the reference in
    TFDV (tfdv_drift's ``comparison`` arguments) and merge both verdicts into one report. Every CT pipeline's
    drift check; returns the drift task, whose single return value is the verdict the pipeline branches on."""
    checked = drift(detector=detector.outputs["detector"], **window)
    compared = tfdv_drift(reference_data=reference.output, window_data=checked.outputs["window_data"], **comparison)
    drift_report(
        detector_report=checked.outputs["report"],
        detector_summary=checked.outputs["summary"],
        detector_drift=checked.outputs["Output"],
        tfdv_result=compared.outputs["result"],
    )
    return checked


@dsl.pipeline(
    name="text-classification-ct",
    description="Tests the latest window of logged traffic for drift against the training data (alibi-detect MMD "
    "and label tests, with a TFDV comparison in the same report) and, on drift, retrains on fresh data: ingest, "
    "TFDV validation, training, registration, evaluation, the champion/challenger gate and a canary deployment.",
)
def text_classification_ct(
    payloads: str,
    encoder_model: str,
    source: str,
    reference_data: str = "",
    window_end: str = "",
    window_hours: float = 24.0,
    inference_service: str = "",
    max_samples: int = 1000,
    min_samples: int = 100,
    max_reference_rows: int = 2000,
    p_val: float = 0.05,
    n_permutations: int = 100,
    tfdv_categorical_threshold: float = 0.1,
    tfdv_numeric_threshold: float = 0.1,
    num_threads: int = 0,
    text_column: str = "text",
    label_column: str = "category",
    id_column: str = "ticket_id",
    eval_fraction: float = 0.1,
    test_fraction: float = 0.1,
    schema_file: str = "",
    fail_on_anomalies: bool = True,
    base_model: str = "minilm",
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 48,
    max_steps: int = -1,
    seed: int = 42,
    champion_model: str = "",
    min_accuracy: float = 0.0,
    min_macro_f1: float = 0.0,
    thresholds: str = "",
    deploy_target: str = "local",
    model_name: str = "text-classifier",
    smoke_input: str = "my card payment was declined twice",
    tracking_uri: str = "",
    deployment_mode: str = "Knative",
    canary_traffic_percent: int = 10,
    logger_url: str = "",
):
    """payloads: the serving payload log (serving/payload_logger.py's Parquet root, a local path or gs:// prefix).
    The window is the window_hours before window_end (ISO 8601 with a zone; empty: the run's start), optionally
    of one inference_service.
    reference_data: the Parquet training split of the model being served (its ingest train_data; a local path
    or gs:// URI); empty (the default): the training split the registry recorded for model_name's champion
    (tracking_uri), so a schedule follows each promotion. The detector is fitted on at most max_reference_rows
    of it in this run, and TFDV compares the window with it.
    encoder_model: a Hugging Face model directory that embeds the texts for the MMD test (the served model's
    directory, or MiniLM's). num_threads: torch CPU threads of the detector tasks (0: one per core of the node;
    set the pod's CPU limit).
    source: the fresh labelled data to retrain on, as in text_classification; the parameters after it are
    text_classification's. Retraining follows the alibi-detect verdict; TFDV's is reported beside it.
    With deploy_target "kserve", a blessed model goes out as a canary: canary_traffic_percent of the traffic
    (Knative deployment_mode; 0 sends all of it at once), smoke-tested, then promoted, or rolled back.
    logger_url: the payload logger the InferenceService posts to; set it, or the update removes the logger and
    the next cycles have no traffic to test."""
    reference = served_training_data(reference_data, model_name, tracking_uri)
    encoder = dsl.importer(artifact_uri=encoder_model, artifact_class=dsl.Model).set_display_name("encoder-model")
    detector = fit_drift_detector(
        reference=reference.output,
        encoder=encoder.output,
        text_column=text_column,
        label_column=label_column,
        prediction_column=PREDICTION_COLUMN,
        p_val=p_val,
        n_permutations=n_permutations,
        max_reference_rows=max_reference_rows,
        seed=seed,
        num_threads=num_threads,
    )
    checked = drift_then_compare(
        reference,
        detector,
        window=dict(
            payloads=payloads,
            window_end=window_end,
            window_hours=window_hours,
            inference_service=inference_service,
            max_samples=max_samples,
            min_samples=min_samples,
            seed=seed,
            num_threads=num_threads,
        ),
        comparison=dict(
            columns=[text_column],
            label_column=label_column,
            prediction_column=PREDICTION_COLUMN,
            categorical_threshold=tfdv_categorical_threshold,
            numeric_threshold=tfdv_numeric_threshold,
        ),
    ).set_env_variable("MALLOC_MMAP_THRESHOLD_", MALLOC_MMAP_THRESHOLD)

    with dsl.If(checked.outputs["Output"] == True, name="drifted"):  # noqa: E712 (KFP builds the condition from ==)
        data = ingest(
            source=source,
            label_column=label_column,
            id_column=id_column,
            required_columns=[text_column],
            split_by="hash",
            eval_fraction=eval_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        validated = validate(
            train_data=data.outputs["train_data"],
            eval_data=data.outputs["eval_data"],
            schema_file=schema_file,
            fail_on_anomalies=fail_on_anomalies,
        )
        train_and_release(
            train_data=data.outputs["train_data"],
            eval_data=data.outputs["eval_data"],
            test_data=data.outputs["test_data"],
            hyperparameters="",
            text_column=text_column,
            label_column=label_column,
            base_model=base_model,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            max_steps=max_steps,
            seed=seed,
            champion_model=champion_model,
            min_accuracy=min_accuracy,
            min_macro_f1=min_macro_f1,
            thresholds=thresholds,
            deploy_target=deploy_target,
            model_name=model_name,
            smoke_input=smoke_input,
            tracking_uri=tracking_uri,
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            logger_url=logger_url,
        ).after(validated)
