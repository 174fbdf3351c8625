"""manifests/: the kustomize base builds from files that exist, the RBAC is least privilege, and the example
InferenceService is exactly what the builder makes."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.deploy.inference_service import example_inference_service
from kfp_mlops import crd_schema
from kfp_mlops import images
from kfp_mlops.paths import PROJECT_ROOT

MANIFESTS = PROJECT_ROOT / "manifests"
SERVING = MANIFESTS / "serving"
EXAMPLE = SERVING / "inferenceservice-example.yaml"
REGENERATE = "python -m components.deploy.inference_service > manifests/serving/inferenceservice-example.yaml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def kustomization_files(folder: Path) -> list[Path]:
    """Every file a kustomization references, following folders to their own kustomization."""
    found = []
    for entry in load(folder / "kustomization.yaml")["resources"]:
        path = folder / entry
        assert path.exists(), f"{folder / 'kustomization.yaml'} lists {entry}, which does not exist"
        found += kustomization_files(path) if path.is_dir() else [path]
    return found


def test_the_kustomizations_reference_files_that_exist():
    assert "serving/" in load(MANIFESTS / "kustomization.yaml")["resources"]
    listed = sorted(p.name for p in kustomization_files(SERVING))
    assert listed == ["role.yaml", "rolebinding.yaml", "serviceaccount.yaml"]
    kustomization_files(MANIFESTS)  # every folder the base lists, and every file they list, exists


def test_every_serving_manifest_is_in_the_base_or_is_the_example():
    listed = set(kustomization_files(SERVING)) | {SERVING / "kustomization.yaml", EXAMPLE}
    assert set(SERVING.glob("*.yaml")) == listed


def test_the_role_is_least_privilege_on_inference_services_only():
    role = load(SERVING / "role.yaml")
    assert role["kind"] == "Role"  # namespaced, not a ClusterRole
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["serving.kserve.io"]
        assert rule["resources"] == ["inferenceservices"]
        assert set(rule["verbs"]) <= {"get", "list", "watch", "create", "patch", "delete"}
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    everything = yaml.safe_dump(role)
    assert "secrets" not in everything and "pods" not in everything


def test_the_role_binding_gives_the_role_to_the_deployer_service_account():
    account, binding, role = (load(SERVING / f) for f in ("serviceaccount.yaml", "rolebinding.yaml", "role.yaml"))
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["roleRef"] == role_ref
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (its built-in kustomize) on PATH")
def test_kustomize_builds_the_base_into_one_namespace():
    built = subprocess.run(["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True).stdout
    objects = list(yaml.safe_load_all(built))
    deployer = {obj["kind"]: obj for obj in objects if obj["metadata"]["name"] == "kfp-mlops-deployer"}
    assert set(deployer) == {"ServiceAccount", "Role", "RoleBinding"}
    assert {obj["metadata"]["namespace"] for obj in deployer.values()} == {"kfp-mlops"}
    assert deployer["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "kfp-mlops-deployer", "namespace": "kfp-mlops"}
    ]


def test_the_example_inference_service_is_the_builders_output(monkeypatch):
    monkeypatch.delenv(images.REGISTRY_ENV, raising=False)
    generated = subprocess.run(
        [sys.executable, "-m", "components.deploy.inference_service"],
        capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
    ).stdout  # fmt: skip
    assert EXAMPLE.read_text() == generated, f"{EXAMPLE} is stale: regenerate it with `{REGENERATE}`"
    assert load(EXAMPLE) == example_inference_service()


@pytest.mark.skipif(
    not (crd_schema.CRD_DIR / crd_schema.INFERENCE_SERVICE_CRD).exists(),
    reason=f"needs the KServe CRDs at {crd_schema.CRD_DIR} (present in CI)",
)
def test_the_example_inference_service_passes_the_crd():
    assert crd_schema.manifest_errors(load(EXAMPLE), crd_schema.INFERENCE_SERVICE_CRD, "v1beta1") == []
