"""A stand-in for a Kubernetes API server with Katib installed, serving the three endpoints KatibClient uses here:
create and get of ``kubeflow.org/v1beta1`` Experiments, and list of Trials by label selector.

It behaves like the real pair where the client depends on it. A created Experiment is checked the way
the API server and Katib's webhook would check it (the v1beta1 schema, when the swagger file is there,
and every webhook rule), and refused with 422 otherwise. Its "controller" makes all the trials on
the first read. Each trial's parameters come from the feasible space, deterministically, and
``${trialParameters.NAME}`` in the trial Job is replaced the way Katib does it. The Job is recorded,
and a test callback decides the trial's outcome. Observations hold ``min``, ``max`` and ``latest`` over
the epochs. The optimal trial follows the Experiment's metricStrategies, and the Experiment fails when
more trials fail than ``maxFailedTrialCount``. It succeeds ``reads_until_done`` reads after creation,
or never, when that is None.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.tune.tests import katib_schema
from components.tune.webhook import webhook_violations
from kfp_mlops.testing.fake_apiserver import Answer, FakeKubernetesApi, Request, Resource, failure

KATIB = ("kubeflow.org", "v1beta1")
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TIME = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class Outcome:
    """What happened to one trial: its final state and, per metric, the value printed each epoch."""

    state: str
    metrics: Mapping[str, list[float]] = field(default_factory=dict)
    message: str = ""


Decide = Callable[[Mapping[str, str]], Outcome]


class FakeKatibApi(FakeKubernetesApi):
    """Run with ``with FakeKatibApi(decide) as api:``; ``api.url`` is the API server's URL."""

    def __init__(self, decide: Decide, *, reads_until_done: int | None = 2):
        super().__init__()
        self.decide = decide
        self.reads_until_done = reads_until_done
        self.experiments: dict[tuple[str, str], dict[str, Any]] = {}
        self.trials: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.jobs: list[dict[str, Any]] = []  # each trial's Job after Katib's substitution
        self._reads: dict[tuple[str, str], int] = {}

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(verb, resource) of each request so far, as RBAC names them."""
        permissions = (request.permission for request in self.received)
        return [(verb, resource) for verb, _group, resource in permissions]

    # --- the API ---------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        if experiments := request.addresses(*KATIB, "experiments"):
            if request.verb == "create":
                return self._create(experiments, request.body)
            if request.verb == "get":
                return self._get(experiments)
        if (trials := request.addresses(*KATIB, "trials")) and request.verb == "list":
            return self._list_trials(trials.namespace, request.query.get("labelSelector", [""])[0])
        return request.not_served()

    def _create(self, target: Resource, body: dict[str, Any]) -> Answer:
        namespace, name = target.namespace, body.get("metadata", {}).get("name", "")
        if (namespace, name) in self.experiments:
            return target.already_exists(name)
        problems = webhook_violations(body)
        if katib_schema.KATIB_SWAGGER.exists():
            problems += katib_schema.errors(body)
        if problems:
            return failure(422, "Invalid", "admission webhook denied the request: " + "; ".join(problems))
        experiment = copy.deepcopy(body)
        experiment["metadata"].update(namespace=namespace, uid=f"uid-{name}", resourceVersion="1")
        experiment["status"] = {"conditions": [_condition("Created", "True", "ExperimentCreated")]}
        self.experiments[(namespace, name)] = experiment
        self._reads[(namespace, name)] = 0
        return 201, experiment

    def _get(self, target: Resource) -> Answer:
        namespace, name = target.namespace, target.name
        experiment = self.experiments.get((namespace, name))
        if experiment is None:
            return target.not_found()
        self._reads[(namespace, name)] += 1
        if (namespace, name) not in self.trials:
            self.trials[(namespace, name)] = self._run_trials(experiment)
            experiment["status"]["conditions"].append(_condition("Running", "True", "ExperimentRunning"))
        if self.reads_until_done is not None and self._reads[(namespace, name)] > self.reads_until_done:
            self._finish(experiment, self.trials[(namespace, name)])
        return 200, experiment

    def _list_trials(self, namespace: str, selector: str) -> Answer:
        label, _, value = selector.partition("=")
        items = [
            trial
            for (trial_namespace, _), trials in self.trials.items()
            if trial_namespace == namespace
            for trial in trials
            if label == EXPERIMENT_LABEL and trial["metadata"]["labels"][EXPERIMENT_LABEL] == value
        ]
        return 200, {"apiVersion": "kubeflow.org/v1beta1", "kind": "TrialList", "metadata": {}, "items": items}

    # --- the controller -------------------------------------------------------------------------------

    def _run_trials(self, experiment: dict[str, Any]) -> list[dict[str, Any]]:
        spec = experiment["spec"]
        count = spec["maxTrialCount"]
        trials = []
        for index in range(count):
            assignments = {p["name"]: _assignment(p, index, count) for p in spec["parameters"]}
            self.jobs.append(_substitute(spec["trialTemplate"], assignments))
            outcome = self.decide(assignments)
            status: dict[str, Any] = {
                "conditions": [
                    _condition("Created", "False", "TrialCreated"),
                    _condition("Running", "False", "TrialRunning"),
                    _condition(outcome.state, "True", f"Trial{outcome.state}", outcome.message),
                ]
            }
            if outcome.metrics:
                status["observation"] = {
                    "metrics": [
                        {"name": metric, "min": repr(min(values)), "max": repr(max(values)), "latest": repr(values[-1])}
                        for metric, values in outcome.metrics.items()
                    ]
                }
            name = f"{experiment['metadata']['name']}-{index:08x}"
            trials.append(
                {
                    "apiVersion": "kubeflow.org/v1beta1",
                    "kind": "Trial",
                    "metadata": {
                        "name": name,
                        "namespace": experiment["metadata"]["namespace"],
                        "labels": {EXPERIMENT_LABEL: experiment["metadata"]["name"]},
                    },
                    "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in assignments.items()]},
                    "status": status,
                }
            )
        return trials

    def _finish(self, experiment: dict[str, Any], trials: list[dict[str, Any]]) -> None:
        status = experiment["status"]
        if any(c["type"] in ("Succeeded", "Failed") for c in status["conditions"]):
            return
        states = [next(c["type"] for c in t["status"]["conditions"] if c["status"] == "True") for t in trials]
        status.update(
            trials=len(trials), trialsSucceeded=states.count("Succeeded"), trialsFailed=states.count("Failed")
        )
        status["conditions"][-1]["status"] = "False"
        if states.count("Failed") > experiment["spec"]["maxFailedTrialCount"]:
            status["conditions"].append(
                _condition("Failed", "True", "ExperimentMaxFailedTrialsReached", "max failed count has reached")
            )
            return
        optimal = _optimal_trial(experiment["spec"]["objective"], trials)
        if optimal is not None:
            status["currentOptimalTrial"] = optimal
        status["conditions"].append(_condition("Succeeded", "True", "ExperimentMaxTrialsReached"))


def _assignment(parameter: Mapping[str, Any], index: int, count: int) -> str:
    space = parameter["feasibleSpace"]
    if space.get("list"):
        return space["list"][index % len(space["list"])]
    low, high = float(space["min"]), float(space["max"])
    value = low + (high - low) * (index + 0.5) / count
    return str(round(value)) if parameter["parameterType"] == "int" else repr(value)


def _substitute(template: Mapping[str, Any], assignments: Mapping[str, str]) -> dict[str, Any]:
    """Katib's substitution: each ``${trialParameters.NAME}`` in the JSON text becomes its reference's value."""
    text = json.dumps(template["trialSpec"])
    for trial_parameter in template["trialParameters"]:
        text = text.replace(
            f"${{trialParameters.{trial_parameter['name']}}}", assignments[trial_parameter["reference"]]
        )
    return json.loads(text)


def _optimal_trial(objective: Mapping[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    metric = objective["objectiveMetricName"]
    default = "max" if objective["type"] == "maximize" else "min"
    strategy = next((s["value"] for s in objective.get("metricStrategies", []) if s["name"] == metric), default)
    best, best_value = None, None
    for trial in trials:
        observed = {m["name"]: m for m in trial["status"].get("observation", {}).get("metrics", [])}
        if metric not in observed:
            continue
        value = float(observed[metric][strategy])
        better = best_value is None or (value > best_value if objective["type"] == "maximize" else value < best_value)
        if better:
            best, best_value = trial, value
    if best is None:
        return None
    return {
        "bestTrialName": best["metadata"]["name"],
        "parameterAssignments": best["spec"]["parameterAssignments"],
        "observation": best["status"]["observation"],
    }


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": TIME,
        "lastTransitionTime": TIME,
    }
