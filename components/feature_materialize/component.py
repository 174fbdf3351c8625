"""KFP definition of feature_materialize (image `data`); the logic is in materialize.py."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def feature_materialize(
    start: str,
    report: Output[Artifact],
    end: str = "",
    chunk_hours: float = 24.0,
    feature_views: list = [],
    resume: bool = True,
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = "feature_store.yaml",
):
    """Loads Feast feature values between start and end (ISO-8601; end empty: now) from the offline store into
    the online store, oldest first, in chunks of chunk_hours; with resume, chunks the registry records as done
    are skipped, so a rerun continues an interrupted one. Writes one JSON record per chunk."""
    from components.feature_materialize.materialize import run_materialize

    report.metadata.update(
        run_materialize(
            report.path,
            start,
            end,
            chunk_hours=chunk_hours,
            feature_views=feature_views,
            resume=resume,
            repo_path=repo_path,
            state_dir=state_dir,
            config_file=config_file,
        )
    )
