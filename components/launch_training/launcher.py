"""Create a TrainJob or PyTorchJob, wait for it with a deadline, report, and delete it if the wait is abandoned.

The Kubernetes calls are the ones the RBAC in ``manifests/training/`` grants: create, get and delete the
job (``CustomObjectsApi``); list pods and read a pod's log (``CoreV1Api``). On failure the first pod to
fail is found and the end of its log is printed. On a timeout, SIGTERM (a cancelled KFP run) or Ctrl-C,
the job is deleted with its pods before the error is raised.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from components.launch_training.manifests import (
    KINDS,
    LaunchSpecError,
    PYTORCHJOB_CONTAINER,
    TRAINJOB_NODE,
    TrainingJobSpec,
    job_manifest,
    resource_of,
    trainer_config_json,
)

REQUEST_TIMEOUT_S = 30.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SUCCEEDED, FAILED, TIMED_OUT, CANCELLED = "Succeeded", "Failed", "TimedOut", "Cancelled"
# The condition type that ends each kind's run well or badly.
TERMINAL_CONDITIONS = {"trainjob": ("Complete", "Failed"), "pytorchjob": ("Succeeded", "Failed")}
# The label each operator puts on the pods of a job: JobSet (under Trainer v2) and the Training Operator.
POD_SELECTORS = {"trainjob": "jobset.sigs.k8s.io/jobset-name", "pytorchjob": "training.kubeflow.org/job-name"}
TRAINING_CONTAINERS = {"trainjob": TRAINJOB_NODE, "pytorchjob": PYTORCHJOB_CONTAINER}


class TrainingJobError(RuntimeError):
    """The training job could not be created, failed, timed out or was cancelled; ``outcome`` says how far it got."""

    def __init__(self, message: str, outcome: JobOutcome | None = None):
        super().__init__(message)
        self.outcome = outcome


class TrainingJobFailed(TrainingJobError):
    pass


class TrainingJobTimedOut(TrainingJobError):
    pass


class TrainingJobCancelled(TrainingJobError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the job is deleted on the way out."""


@dataclass(frozen=True)
class JobRef:
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class PodReport:
    name: str
    phase: str
    container: str | None
    exit_code: int | None
    reason: str | None
    finished_at: datetime | None
    previous: bool
    """True when the exit is of an earlier run of the container (it was restarted since)."""


@dataclass
class JobOutcome:
    ref: JobRef
    state: str
    """Succeeded, Failed, TimedOut or Cancelled."""
    seconds: float
    conditions: list[dict[str, Any]] = field(default_factory=list)
    pods: list[PodReport] = field(default_factory=list)
    failed_pod: PodReport | None = None
    failed_pod_logs: str | None = None


class LaunchOutputs(NamedTuple):
    job_name: str
    state: str


def api_client() -> client.ApiClient:
    """A client for the cluster this runs in (its service account), or for the current kubeconfig context."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def unique_job_name(prefix: str) -> str:
    """``prefix`` and 8 random hex digits, so that reruns never collide."""
    return f"{prefix}-{secrets.token_hex(4)}"


def current_namespace() -> str:
    """The namespace of the pod this runs in."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError as error:
        raise TrainingJobError(f"no namespace given and not running in a pod ({error})") from error


def _describe(error: Exception) -> str:
    """An API error as status and the API server's message; a connection error as itself."""
    if not isinstance(error, ApiException):
        return str(error)
    try:
        return f"HTTP {error.status}: {json.loads(error.body)['message']}"
    except (TypeError, ValueError, KeyError):
        return f"HTTP {error.status}: {error.reason}"


def job_ref(manifest: Mapping[str, Any]) -> JobRef:
    """The reference of the job ``manifest`` describes (known before it is created)."""
    kind = next((name for name, resource in KINDS.items() if resource.kind == manifest["kind"]), None)
    if kind is None:
        raise TrainingJobError(f"cannot launch a {manifest['kind']!r}; kinds: {[r.kind for r in KINDS.values()]}")
    return JobRef(kind, manifest["metadata"]["name"], manifest["metadata"]["namespace"])


def create_job(api: client.ApiClient, manifest: Mapping[str, Any]) -> JobRef:
    ref = job_ref(manifest)
    resource = KINDS[ref.kind]
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            resource.group, resource.version, ref.namespace, resource.plural, dict(manifest),
            _request_timeout=REQUEST_TIMEOUT_S,
        )
    except ApiException as error:
        raise TrainingJobError(
            f"cannot create {resource.kind} {ref.name!r} in namespace {ref.namespace!r}: {_describe(error)}"
        ) from error
    except HTTPError as error:
        raise TrainingJobError(
            f"cannot create {resource.kind} {ref.name!r}: the API server is unreachable ({error})"
        ) from error
    return ref


def get_job(api: client.ApiClient, ref: JobRef) -> dict[str, Any]:
    resource = KINDS[ref.kind]
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        resource.group, resource.version, ref.namespace, resource.plural, ref.name, _request_timeout=REQUEST_TIMEOUT_S
    )


def delete_job(api: client.ApiClient, ref: JobRef) -> bool:
    """Delete the job and, in the background, its pods; False when it was already gone."""
    resource = KINDS[ref.kind]
    try:
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            resource.group, resource.version, ref.namespace, resource.plural, ref.name,
            propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT_S,
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def job_state(kind: str, job: Mapping[str, Any]) -> str:
    """Succeeded or Failed once the job has ended; before that, its newest true condition (or Pending)."""
    success, failure = TERMINAL_CONDITIONS[kind]
    true_conditions = [c for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"]
    types = {condition["type"] for condition in true_conditions}
    if failure in types:
        return FAILED
    if success in types:
        return SUCCEEDED
    if not true_conditions:
        return "Pending"
    return max(true_conditions, key=lambda c: c.get("lastTransitionTime") or "")["type"]


def job_pods(api: client.ApiClient, ref: JobRef) -> list[client.V1Pod]:
    selector = f"{POD_SELECTORS[ref.kind]}={ref.name}"
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ref.namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT_S
    )
    return sorted(pods.items, key=lambda pod: pod.metadata.name)


def pod_reports(pods: list[client.V1Pod], kind: str) -> list[PodReport]:
    """One row per pod: its phase and, when its training container has ended, how and when."""
    reports = []
    for pod in pods:
        phase = (pod.status.phase if pod.status else None) or "Unknown"
        container = _training_container(pod, kind)
        ended = _last_exit(container) if container else None
        if ended:
            terminated, previous = ended
            reports.append(
                PodReport(
                    pod.metadata.name, phase, container.name, terminated.exit_code,
                    terminated.reason, terminated.finished_at, previous,
                )
            )
        else:
            reason = pod.status.reason if pod.status else None
            reports.append(PodReport(pod.metadata.name, phase, None, None, reason, None, False))
    return reports


def _training_container(pod: client.V1Pod, kind: str) -> client.V1ContainerStatus | None:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    if len(statuses) == 1:
        return statuses[0]
    return next((status for status in statuses if status.name == TRAINING_CONTAINERS[kind]), None)


def _last_exit(status: client.V1ContainerStatus) -> tuple[client.V1ContainerStateTerminated, bool] | None:
    """(the termination to report, whether it is of a previous run): a failure first, else the current exit."""
    current = status.state.terminated if status.state else None
    previous = status.last_state.terminated if status.last_state else None
    for terminated, was_previous in ((current, False), (previous, True)):
        if terminated and terminated.exit_code != 0:
            return terminated, was_previous
    return (current, False) if current else None


def first_failure(reports: list[PodReport]) -> PodReport | None:
    """The pod whose training container failed first: the cause, the others usually fail after it.

    A container's non-zero exit is preferred (earliest first); then a Failed pod with no exit, e.g. evicted.
    """
    exits = [r for r in reports if r.exit_code not in (None, 0)]
    if exits:
        return min(exits, key=lambda r: (r.finished_at is None, r.finished_at or datetime.min, r.name))
    failed = [r for r in reports if r.phase == "Failed"]
    return failed[0] if failed else None


def pod_log(api: client.ApiClient, namespace: str, report: PodReport, tail_lines: int) -> str:
    try:
        return client.CoreV1Api(api).read_namespaced_pod_log(
            report.name, namespace, container=report.container, previous=report.previous or None,
            tail_lines=tail_lines, _request_timeout=REQUEST_TIMEOUT_S,
        )
    except (ApiException, HTTPError) as error:
        return f"(the log of {report.name} could not be read: {_describe(error)})"


def wait_for_job(
    api: client.ApiClient, ref: JobRef, deadline: float, poll_interval_s: float
) -> tuple[str, dict[str, Any]]:
    """Poll the job until it succeeds or fails, or until the ``time.monotonic()`` deadline (state TimedOut).

    Returns (state, the job as last read). API errors other than 404 (a restarting API server, a dropped
    connection) are retried until the deadline.
    """
    job: dict[str, Any] = {}
    reported = None
    while True:
        try:
            job = get_job(api, ref)
        except ApiException as error:
            if error.status == 404:
                raise TrainingJobError(f"{KINDS[ref.kind].kind} {ref.name!r} was deleted by someone else") from error
            print(f"{ref.name}: cannot read the job ({_describe(error)}); retrying", flush=True)
        except HTTPError as error:
            print(f"{ref.name}: cannot reach the API server ({error}); retrying", flush=True)
        else:
            state = job_state(ref.kind, job)
            if state != reported:
                print(f"{ref.name}: {state}", flush=True)
                reported = state
            if state in (SUCCEEDED, FAILED):
                return state, job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMED_OUT, job
        time.sleep(min(poll_interval_s, remaining))


def run_training_job(
    api: client.ApiClient,
    manifest: Mapping[str, Any],
    timeout_s: float,
    poll_interval_s: float = 10.0,
    log_tail_lines: int = 200,
    delete_on_success: bool = False,
) -> JobOutcome:
    """Create the job and wait for it; return its outcome, also when it failed (``state`` Failed).

    On the deadline, SIGTERM or KeyboardInterrupt the job is deleted, then TrainingJobTimedOut or
    TrainingJobCancelled is raised with the outcome so far.
    """
    started = time.monotonic()
    # The name is known before the create call returns, so a cancel that lands during it can still delete.
    ref = job_ref(manifest)
    try:
        create_job(api, manifest)
        print(f"created {manifest['kind']} {ref.namespace}/{ref.name}", flush=True)
        state, job = wait_for_job(api, ref, started + timeout_s, poll_interval_s)
    except KeyboardInterrupt as error:
        outcome = JobOutcome(ref, CANCELLED, time.monotonic() - started)
        how = "SIGTERM" if isinstance(error, Terminated) else "an interrupt"
        raise TrainingJobCancelled(f"{ref.name} was cancelled by {how}; {_abandon(api, outcome)}", outcome) from error
    outcome = JobOutcome(ref, state, time.monotonic() - started, job.get("status", {}).get("conditions") or [])
    if state == TIMED_OUT:
        outcome.pods = _pods_or_none(api, ref)
        note = _abandon(api, outcome)
        raise TrainingJobTimedOut(f"{ref.name} did not finish within {timeout_s:g} s; {note}", outcome)
    if state == FAILED:
        outcome.pods = _pods_or_none(api, ref)
        outcome.failed_pod = first_failure(outcome.pods)
        if outcome.failed_pod:
            outcome.failed_pod_logs = pod_log(api, ref.namespace, outcome.failed_pod, log_tail_lines)
            print(_failure_banner(outcome.failed_pod, log_tail_lines), flush=True)
            print(outcome.failed_pod_logs, flush=True)
    elif delete_on_success:
        delete_job(api, ref)
    return outcome


def _pods_or_none(api: client.ApiClient, ref: JobRef) -> list[PodReport]:
    try:
        return pod_reports(job_pods(api, ref), ref.kind)
    except (ApiException, HTTPError) as error:
        print(f"{ref.name}: cannot list its pods ({_describe(error)})", flush=True)
        return []


def _abandon(api: client.ApiClient, outcome: JobOutcome) -> str:
    """Delete the job being given up on; say what happened to it."""
    ref = outcome.ref
    try:
        note = "the job was deleted" if delete_job(api, ref) else "the job was already gone"
    except (ApiException, HTTPError) as error:
        note = (
            f"the job could NOT be deleted ({_describe(error)}); delete it with "
            f"`kubectl delete {KINDS[ref.kind].plural} {ref.name} -n {ref.namespace}`"
        )
    print(f"{ref.name}: {outcome.state}; {note}", flush=True)
    return note


def _failure_banner(report: PodReport, tail_lines: int) -> str:
    run = "previous run of " if report.previous else ""
    return (
        f"---- {report.name}: the first pod to fail ({run}container {report.container}, exit code "
        f"{report.exit_code}, {report.reason or report.phase}); the last {tail_lines} lines of its log ----"
    )


@contextmanager
def sigterm_cancels() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|") if value not in (None, "") else ""


def summary_markdown(kind: str, spec: TrainingJobSpec, outcome: JobOutcome) -> str:
    """A Markdown page: the run's settings, final state, conditions, pods and, on failure, the failing pod's log."""
    resource = resource_of(kind)
    where = f"runtime `{spec.runtime_name}`" if kind == "trainjob" else "Training Operator"
    lines = [
        f"# {resource.kind} `{outcome.ref.name}`: {outcome.state}",
        "",
        "| | |",
        "|---|---|",
        f"| kind | {resource.kind} ({resource.api_version}), {where} |",
        f"| namespace | `{outcome.ref.namespace}` |",
        f"| nodes × processes | {spec.num_nodes} × {spec.processes_per_node} "
        f"({spec.gpus_per_node} GPU{'s' if spec.gpus_per_node != 1 else ''} per node) |",
        f"| image | `{spec.image}` |",
        f"| train data | `{spec.train_data_uri}` |",
        f"| eval data | `{spec.eval_data_uri}` |",
        f"| model output | `{spec.model_output_uri}` |",
        f"| wall time | {outcome.seconds:.1f} s |",
        "",
        "## Trainer config",
        "",
        "```json",
        json.dumps(json.loads(trainer_config_json(spec)), indent=2),
        "```",
    ]
    if outcome.conditions:
        lines += ["", "## Conditions", "", "| type | status | reason | message | since |", "|---|---|---|---|---|"]
        lines += [
            f"| {_cell(c.get('type'))} | {_cell(c.get('status'))} | {_cell(c.get('reason'))} | "
            f"{_cell(c.get('message'))} | {_cell(c.get('lastTransitionTime'))} |"
            for c in outcome.conditions
        ]
    if outcome.pods:
        lines += ["", "## Pods", "", "| pod | phase | exit code | reason |", "|---|---|---|---|"]
        lines += [f"| {_cell(p.name)} | {p.phase} | {_cell(p.exit_code)} | {_cell(p.reason)} |" for p in outcome.pods]
    if outcome.failed_pod:
        lines += ["", f"## Log of `{outcome.failed_pod.name}`, the first pod to fail", "", "```"]
        lines += [(outcome.failed_pod_logs or "").rstrip("\n").replace("```", "ʼʼʼ"), "```"]
    return "\n".join(lines) + "\n"


def launch_training(
    kind: str,
    spec: TrainingJobSpec,
    summary_path: str,
    timeout_s: float,
    poll_interval_s: float = 10.0,
    fail_on_job_failure: bool = True,
    delete_on_success: bool = False,
    api: client.ApiClient | None = None,
) -> LaunchOutputs:
    """The component's entry: build the manifest, run the job, write the summary; raise unless it succeeded.

    A failed job raises :class:`TrainingJobFailed` after the summary is written, unless
    ``fail_on_job_failure`` is False; a timeout or a cancellation always raises.
    """
    if timeout_s <= 0:
        raise LaunchSpecError(f"timeout_s must be positive, got {timeout_s}")
    manifest = job_manifest(kind, spec)
    api = api or api_client()
    with sigterm_cancels():
        try:
            outcome = run_training_job(api, manifest, timeout_s, poll_interval_s, delete_on_success=delete_on_success)
        except TrainingJobError as error:
            if error.outcome:
                _write_summary(summary_path, summary_markdown(kind, spec, error.outcome))
            raise
    _write_summary(summary_path, summary_markdown(kind, spec, outcome))
    if outcome.state == FAILED and fail_on_job_failure:
        failed = outcome.failed_pod
        raise TrainingJobFailed(
            f"{resource_of(kind).kind} {outcome.ref.name!r} failed"
            + (f"; first failing pod: {failed.name} (exit code {failed.exit_code})" if failed else ""),
            outcome,
        )
    return LaunchOutputs(outcome.ref.name, outcome.state)


def _write_summary(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    staging.write_text(text)
    staging.replace(target)
