"""KFP definition of fit_drift_detector (image `monitor`); the logic is in fit.py."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("monitor"), install_kfp_package=False)
def fit_drift_detector(
    reference: Input[Dataset],
    detector: Output[Model],
    encoder: Input[Model] = None,
    encoder_dir: str = "",
    numeric_columns: list = [],
    categorical_columns: list = [],
    text_column: str = "",
    label_column: str = "",
    prediction_column: str = "prediction",
    time_column: str = "",
    group_column: str = "",
    p_val: float = 0.05,
    correction: str = "bonferroni",
    n_permutations: int = 100,
    max_reference_rows: int = 5000,
    max_tokens: int = 128,
    batch_size: int = 32,
    seed: int = 0,
    num_threads: int = 0,
):
    """Fit a drift detector (alibi-detect, BSL 1.1) on the reference (training) data and save it as a directory.

    Tests, each at p_val split evenly over the tests run: tabular (KS per numeric column, Chi-squared per
    categorical column, with correction bonferroni or fdr across the columns), text (MMD permutation test with
    n_permutations on mean-pooled sentence embeddings of text_column; the encoder is the encoder input, e.g.
    train's model, or the Hugging Face model directory encoder_dir) and output (Chi-squared of predicted labels
    against label_column). With a time_column the numeric columns are time series instead (series test:
    residuals from each group_column series' median per hour of day, their median and spread judged against
    reference windows of the tested window's length; KS would flag seasonal, autocorrelated windows that have
    not drifted); the reference must span at least 3 days. At most max_reference_rows rows (a seeded sample)
    form the reference. The detector directory (detector.json manifest with library versions, alibi-detect
    save_detector directories, the series test's reference rows, the encoder in safetensors) is what the drift
    component reads.
    """
    from components.drift.detectors import DetectorSettings, DriftColumns, DriftInputError
    from components.fit_drift_detector.fit import fit_drift_detector as fit

    if num_threads > 0:  # e.g. the pod's CPU limit: torch otherwise starts one thread per core of the node
        import torch

        torch.set_num_threads(num_threads)

    if encoder is not None and encoder_dir:
        raise DriftInputError("give the encoder as the encoder input or as encoder_dir, not both")
    detector.metadata.update(
        fit(
            reference_path=reference.path,
            detector_dir=detector.path,
            columns=DriftColumns(
                numeric=tuple(numeric_columns),
                categorical=tuple(categorical_columns),
                text=text_column,
                label=label_column,
                prediction=prediction_column,
                time=time_column,
                group=group_column,
            ),
            settings=DetectorSettings(
                p_val=p_val,
                correction=correction,
                n_permutations=n_permutations,
                encoder_dir=encoder.path if encoder is not None else encoder_dir,
                max_tokens=max_tokens,
                batch_size=batch_size,
                seed=seed,
            ),
            max_reference_rows=max_reference_rows,
        )
    )
