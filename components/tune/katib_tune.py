"""Run a search as a Katib Experiment: create it with ``KatibClient``, wait for it to end, and read back the
optimal trial and every trial. The Experiment itself comes from :mod:`components.tune.experiment`.

Three API calls are made: ``KatibClient.create_experiment``, then, through the same client's
``custom_api``, a get of the Experiment every ``poll_seconds`` until it succeeds, fails or the timeout
passes, and one list of its Trials. The objects are read as plain JSON: the Katib SDK's own readers
(``get_experiment``, ``wait_for_experiment_condition``, ``list_trials``) rebuild them through
``kubernetes.client`` models, and with ``kubernetes`` 37 they fail on any object whose metadata has
labels or managedFields, which is every object a real API server returns. The identity running this
needs ``create`` and ``get`` on ``experiments`` and ``list`` on ``trials`` (``kubeflow.org``) in the
namespace (``manifests/katib/role.yaml``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from kubeflow.katib import KatibClient
from kubernetes.client.rest import ApiException

from components.tune.experiment import TrialSettings, build_experiment
from components.tune.results import (
    EARLY_STOPPED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    SUCCEEDED,
    TrialRecord,
    TuneError,
    TuneResult,
    write_outputs,
)
from components.tune.search_space import SearchSpace, check_trainer_fit, fixed_hyperparameters, parse_search_space
from components.tune.webhook import MAX_NAME_LENGTH, webhook_violations

GROUP, VERSION = "kubeflow.org", "v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
API_TIMEOUT_SECONDS = 60
# A trial's state is the first of these condition types that is True (a finished trial keeps its Created
# and Running conditions, turned False); a trial with none of them is Pending.
_TRIAL_STATES = (SUCCEEDED, EARLY_STOPPED, FAILED, KILLED, METRICS_UNAVAILABLE, "Running")


def experiment_name(prefix: str = "tune") -> str:
    """A fresh Experiment name: ``<prefix>-<8 hex digits>``, within Katib's 40 characters."""
    return f"{prefix[: MAX_NAME_LENGTH - 9].rstrip('-')}-{uuid.uuid4().hex[:8]}"


def trial_data_path(uri: str) -> str:
    """The path a trial pod reads an input artifact from: its URI, which pyarrow opens (gs://, s3://, ...)."""
    if uri.startswith("minio://"):
        raise TuneError(
            f"{uri}: trial pods read the data with pyarrow, which cannot open minio:// URIs; "
            "set the pipeline root to an s3:// or gs:// bucket the trials' service account can read"
        )
    return uri


def tune_with_katib(
    space: SearchSpace,
    trial: TrialSettings,
    *,
    client: KatibClient,
    name: str,
    namespace: str | None = None,
    seed: int | None = None,
    timeout_seconds: float = 7200,
    poll_seconds: float = 30,
) -> TuneResult:
    """Create the Experiment, wait until it succeeds, and return its best trial and all trials.

    Raises :class:`TuneError` when the Experiment breaks a webhook rule (checked before sending), fails
    (e.g. more failed trials than ``maxFailedTrialCount``), is still running after ``timeout_seconds``
    (it is left in the cluster to inspect), or ends with no successful trial.
    """
    experiment = build_experiment(space, name, trial, namespace=namespace, seed=seed)
    violations = webhook_violations(experiment)
    if violations:
        raise TuneError("Katib would refuse the Experiment:\n" + "\n".join(f"- {v}" for v in violations))
    namespace = namespace or client.namespace
    try:
        client.create_experiment(experiment, namespace=namespace)
    except Exception as error:  # KatibClient raises a bare Exception for a name already taken
        raise TuneError(f"could not create Experiment {namespace}/{name}: {error}") from error
    finished = wait_for_experiment(client, name, namespace, timeout_seconds, poll_seconds)
    try:
        listed = client.custom_api.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "trials",
            label_selector=f"{EXPERIMENT_LABEL}={name}",
            _request_timeout=API_TIMEOUT_SECONDS,
        )
    except ApiException as error:
        raise TuneError(
            f"cannot list the Trials of Experiment {namespace}/{name}: {error.status} {error.reason}"
        ) from error
    trials = [trial_record(space, item) for item in listed.get("items", [])]
    optimal = finished.get("status", {}).get("currentOptimalTrial") or {}
    best_name = optimal.get("bestTrialName")
    if not best_name:
        raise TuneError(f"Experiment {namespace}/{name} succeeded without an optimal trial; trials: {_summary(trials)}")
    best = next((record for record in trials if record.name == best_name), None)
    if best is None:  # the trial was deleted since; Katib's status still holds its values
        assignments = {a["name"]: a["value"] for a in optimal.get("parameterAssignments", [])}
        metrics = optimal.get("observation", {}).get("metrics", [])
        best = TrialRecord(best_name, SUCCEEDED, space.typed(assignments), _metric_values(space, metrics))
    return TuneResult("katib", space, best, trials)


def wait_for_experiment(
    client: KatibClient, name: str, namespace: str, timeout_seconds: float, poll_seconds: float
) -> dict[str, Any]:
    """Read the Experiment until its Succeeded condition is True, and return it; :class:`TuneError` if it
    fails, cannot be read, or is still going after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            experiment = client.custom_api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "experiments", name, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as error:
            raise TuneError(f"cannot read Experiment {namespace}/{name}: {error.status} {error.reason}") from error
        status = experiment.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        if _is_true(conditions.get("Failed")):
            failed = conditions["Failed"]
            raise TuneError(
                f"Experiment {namespace}/{name} failed ({failed.get('reason')}: {failed.get('message')}); "
                f"{status.get('trialsFailed', 0)} of {status.get('trials', 0)} trials failed"
            )
        if _is_true(conditions.get("Succeeded")):
            return experiment
        if time.monotonic() + poll_seconds > deadline:
            raise TuneError(
                f"Experiment {namespace}/{name} did not finish within {timeout_seconds:g} s "
                f"({status.get('trialsSucceeded', 0)} of {status.get('trials', 0)} trials succeeded so far); "
                "it is left running: inspect or delete it with kubectl"
            )
        time.sleep(poll_seconds)


def trial_record(space: SearchSpace, trial: Mapping[str, Any]) -> TrialRecord:
    """A Katib Trial object (as JSON) as a :class:`TrialRecord`."""
    status = trial.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    state, message = "Pending", ""
    for candidate in _TRIAL_STATES:
        if _is_true(conditions.get(candidate)):
            state, message = candidate, conditions[candidate].get("message") or ""
            break
    assignments = {a["name"]: a["value"] for a in trial.get("spec", {}).get("parameterAssignments") or []}
    metrics = (status.get("observation") or {}).get("metrics") or []
    return TrialRecord(
        trial["metadata"]["name"],
        state,
        space.typed(assignments),
        _metric_values(space, metrics),
        "" if state == SUCCEEDED else message,
    )


def _is_true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _metric_values(space: SearchSpace, metrics: list[Mapping[str, Any]]) -> dict[str, float]:
    """Each observed metric's min or max, as its strategy says; unavailable values are left out."""
    strategies = space.objective.strategies()
    values = {}
    for metric in metrics:
        strategy = strategies.get(metric.get("name"))
        if strategy is None:
            continue
        try:
            values[metric["name"]] = float(metric[strategy])
        except (KeyError, TypeError, ValueError):
            continue  # Katib writes "unavailable" when a trial printed no value
    return values


def _summary(trials: list[TrialRecord]) -> str:
    return ", ".join(f"{t.name} {t.state}" for t in trials) or "none"


def run_tune(
    *,
    search_space: str,
    train_uri: str,
    eval_uri: str,
    settings: dict[str, Any],
    trials_html_path: str,
    best_parameters_path: str,
    seed: int,
    timeout_seconds: float,
    trainer: str = "text",
    namespace: str = "",
    name: str = "",
    trial_image: str = "",
    trial_cpu: str = "2",
    trial_memory: str = "8Gi",
    trial_gpus: int = 0,
    trial_service_account: str = "",
    poll_seconds: float = 30,
    client: KatibClient | None = None,
) -> dict[str, float]:
    """The ``tune`` component: parse, run on Katib, write the outputs; returns the metrics to log.

    ``client`` defaults to ``KatibClient()`` (in a pod: its service account and namespace).
    """
    space = parse_search_space(search_space, trainer)
    check_trainer_fit(space, settings)
    trial = TrialSettings(
        trial_data_path(train_uri),
        trial_data_path(eval_uri),
        settings,
        image=trial_image,
        cpu=trial_cpu,
        memory=trial_memory,
        gpus=trial_gpus,
        service_account=trial_service_account,
    )
    client = client or KatibClient()
    result = tune_with_katib(
        space,
        trial,
        client=client,
        name=name or experiment_name(),
        namespace=namespace or None,
        seed=seed,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
    )
    return write_outputs(result, trials_html_path, best_parameters_path, fixed_hyperparameters(space, settings))
