"""Validate objects against a CustomResourceDefinition's structural schema, as the API server does.

``spec.versions[].schema.openAPIV3Schema`` is turned into a JSON Schema (Draft 7) with these Kubernetes rules:

- an object schema without ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields`` takes only
  its listed properties. The API server prunes unknown fields, or rejects them under strict field
  validation (kubectl's default), so a misspelt field fails here;
- ``x-kubernetes-int-or-string`` accepts an integer or a string;
- ``x-kubernetes-list-type: map`` lists have unique ``x-kubernetes-list-map-keys``; ``set`` lists have unique items;
- ``int32`` and ``int64`` formats are range-checked;
- the root ``apiVersion`` and ``kind`` must be the CRD's own; root ``metadata`` is checked as an ObjectMeta
  subset (name, namespace, labels, annotations; its name a DNS subdomain).

Not evaluated: ``x-kubernetes-validations`` (CEL rules) and admission webhooks. :func:`cel_rules` lists the
CEL rules on the paths an object sets, so a test can check that none of them applies.

The schemas are the upstream CRDs in ``../shared/crds`` beside the checkout (see its README); tests that
need them skip, saying so, where that folder is absent. Imported by tests only (jsonschema is a dev dependency).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft7Validator, FormatChecker, ValidationError

from kfp_mlops.paths import PROJECT_ROOT

CRD_DIR = PROJECT_ROOT.parent / "shared" / "crds"
INFERENCE_SERVICE_CRD = "serving.kserve.io_inferenceservices.yaml"

INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "maxLength": 253,
            "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        },
        "namespace": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        # set by the API server on objects it returns
        "generation": {"type": "integer"},
        "resourceVersion": {"type": "string"},
        "uid": {"type": "string"},
        "creationTimestamp": {"type": "string"},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def _check_list_type(
    validator: Draft7Validator, list_type: str, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "array"):
        return
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: set[tuple] = set()
        for item in instance:
            if isinstance(item, dict):
                key = tuple(repr(item.get(name)) for name in keys)
                if key in seen:
                    yield ValidationError(f"duplicate entry for list-map keys {keys}: {dict(zip(keys, key))}")
                seen.add(key)
    elif list_type == "set":
        seen_items: list[Any] = []
        for item in instance:
            if item in seen_items:
                yield ValidationError(f"duplicate item in a list of type set: {item!r}")
            seen_items.append(item)


_KubernetesValidator = jsonschema.validators.extend(Draft7Validator, {"x-kubernetes-list-type": _check_list_type})

_FORMATS = FormatChecker()
for _name, (_low, _high) in INT_RANGES.items():
    _FORMATS.checks(_name)(lambda value, low=_low, high=_high: not isinstance(value, int) or low <= value <= high)


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema node with the Kubernetes rules spelt out in JSON Schema."""
    node = dict(node)
    if "properties" in node:
        node["properties"] = {name: _structural(child) for name, child in node["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            node[key] = _structural(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [_structural(child) for child in node[key]]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-embedded-resource"):
        raise NotImplementedError("x-kubernetes-embedded-resource is not handled; none of the CRDs used has it")
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    return node


def load_crd(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the large CRDs ten times faster
    return yaml.load(path.read_text(), Loader=loader)


def crd_validator(crd: dict[str, Any], version: str) -> Draft7Validator:
    """A validator for objects of ``crd`` at ``version`` (e.g. "v1alpha1")."""
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions:
        raise KeyError(f"{crd['metadata']['name']} has no version {version!r}; it has {sorted(versions)}")
    schema = _structural(versions[version]["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version}"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["properties"]["metadata"] = _OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return _KubernetesValidator(schema, format_checker=_FORMATS)


@functools.cache
def validator_for(crd_file: str, version: str) -> Draft7Validator:
    """The validator for one of the CRDs in :data:`CRD_DIR`, parsed once per process."""
    return crd_validator(load_crd(CRD_DIR / crd_file), version)


def manifest_errors(manifest: Any, crd_file: str, version: str) -> list[str]:
    """Every violation of ``manifest`` against ``CRD_DIR / crd_file`` at ``version`` (empty when valid)."""
    return errors(validator_for(crd_file, version), manifest)


def errors(validator: Draft7Validator, instance: Any) -> list[str]:
    """Every violation, as ``path: message`` lines."""
    found = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def cel_rules(crd: dict[str, Any], version: str, instance: Any) -> list[tuple[str, str]]:
    """(path, rule) of each ``x-kubernetes-validations`` rule on a path that ``instance`` sets."""
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    found: list[tuple[str, str]] = []

    def walk(node: dict, value: Any, path: str) -> None:
        found.extend((path or "<root>", rule["rule"]) for rule in node.get("x-kubernetes-validations", []))
        if isinstance(value, dict):
            for key, child in value.items():
                child_schema = node.get("properties", {}).get(key) or (
                    node["additionalProperties"] if isinstance(node.get("additionalProperties"), dict) else None
                )
                if child_schema:
                    walk(child_schema, child, f"{path}.{key}" if path else key)
        elif isinstance(value, list) and "items" in node:
            for index, child in enumerate(value):
                walk(node["items"], child, f"{path}[{index}]")

    walk(schema, instance, "")
    return found
