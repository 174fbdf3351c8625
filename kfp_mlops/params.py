"""``--param name=value`` arguments, checked and typed against a pipeline's or component's inputs."""

from __future__ import annotations

import json
from typing import Any

from kfp.dsl import base_component
from kfp.dsl.structures import InputSpec


class ParamError(ValueError):
    """A parameter name or value that does not fit the signature."""


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValueError("expected true or false")


def _json_of(kind: type):
    def parse(text: str):
        value = json.loads(text)
        if not isinstance(value, kind):
            raise ValueError(f"expected a JSON {kind.__name__}")
        return value

    return parse


_PARSERS = {
    "String": str,
    "Integer": int,
    "Float": float,
    "Boolean": _boolean,
    "List": _json_of(list),
    "Dict": _json_of(dict),
}


def is_artifact(spec: InputSpec) -> bool:
    return spec.type not in _PARSERS


def parse(item: base_component.BaseComponent, assignments: list[str], *, allow_artifacts: bool = False) -> dict[str, Any]:
    """Parse ``name=value`` strings into typed arguments of ``item``; artifact inputs take a path or URI."""
    inputs = item.component_spec.inputs or {}
    arguments: dict[str, Any] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator:
            raise ParamError(f"--param {assignment!r}: expected name=value")
        if name not in inputs:
            known = ", ".join(f"{n} ({spec.type})" for n, spec in inputs.items()) or "none"
            raise ParamError(f"{item.name} has no parameter {name!r}; its parameters: {known}")
        spec = inputs[name]
        if is_artifact(spec):
            if not allow_artifacts:
                raise ParamError(f"{name!r} is an artifact input ({spec.type}); pipelines take parameters only")
            arguments[name] = text
            continue
        try:
            arguments[name] = _PARSERS[spec.type](text)
        except ValueError as error:
            raise ParamError(f"parameter {name!r} expects {spec.type}, got {text!r}: {error}") from None
    missing = [n for n, spec in inputs.items() if not spec.optional and n not in arguments]
    if missing:
        raise ParamError(f"{item.name} needs {', '.join(repr(n) for n in missing)}: pass --param NAME=VALUE")
    return arguments
