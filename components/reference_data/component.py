"""KFP definition of reference_data (image `train`, where MLflow lives); the logic is in reference.py."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from kfp_mlops.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def resolve_reference_data(
    reference: Output[Dataset],
    reference_data: str = "",
    registry_model_name: str = "",
    alias: str = "champion",
    tracking_uri: str = "",
):
    """Copy the served model's training split (Parquet) into the reference output, for drift checks.

    reference_data (a local path, file:// or gs:// URI) wins when given. Else the registry decides: the version
    that alias (default champion, the served version) of registry_model_name points at, and the train split that
    register recorded for it (tag data.artifact_uri); tracking_uri as in register. A registry that recorded the
    file's sha256 (data.hash_of file-bytes) must match the copied bytes; ingest's content hash is passed on as
    recorded. The output's metadata: source_uri, resolved_by (reference_data or registry), file_sha256, rows and,
    from the registry, model_name, model_version, model_uri, alias, data_sha256, data_hash_of and
    data_sha256_verified. Fails naming what is missing (no reference_data nor registry_model_name, the alias not
    set, no recorded train data URI, a URI that does not exist, bytes that changed, not Parquet), with no output.
    """
    from components.reference_data.reference import fetch_reference_data

    reference.metadata.update(
        fetch_reference_data(reference.path, reference_data, registry_model_name, alias, tracking_uri)
    )
