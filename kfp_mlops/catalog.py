"""Discovers the project's pipelines (``pipelines/<name>.py``) and components (``components/<name>/component.py``).

Each pipeline module defines a ``@dsl.pipeline`` named like the module (``text_classification.py`` →
``text-classification``), beside any sub-pipelines it uses; each component module one ``@dsl.component``.
Modules are imported on first use, after the CLI has set the registry prefix for image references.
"""

from __future__ import annotations

import importlib
import re
from functools import cache

from kfp.dsl import base_component, graph_component, python_component

from kfp_mlops.paths import PROJECT_ROOT


class UnknownName(KeyError):
    def __str__(self) -> str:
        return self.args[0]


@cache
def pipelines() -> dict[str, graph_component.GraphComponent]:
    found = {}
    for module_file in sorted((PROJECT_ROOT / "pipelines").glob("*.py")):
        if module_file.stem != "__init__":
            module = importlib.import_module(f"pipelines.{module_file.stem}")
            found[module_file.stem] = _named_pipeline(module, module_file.stem.replace("_", "-"))
    return found


@cache
def components() -> dict[str, python_component.PythonComponent]:
    found = {}
    for module_file in sorted((PROJECT_ROOT / "components").glob("*/component.py")):
        name = module_file.parent.name
        module = importlib.import_module(f"components.{name}.component")
        found[name] = _the_one(module, python_component.PythonComponent)
    return found


def pipeline(name: str) -> graph_component.GraphComponent:
    return _lookup(pipelines(), name, "pipeline")


def component(name: str) -> python_component.PythonComponent:
    return _lookup(components(), name, "component")


def description(item: base_component.BaseComponent) -> str:
    """The first sentence of the docstring or pipeline description."""
    first_paragraph = " ".join((item.component_spec.description or "").strip().split("\n\n")[0].split())
    return re.split(r"(?<=[\w)])\. (?=[A-Z])", first_paragraph)[0].rstrip(".")


def _lookup(items: dict, name: str, kind: str):
    key = name.replace("-", "_")
    if key not in items:
        raise UnknownName(f"unknown {kind} {name!r}; known: {', '.join(items) or 'none'}")
    return items[key]


def _the_one(module, kind: type):
    matches = [value for value in vars(module).values() if isinstance(value, kind) and _defined_in(value, module)]
    if len(matches) != 1:
        raise RuntimeError(f"{module.__file__} must define exactly one {kind.__name__}, found {len(matches)}")
    return matches[0]


def _named_pipeline(module, name: str) -> graph_component.GraphComponent:
    for value in vars(module).values():
        if isinstance(value, graph_component.GraphComponent) and _defined_in(value, module) and value.name == name:
            return value
    raise RuntimeError(f"{module.__file__} must define a @dsl.pipeline named {name!r}")


def _defined_in(item: base_component.BaseComponent, module) -> bool:
    """True for a component or pipeline written in ``module`` (not one it imports)."""
    function = getattr(item, "python_func", None) or getattr(item, "pipeline_func", None)
    return getattr(function, "__module__", None) == module.__name__
