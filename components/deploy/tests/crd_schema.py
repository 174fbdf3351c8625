"""Validate manifests against the upstream KServe CRDs the way a Kubernetes API server does with
``fieldValidation=Strict``: the structural schema's ``properties`` are the only fields an object may have,
unless a node says ``x-kubernetes-preserve-unknown-fields``."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kfp_mlops.paths import PROJECT_ROOT

CRD_DIR = PROJECT_ROOT.parent / "shared" / "crds"
INFERENCE_SERVICE_CRD = CRD_DIR / "serving.kserve.io_inferenceservices.yaml"
SERVING_RUNTIME_CRD = CRD_DIR / "serving.kserve.io_servingruntimes.yaml"

# The CRD leaves metadata to the API server (`type: object`); this is the part of ObjectMeta manifests use.
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "generation": {"type": "integer"},
        "resourceVersion": {"type": "string"},
        "uid": {"type": "string"},
        "creationTimestamp": {"type": "string"},
    },
}


# Keywords whose values are data or maps of names, not schemas.
_NOT_SCHEMAS = {"enum", "default", "example", "required", "x-kubernetes-list-map-keys"}


def strict(schema: Any) -> Any:
    """A copy of a structural schema in which every object node with ``properties`` rejects other fields."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: value if key in _NOT_SCHEMAS else strict(value) for key, value in schema.items()
            if key != "properties"}
    if "properties" in schema:
        # `properties` maps field names to schemas: recurse into each schema, not into the mapping itself.
        node["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return node


@functools.cache
def validator(crd_path: Path, version: str) -> jsonschema.Draft4Validator:
    crd = yaml.load(crd_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB of YAML
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    schema = strict(copy.deepcopy(served[version]["schema"]["openAPIV3Schema"]))
    schema["properties"]["metadata"] = _OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema["properties"]["apiVersion"] = {"enum": [f"{crd['spec']['group']}/{version}"]}
    schema["properties"]["kind"] = {"enum": [crd["spec"]["names"]["kind"]]}
    return jsonschema.Draft4Validator(schema)


def errors(manifest: dict[str, Any], crd_path: Path = INFERENCE_SERVICE_CRD, version: str = "v1beta1") -> list[str]:
    """Every schema violation of ``manifest``, as 'path: message' (empty when it is valid)."""
    found = validator(crd_path, version).iter_errors(manifest)
    return sorted(f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}" for error in found)
