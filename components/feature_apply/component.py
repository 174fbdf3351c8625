"""KFP definition of feature_apply (image `data`); the logic is in apply.py."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def feature_apply(
    definitions: Output[Artifact],
    sources: str = "",
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = "feature_store.yaml",
):
    """Registers the Feast feature repo's entities, feature views and feature services (feast apply): new and
    changed definitions are applied, removed ones deleted with their online tables; the views read their Parquet
    sources under `sources` (a folder or gs:// prefix). Writes the applied definitions as JSON."""
    from components.feature_apply.apply import run_apply

    definitions.metadata.update(
        run_apply(definitions.path, sources=sources, repo_path=repo_path, state_dir=state_dir, config_file=config_file)
    )
