"""KFP definition of training_set (image `data`); the logic is in training_set.py."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def training_set(
    entities: Input[Dataset],
    features: list,
    training_data: Output[Dataset],
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    repo_path: str = "",
    state_dir: str = "",
    config_file: str = "feature_store.yaml",
):
    """Joins Feast features point-in-time onto entity rows (a Parquet Dataset of entity ids, event times and any
    labels): each row gets each feature's latest value at or before its event time and within the view's TTL, else
    null. features are 'view:feature' references or feature service names. Writes Parquet, rows in input order."""
    from components.training_set.training_set import build_training_set

    training_data.metadata.update(
        build_training_set(
            entities.path,
            training_data.path,
            features,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            repo_path=repo_path,
            state_dir=state_dir,
            config_file=config_file,
        )
    )
