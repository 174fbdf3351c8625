"""Validate an Experiment against Katib's v1beta1 API types (OpenAPI v2 definitions from Katib's swagger.json).

Katib's CRD keeps unknown fields and leaves checking to its webhook, while its Go types drop fields they
do not know. A misspelt field is therefore lost without an error, so objects here are closed: a field
that is not among the properties of its type is an error. The Kubernetes types the swagger file
refers to but does not define get the stand-ins below.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema

from kfp_mlops.paths import PROJECT_ROOT

KATIB_SWAGGER = PROJECT_ROOT.parent / "shared" / "crds" / "katib.v1beta1.swagger.json"

_KUBERNETES_STAND_INS: dict[str, Any] = {
    "v1.ObjectMeta": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "v1.ListMeta": {"type": "object"},
    "v1.Time": {"type": "string"},
    "v1.Container": {"type": "object"},
    "v1.HTTPGetAction": {"type": "object"},
    "v1.unstructured.Unstructured": {"type": "object"},  # the trial's Job: Katib checks it, not the schema
}


def _closed(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: value if key in ("default", "enum", "required") else _closed(value) for key, value in schema.items()}
    if "properties" in schema:
        node["properties"] = {name: _closed(sub) for name, sub in schema["properties"].items()}
        node.setdefault("additionalProperties", False)
    return node


@functools.cache
def _validator() -> jsonschema.Draft4Validator:
    swagger = json.loads(KATIB_SWAGGER.read_text())
    definitions = {name: _closed(schema) for name, schema in swagger["definitions"].items()}
    definitions.update(copy.deepcopy(_KUBERNETES_STAND_INS))
    schema = {"definitions": definitions, "$ref": "#/definitions/v1beta1.Experiment"}
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(experiment: dict[str, Any]) -> list[str]:
    """Every schema violation of ``experiment``, as 'path: message' (empty when it is valid)."""
    found = _validator().iter_errors(experiment)
    return sorted(f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}" for error in found)


def unresolved_references() -> list[str]:
    """``$ref`` targets that neither the swagger file nor the stand-ins define (should be none)."""
    swagger = json.loads(KATIB_SWAGGER.read_text())
    text = json.dumps(swagger["definitions"])
    prefix = '"$ref": "#/definitions/'
    names = {part.split('"', 1)[0] for part in text.split(prefix)[1:]}
    return sorted(names - swagger["definitions"].keys() - _KUBERNETES_STAND_INS.keys())
