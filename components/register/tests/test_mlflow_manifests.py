"""manifests/mlflow: a pinned, non-root MLflow server whose version is the locked client's, wired consistently.

The server command itself runs in every registry test session (conftest's ``mlflow_server`` starts it).
"""

from __future__ import annotations

import shutil
import subprocess

import mlflow
import pytest
import yaml

from kfp_mlops.paths import PROJECT_ROOT

FOLDER = PROJECT_ROOT / "manifests" / "mlflow"


def load(name: str) -> dict:
    return yaml.safe_load((FOLDER / name).read_text())


def pod_spec() -> dict:
    return load("deployment.yaml")["spec"]["template"]["spec"]


def test_the_kustomization_lists_every_manifest_in_the_folder():
    listed = load("kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(path.name for path in FOLDER.glob("*.yaml") if path.name != "kustomization.yaml")


def test_the_image_is_pinned_to_the_locked_mlflow_version():
    [container] = pod_spec()["containers"]
    assert container["image"] == f"ghcr.io/mlflow/mlflow:v{mlflow.__version__}-full"


def test_the_server_runs_as_non_root_with_no_privileges():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    writable = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert writable == {"/mlflow", "/tmp"}


def test_volume_service_and_probes_fit_together():
    deployment = load("deployment.yaml")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate" and deployment["spec"]["replicas"] == 1
    claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {load("pvc.yaml")["metadata"]["name"]}

    service = load("service.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert "--port 5000" in container["args"][0] and port["port"] == 5000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_credentials_come_only_from_optional_secrets():
    [container] = pod_spec()["containers"]
    secret_refs = [item["valueFrom"]["secretKeyRef"] for item in container["env"] if "valueFrom" in item]
    assert {ref["name"] for ref in secret_refs} == {"mlflow-backend"}
    assert all(ref["optional"] is True for ref in secret_refs)
    assert [source["secretRef"] for source in container["envFrom"]] == [{"name": "mlflow-artifact-store", "optional": True}]
    plain = " ".join(str(item.get("value", "")) for item in container["env"]) + container["args"][0]
    assert "password" not in plain.lower() and "@" not in plain


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed; it builds the kustomization")
def test_kustomize_builds_three_objects_in_the_namespace():
    built = subprocess.run(["kubectl", "kustomize", str(FOLDER)], capture_output=True, text=True, check=True).stdout
    objects = list(yaml.safe_load_all(built))
    assert sorted(o["kind"] for o in objects) == ["Deployment", "PersistentVolumeClaim", "Service"]
    assert {o["metadata"]["namespace"] for o in objects} == {"kfp-mlops"}
