"""Katib's admission-webhook rules for an Experiment, checked before anything is sent to the cluster.

A Python reading of ``pkg/webhook/v1beta1/experiment/validator/validator.go`` (see
``/work/shared/crds/README.md`` for the commit), applied to the Experiment as a plain dict after Katib's
defaulting would have run. Two rules are stricter than Katib: the whole name must match the pattern
(Katib's regex has no ``$``, but the name also becomes the Suggestion's Service name, a DNS-1035
label), and a ``configMap`` trial source is checked for its three fields only (its template lives in
the cluster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_NAME_LENGTH = 40
# The suggestion and early-stopping services of Katib's default katib-config.
KNOWN_ALGORITHMS = (
    "random",
    "tpe",
    "multivariate-tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "enas",
    "darts",
    "pbt",
)
KNOWN_EARLY_STOPPING = ("medianstop",)
OBJECTIVE_TYPES = ("minimize", "maximize")
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
RESUME_POLICIES = ("", "Never", "LongRunning", "FromVolume")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push")
# Kinds whose success and failure conditions Katib's defaulting fills in (experiment_defaults.go).
DEFAULTED_TRIAL_KINDS = ("Job", "TrainJob", "TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "PaddleJob", "JAXJob")
TRIAL_META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Labels", "Annotations")
_PLACEHOLDER = re.compile(r"\$\{trialParameters\..+?\}")
_META_REFERENCE = re.compile(r"\$\{trialSpec\.(.+?)\}")
_INDEXED_META_KEY = re.compile(r"(.+)\[(.+)]")


def webhook_violations(experiment: Mapping[str, Any]) -> list[str]:
    """Every rule of Katib's Experiment webhook that ``experiment`` breaks, as ``"field.path: problem"``."""
    found: list[str] = []
    metadata = experiment.get("metadata") or {}
    spec = experiment.get("spec") or {}
    name = metadata.get("name") or ""
    if not NAME_PATTERN.fullmatch(name):
        found.append(
            f"metadata.name: {name!r} must start with a lowercase letter, hold only a-z, 0-9 and '-', "
            f"and end with a letter or digit"
        )
    if len(name) > MAX_NAME_LENGTH:
        found.append(f"metadata.name: {name!r} is longer than {MAX_NAME_LENGTH} characters")
    found += _count_violations(spec)
    found += _objective_violations(spec.get("objective"))
    found += _algorithm_violations(spec.get("algorithm"), "spec.algorithm", KNOWN_ALGORITHMS, required=True)
    found += _algorithm_violations(
        spec.get("earlyStopping"), "spec.earlyStopping", KNOWN_EARLY_STOPPING, required=False
    )
    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        found.append(f"spec.resumePolicy: {spec['resumePolicy']!r} is not one of {', '.join(RESUME_POLICIES[1:])}")
    found += _trial_template_violations(spec)
    parameters = spec.get("parameters") or []
    if not parameters and not spec.get("nasConfig"):
        found.append("spec: spec.parameters or spec.nasConfig must be given")
    if parameters and spec.get("nasConfig"):
        found.append("spec: only one of spec.parameters and spec.nasConfig may be given")
    for index, parameter in enumerate(parameters):
        found += _parameter_violations(parameter, f"spec.parameters[{index}]")
    collector = ((spec.get("metricsCollectorSpec") or {}).get("collector") or {}).get("kind", "StdOut")
    if collector not in COLLECTOR_KINDS:
        found.append(
            f"spec.metricsCollectorSpec.collector.kind: {collector!r} is not one of {', '.join(COLLECTOR_KINDS)}"
        )
    return found


def _count_violations(spec: Mapping[str, Any]) -> list[str]:
    found = []
    max_trials, parallel, max_failed = (
        spec.get(key) for key in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
    )
    if max_failed is not None and max_failed < 0:
        found.append(f"spec.maxFailedTrialCount: {max_failed} must not be less than 0")
    if max_trials is not None and max_trials <= 0:
        found.append(f"spec.maxTrialCount: {max_trials} must be greater than 0")
    if parallel is not None and parallel <= 0:
        found.append(f"spec.parallelTrialCount: {parallel} must be greater than 0")
    if max_trials is not None and max_failed is not None and max_failed > max_trials:
        found.append(f"spec.maxFailedTrialCount: {max_failed} must be at most spec.maxTrialCount ({max_trials})")
    if max_trials is not None and parallel is not None and parallel > max_trials:
        found.append(f"spec.parallelTrialCount: {parallel} must be at most spec.maxTrialCount ({max_trials})")
    return found


def _objective_violations(objective: Mapping[str, Any] | None) -> list[str]:
    if not objective:
        return ["spec.objective: must be given"]
    found = []
    if objective.get("type") not in OBJECTIVE_TYPES:
        found.append(f"spec.objective.type: {objective.get('type')!r} must be minimize or maximize")
    metric = objective.get("objectiveMetricName")
    if not metric:
        found.append("spec.objective.objectiveMetricName: must be given")
    if metric and metric in (objective.get("additionalMetricNames") or []):
        found.append(f"spec.objective.additionalMetricNames: must not contain the objective metric {metric!r}")
    return found


def _algorithm_violations(
    algorithm: Mapping[str, Any] | None, path: str, known: tuple[str, ...], required: bool
) -> list[str]:
    if algorithm is None:
        return [f"{path}: must be given"] if required else []
    name = algorithm.get("algorithmName")
    if not name:
        return [f"{path}.algorithmName: must be given"]
    if name not in known:
        return [f"{path}.algorithmName: {name!r} is not a known algorithm ({', '.join(known)})"]
    return []


def _parameter_violations(parameter: Mapping[str, Any], path: str) -> list[str]:
    found = []
    kind = parameter.get("parameterType", "")
    if kind not in (*PARAMETER_TYPES, ""):  # Katib lets the unknown type "" through
        found.append(f"{path}.parameterType: {kind!r} is not supported")
    space = parameter.get("feasibleSpace") or {}
    distribution = space.get("distribution", "")
    if distribution not in (*DISTRIBUTIONS, ""):
        found.append(f"{path}.feasibleSpace.distribution: {distribution!r} is not supported")
    if not any(space.values()):
        return [*found, f"{path}.feasibleSpace: must be given"]
    if kind in ("int", "double"):
        if space.get("list"):
            found.append(f"{path}.feasibleSpace.list: is not supported for parameterType {kind}")
        if not space.get("max") or not space.get("min"):
            found.append(f"{path}.feasibleSpace.max: feasibleSpace.max and .min must be given for parameterType {kind}")
    elif kind in ("categorical", "discrete"):
        if space.get("max") or space.get("min") or space.get("step"):
            found.append(f"{path}.feasibleSpace: .max, .min and .step are not supported for parameterType {kind}")
    return found


def _trial_template_violations(spec: Mapping[str, Any]) -> list[str]:
    path = "spec.trialTemplate"
    template = spec.get("trialTemplate")
    if template is None:
        return [f"{path}: must be given"]
    found = []
    if not template.get("primaryContainerName"):
        found.append(f"{path}.primaryContainerName: must be given")
    trial_spec, config_map = template.get("trialSpec"), template.get("configMap")
    kind = (trial_spec or {}).get("kind")
    defaulted = trial_spec is not None and kind in DEFAULTED_TRIAL_KINDS
    if not defaulted and not (template.get("successCondition") and template.get("failureCondition")):
        found.append(f"{path}: successCondition and failureCondition must be given for a trialSpec of kind {kind!r}")
    if template.get("trialParameters") is None:
        return [*found, f"{path}.trialParameters: must be given"]
    if trial_spec is None and config_map is None:
        return [*found, f"{path}: spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be given"]
    if trial_spec is not None and config_map is not None:
        return [
            *found,
            f"{path}: only one of spec.trialTemplate.trialSpec and spec.trialTemplate.configMap may be given",
        ]
    if config_map is not None:
        if not all(config_map.get(key) for key in ("configMapName", "configMapNamespace", "templatePath")):
            found.append(f"{path}.configMap: configMapName, configMapNamespace and templatePath must be given")
        return found
    return found + _trial_parameter_violations(spec, template, json.dumps(trial_spec))


def _trial_parameter_violations(spec: Mapping[str, Any], template: Mapping[str, Any], text: str) -> list[str]:
    path = "spec.trialTemplate.trialParameters"
    found = []
    parameter_names = {parameter.get("name") for parameter in spec.get("parameters") or []}
    names: set[str] = set()
    references: set[str] = set()
    for index, trial_parameter in enumerate(template["trialParameters"]):
        name, reference = trial_parameter.get("name") or "", trial_parameter.get("reference") or ""
        if not name or not reference or "{" in name or "}" in name:
            found.append(f"{path}[{index}]: name and reference must be given, and the name must not hold '{{' or '}}'")
            continue
        if name in names:
            found.append(f"{path}[{index}].name: {name!r} is given twice")
            continue
        if reference in references:
            found.append(f"{path}[{index}].reference: {reference!r} is given twice")
            continue
        names.add(name)
        references.add(reference)
        if parameter_names and reference not in parameter_names and not _is_meta_reference(reference):
            found.append(
                f"{path}[{index}].reference: {reference!r} is neither a spec.parameters name nor trial metadata"
            )
        placeholder = f"${{trialParameters.{name}}}"
        if placeholder not in text:
            return [*found, f"{path}[{index}].name: {placeholder} is not used in spec.trialTemplate.trialSpec"]
        text = text.replace(placeholder, "test-value")
    unknown = _PLACEHOLDER.findall(text)
    if unknown:
        found.append(f"spec.trialTemplate: {', '.join(unknown)} in the trialSpec are not in trialParameters")
    trial_spec = template["trialSpec"]
    trial_metadata = trial_spec.get("metadata") or {}
    if trial_metadata.get("name") or trial_metadata.get("namespace"):
        found.append("spec.trialTemplate.trialSpec.metadata: name and namespace must be left out")
    if not trial_spec.get("apiVersion") or not trial_spec.get("kind"):
        found.append("spec.trialTemplate.trialSpec: apiVersion and kind must be given")
    return found


def _is_meta_reference(reference: str) -> bool:
    match = _META_REFERENCE.search(reference)
    if not match:
        return False
    key = match.group(1)
    indexed = _INDEXED_META_KEY.fullmatch(key)
    return key in TRIAL_META_KEYS or (indexed is not None and indexed.group(1) in TRIAL_META_KEYS)
