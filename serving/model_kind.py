"""Which kind of model a directory holds, from its files alone (no ML library is imported).

* ``text``: a Hugging Face directory with ``config.json`` (the ``train`` component);
* ``tabular`` / ``anomaly``: a ``model.json`` manifest whose ``"family"`` says so (``train_tabular``,
  ``train_anomaly``).

The model server picks its predictor by this (:mod:`serving.server`).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

KINDS = ("text", "tabular", "anomaly")
MANIFEST_FAMILIES = ("tabular", "anomaly")


class ModelLoadError(ValueError):
    """The model directory is missing, of no known kind, or cannot be loaded."""


def local_model_path(uri: str) -> Path:
    """The existing local directory named by ``uri``; other URI schemes (``gs://``, ...) are refused."""
    scheme = urlparse(str(uri)).scheme
    if scheme:
        raise ModelLoadError(
            f"cannot load the model from {uri!r}: only local directories are supported, not {scheme}:// URIs"
        )
    path = Path(uri)
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    return path


def model_kind(model_dir: str) -> str:
    """``"text"``, ``"tabular"`` or ``"anomaly"``; raise :class:`ModelLoadError` naming what is wrong otherwise."""
    path = local_model_path(model_dir)
    if (path / "config.json").is_file():
        return "text"
    manifest = path / "model.json"
    if not manifest.is_file():
        raise ModelLoadError(
            f"{path / 'config.json'} is missing and so is {manifest}: {path} is neither a Hugging Face text model "
            "directory nor a tabular or anomaly model directory"
        )
    try:
        family = json.loads(manifest.read_text()).get("family")
    except (ValueError, AttributeError) as error:
        raise ModelLoadError(f"{manifest} is not a JSON object: {error}") from error
    if family not in MANIFEST_FAMILIES:
        raise ModelLoadError(f"{manifest}: 'family' is {family!r}; a model server serves {list(MANIFEST_FAMILIES)}")
    return family
