"""The launcher against a stand-in API server, through the real kubernetes client: success, failure, timeout, cancel."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from kubernetes import client

from components.launch_training import launcher
from components.launch_training.launcher import (
    TrainingJobCancelled,
    TrainingJobError,
    TrainingJobFailed,
    TrainingJobTimedOut,
    first_failure,
    job_state,
    launch_training,
    pod_reports,
    run_training_job,
    unique_job_name,
)
from components.launch_training.manifests import LaunchSpecError, TrainingJobSpec, job_manifest, rbac_manifests
from components.launch_training.tests.fake_apiserver import (
    FakeApiServer,
    Stage,
    condition,
    pod,
    pytorchjob_pod,
    trainjob_pod,
)

POLL_S = 0.01
JOB = "text-clf-1a2b3c4d"
RUNNING = {
    "trainjob": Stage([condition("Created", reason="JobsCreationSucceeded")], []),
    "pytorchjob": Stage([condition("Created"), condition("Running", at="2025-01-01T00:01:00Z")], []),
}
SUCCEEDED = {
    "trainjob": Stage([condition("Created"), condition("Complete", reason="JobsCompleted", at="2025-01-01T00:20:00Z")]),
    "pytorchjob": Stage(
        [condition("Created"), condition("Running", "False"), condition("Succeeded", at="2025-01-01T00:20:00Z")]
    ),
}


def failed_stage(kind: str) -> Stage:
    """Node 1 fails first with the real error; node 0 fails later because its peer vanished; node 2 still runs."""
    failed = condition("Failed", reason="FailedJobs", message="job node-1 failed", at="2025-01-01T00:12:00Z")
    if kind == "trainjob":
        pods = [
            trainjob_pod(JOB, 0, "Failed", exit_code=1, finished_at="2025-01-01T00:11:00Z"),
            trainjob_pod(JOB, 1, "Failed", exit_code=1, finished_at="2025-01-01T00:10:00Z"),
            trainjob_pod(JOB, 2, "Running"),
            trainjob_pod("another-job", 0, "Failed", exit_code=2, finished_at="2025-01-01T00:01:00Z"),
        ]
    else:
        pods = [
            pytorchjob_pod(JOB, "master", 0, "Failed", exit_code=1, finished_at="2025-01-01T00:11:00Z"),
            pytorchjob_pod(JOB, "worker", 0, "Failed", exit_code=1, finished_at="2025-01-01T00:10:00Z"),
            pytorchjob_pod(JOB, "worker", 1, "Running"),
            pytorchjob_pod("another-job", "worker", 0, "Failed", exit_code=2, finished_at="2025-01-01T00:01:00Z"),
        ]
    return Stage([condition("Created"), failed], pods)


def first_failing_pod(kind: str) -> str:
    return f"{JOB}-node-0-1-x7k2p" if kind == "trainjob" else f"{JOB}-worker-0"


def later_failing_pod(kind: str) -> str:
    return f"{JOB}-node-0-0-x7k2p" if kind == "trainjob" else f"{JOB}-master-0"


@pytest.fixture
def job_spec(spec: TrainingJobSpec) -> TrainingJobSpec:
    return dataclasses.replace(spec, name=JOB)


def launch(server: FakeApiServer, kind: str, spec: TrainingJobSpec, summary: Path, timeout_s: float = 30, **options):
    return launch_training(
        kind, spec, str(summary), timeout_s=timeout_s, poll_interval_s=POLL_S, api=server.api_client(), **options
    )


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_a_job_that_completes_is_created_as_built_and_reported(kind, job_spec, tmp_path):
    summary = tmp_path / "summary.md"
    with FakeApiServer([RUNNING[kind], RUNNING[kind], SUCCEEDED[kind]]) as server:
        outputs = launch(server, kind, job_spec, summary)
        stored = server.objects[(f"{kind}s", "team-a", JOB)]
    assert tuple(outputs) == (JOB, "Succeeded")
    expected = job_manifest(kind, job_spec)
    assert stored["spec"] == expected["spec"] and stored["metadata"]["labels"] == expected["metadata"]["labels"]
    assert server.job_reads == 3
    assert server.deletes() == []
    text = summary.read_text()
    assert text.startswith(f"# {expected['kind']} `{JOB}`: Succeeded")
    assert "| nodes × processes | 3 × 8 (8 GPUs per node) |" in text
    assert '"model_dir": "/mnt/pvc/models/runs/42/model"' in text


def test_delete_on_success_removes_the_finished_job(job_spec, tmp_path):
    with FakeApiServer([SUCCEEDED["trainjob"]]) as server:
        launch(server, "trainjob", job_spec, tmp_path / "s.md", delete_on_success=True)
    (delete,) = server.deletes()
    assert delete.path == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs/{JOB}"
    assert server.objects == {}


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_a_failed_job_prints_the_log_of_the_first_pod_to_fail(kind, job_spec, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    with FakeApiServer([RUNNING[kind], failed_stage(kind)]) as server:
        steps = "".join(f"step {i}\n" for i in range(300))
        server.logs[first_failing_pod(kind)] = steps + "TrainError: no column 'text'\n"
        server.logs[later_failing_pod(kind)] = "RuntimeError: connection reset by peer\n"
        with pytest.raises(TrainingJobFailed) as raised:
            launch(server, kind, job_spec, summary)
    assert f"first failing pod: {first_failing_pod(kind)} (exit code 1)" in str(raised.value)
    printed = capsys.readouterr().out
    assert f"---- {first_failing_pod(kind)}: the first pod to fail" in printed
    assert "TrainError: no column 'text'" in printed
    assert "\nstep 101\n" in printed and "step 100\n" not in printed  # the last 200 lines
    assert "connection reset by peer" not in printed
    log_reads = [r for r in server.requests if r.path.endswith("/log")]
    assert [r.path.split("/")[-2] for r in log_reads] == [first_failing_pod(kind)]
    assert log_reads[0].query["container"] == ["node" if kind == "trainjob" else "pytorch"]
    assert server.deletes() == []  # kept for inspection; a PyTorchJob's TTL removes it
    text = summary.read_text()
    assert f": Failed\n" in text.splitlines()[0] + "\n"
    assert "| Failed | True | FailedJobs | job node-1 failed |" in text
    assert "another-job" not in text
    assert "TrainError: no column 'text'" in text


def test_a_failed_job_can_be_an_output_instead_of_an_error(job_spec, tmp_path):
    with FakeApiServer([failed_stage("pytorchjob")]) as server:
        outputs = launch(server, "pytorchjob", job_spec, tmp_path / "s.md", fail_on_job_failure=False)
    assert tuple(outputs) == (JOB, "Failed")


def test_a_job_past_its_timeout_is_deleted(job_spec, tmp_path):
    summary = tmp_path / "summary.md"
    pending = Stage(RUNNING["pytorchjob"].conditions, [pytorchjob_pod(JOB, "master", 0, "Pending")])
    with FakeApiServer([pending]) as server:
        with pytest.raises(TrainingJobTimedOut, match=f"{JOB} did not finish within 0.3 s; the job was deleted"):
            launch(server, "pytorchjob", job_spec, summary, timeout_s=0.3)
    (delete,) = server.deletes()
    assert delete.path == f"/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/{JOB}"
    assert server.objects == {}
    assert server.job_reads >= 2
    text = summary.read_text()
    assert text.startswith(f"# PyTorchJob `{JOB}`: TimedOut")
    assert f"| {JOB}-master-0 | Pending |" in text


@pytest.mark.parametrize(("kind", "sent"), [("trainjob", signal.SIGTERM), ("pytorchjob", signal.SIGINT)])
def test_a_cancelled_launch_deletes_the_job(kind, sent, job_spec, tmp_path):
    """SIGTERM (what a cancelled KFP run sends the task) and Ctrl-C both delete the job, then fail the task."""
    handler_before = signal.getsignal(signal.SIGTERM)
    with FakeApiServer([RUNNING[kind]]) as server:
        server.on_read = lambda read: os.kill(os.getpid(), sent) if read == 2 else None
        with pytest.raises(TrainingJobCancelled) as raised:
            launch(server, kind, job_spec, tmp_path / "s.md")
    how = "SIGTERM" if sent == signal.SIGTERM else "an interrupt"
    assert str(raised.value) == f"{JOB} was cancelled by {how}; the job was deleted"
    assert len(server.deletes()) == 1 and server.objects == {}
    assert server.job_reads == 2
    assert signal.getsignal(signal.SIGTERM) == handler_before
    assert (tmp_path / "s.md").read_text().startswith(f"# {job_manifest(kind, job_spec)['kind']} `{JOB}`: Cancelled")


def test_a_refused_create_names_the_api_servers_reason_and_deletes_nothing(job_spec, tmp_path):
    with FakeApiServer([RUNNING["trainjob"]]) as server:
        server.create_error = (422, 'admission webhook "validate.trainjob" denied the request: runtime not found')
        with pytest.raises(TrainingJobError, match="cannot create TrainJob 'text-clf-1a2b3c4d' in namespace 'team-a': "
                           "HTTP 422: admission webhook .* runtime not found"):
            launch(server, "trainjob", job_spec, tmp_path / "s.md")
    assert server.deletes() == [] and server.job_reads == 0


def test_api_errors_while_waiting_are_retried(job_spec, capsys):
    with FakeApiServer([RUNNING["trainjob"], SUCCEEDED["trainjob"]]) as server:
        server.read_errors = {1: 503, 2: 500}
        outcome = run_training_job(server.api_client(), job_manifest("trainjob", job_spec), 30, POLL_S)
    assert outcome.state == "Succeeded" and server.job_reads == 3
    assert "cannot read the job (HTTP 503: etcd is restarting); retrying" in capsys.readouterr().out


def test_a_job_deleted_by_someone_else_ends_the_wait(job_spec):
    with FakeApiServer([RUNNING["trainjob"]]) as server:
        server.on_read = lambda read: server.objects.clear() if read == 2 else None
        with pytest.raises(TrainingJobError, match="TrainJob 'text-clf-1a2b3c4d' was deleted by someone else"):
            run_training_job(server.api_client(), job_manifest("trainjob", job_spec), 30, POLL_S)


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_the_rbac_role_grants_exactly_what_the_launcher_uses(kind, job_spec, tmp_path):
    """A failure (create, get, list pods, read a log) and a timeout (delete) use every call the launcher makes."""
    with FakeApiServer([failed_stage(kind)]) as failing:
        run_training_job(failing.api_client(), job_manifest(kind, job_spec), 30, POLL_S)
    with FakeApiServer([RUNNING[kind]]) as slow:
        with pytest.raises(TrainingJobTimedOut):
            run_training_job(slow.api_client(), job_manifest(kind, job_spec), 0, POLL_S)
    role = next(doc for doc in rbac_manifests(kind, "team-a") if doc["kind"] == "Role")
    granted = {
        (verb, group, resource)
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert failing.permissions() | slow.permissions() == granted


def test_job_state_follows_each_operators_conditions():
    assert job_state("trainjob", {}) == "Pending"
    assert job_state("trainjob", {"status": {"conditions": [condition("Created")]}}) == "Created"
    assert job_state("trainjob", {"status": {"conditions": [condition("Complete")]}}) == "Succeeded"
    failed_after_retry = [condition("Complete", "False"), condition("Failed")]
    assert job_state("trainjob", {"status": {"conditions": failed_after_retry}}) == "Failed"
    assert job_state("pytorchjob", {"status": {"conditions": RUNNING["pytorchjob"].conditions}}) == "Running"
    assert job_state("pytorchjob", {"status": {"conditions": SUCCEEDED["pytorchjob"].conditions}}) == "Succeeded"
    # A PyTorchJob never says "Complete", a TrainJob never "Succeeded": each kind reads only its own condition.
    assert job_state("pytorchjob", {"status": {"conditions": [condition("Complete")]}}) == "Complete"


def test_the_first_failure_prefers_the_earliest_exit_and_a_restarted_containers_previous_run():
    labels = {"training.kubeflow.org/job-name": JOB}
    pods = [
        client.V1Pod.from_dict(p)
        for p in [
            pod("a", labels, "pytorch", "Running", previous_exit_code=137, finished_at="2025-01-01T00:05:00Z"),
            pod("b", labels, "pytorch", "Failed", exit_code=1, finished_at="2025-01-01T00:06:00Z"),
            pod("c", labels, "pytorch", "Succeeded", exit_code=0),
            {"metadata": {"name": "d"}, "status": {"phase": "Failed", "reason": "Evicted"}},
        ]
    ]
    reports = pod_reports(pods, "pytorchjob")
    assert [(r.name, r.exit_code, r.previous, r.reason) for r in reports] == [
        ("a", 137, True, "Error"),
        ("b", 1, False, "Error"),
        ("c", 0, False, "Completed"),
        ("d", None, False, "Evicted"),
    ]
    assert first_failure(reports).name == "a"
    assert first_failure(reports[2:]).name == "d"  # no failed exit: the evicted pod
    assert first_failure(reports[2:3]) is None


def test_the_log_of_a_restarted_container_is_read_from_its_previous_run(job_spec, tmp_path, capsys):
    stage = Stage(
        [condition("Failed")],
        [pytorchjob_pod(JOB, "master", 0, "Running", previous_exit_code=137)],
    )
    with FakeApiServer([stage]) as server:
        server.logs[f"{JOB}-master-0/previous"] = "CUDA out of memory\n"
        run_training_job(server.api_client(), job_manifest("pytorchjob", job_spec), 30, POLL_S)
    assert "CUDA out of memory" in capsys.readouterr().out
    assert [r.query.get("previous") for r in server.requests if r.path.endswith("/log")] == [["true"]]


def test_the_namespace_defaults_to_the_pods_own(tmp_path, monkeypatch):
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("team-b\n")
    monkeypatch.setattr(launcher, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    assert launcher.current_namespace() == "team-b"
    monkeypatch.setattr(launcher, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "missing")
    with pytest.raises(TrainingJobError, match="no namespace given and not running in a pod"):
        launcher.current_namespace()


def test_job_names_are_unique_and_valid(spec):
    names = {unique_job_name("train") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        dataclasses.replace(spec, name=name).check()


def test_a_non_positive_timeout_is_refused_before_anything_is_created(job_spec, tmp_path):
    with FakeApiServer([RUNNING["trainjob"]]) as server:
        with pytest.raises(LaunchSpecError, match="timeout_s must be positive, got 0"):
            launch(server, "trainjob", job_spec, tmp_path / "s.md", timeout_s=0)
    assert server.requests == []


def test_an_unreachable_api_server_fails_the_create_with_a_clear_error(job_spec):
    server = FakeApiServer([RUNNING["trainjob"]])
    with server:
        api = server.api_client()
    # The server is stopped and its port closed: the create cannot connect.
    unreachable = "cannot create TrainJob 'text-clf-1a2b3c4d': the API server is unreachable"
    with pytest.raises(TrainingJobError, match=unreachable):
        run_training_job(api, job_manifest("trainjob", job_spec), 30, POLL_S)
