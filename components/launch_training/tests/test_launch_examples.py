"""The committed manifests/training/ files are the builders' output, valid under the upstream schemas and API types."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from pydantic import ValidationError

from components.launch_training.examples import EXAMPLES_DIR, render_examples
from kfp_mlops.crd_schema import crd_validator, errors

RBAC_TYPES = {"ServiceAccount": client.V1ServiceAccount, "Role": client.V1Role, "RoleBinding": client.V1RoleBinding}
GENERATED_FILES = [
    "pytorchjob.yaml", "rbac-pytorchjob.yaml", "rbac-trainjob.yaml", "serviceaccount.yaml", "trainjob.yaml"
]


def test_the_committed_examples_are_the_builders_output():
    rendered = render_examples()
    assert sorted(rendered) == GENERATED_FILES
    assert sorted(path.name for path in EXAMPLES_DIR.glob("*.yaml")) == sorted([*GENERATED_FILES, "kustomization.yaml"])
    for name, text in rendered.items():
        assert (EXAMPLES_DIR / name).read_text() == text, (
            f"manifests/training/{name} is stale: run `.envs/tune/bin/python -m components.launch_training.examples`"
        )


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_the_example_job_is_valid_under_the_upstream_crd(kind, crds):
    crd, version = crds[kind]
    manifest = yaml.safe_load((EXAMPLES_DIR / f"{kind}.yaml").read_text())
    assert errors(crd_validator(crd, version), manifest) == []


@pytest.mark.parametrize("kind", ["trainjob", "pytorchjob"])
def test_the_rbac_is_valid_kubernetes_and_binds_the_role_to_the_launchers_account(kind):
    (account_doc,) = yaml.safe_load_all((EXAMPLES_DIR / "serviceaccount.yaml").read_text())
    documents = [account_doc, *yaml.safe_load_all((EXAMPLES_DIR / f"rbac-{kind}.yaml").read_text())]
    assert [doc["kind"] for doc in documents] == ["ServiceAccount", "Role", "RoleBinding"]
    # model_validate refuses unknown fields and missing required ones, as the API server's decoder would.
    account, role, binding = (RBAC_TYPES[doc["kind"]].model_validate(doc) for doc in documents)
    assert binding.role_ref.kind == "Role" and binding.role_ref.name == role.metadata.name
    assert [(s.kind, s.name) for s in binding.subjects] == [("ServiceAccount", account.metadata.name)]
    assert all("*" not in rule.verbs + rule.resources + rule.api_groups for rule in role.rules)
    # No namespace of their own: the kustomization (or an overlay) sets it, on the subject too.
    assert {account.metadata.namespace, role.metadata.namespace, binding.metadata.namespace} == {None}


def test_the_kustomization_sets_a_namespace_and_lists_the_account_and_a_role():
    kustomization = yaml.safe_load((EXAMPLES_DIR / "kustomization.yaml").read_text())
    assert kustomization["namespace"]
    resources = kustomization["resources"]
    assert "serviceaccount.yaml" in resources
    assert {"rbac-trainjob.yaml", "rbac-pytorchjob.yaml"} & set(resources)
    assert set(resources) <= set(GENERATED_FILES) - {"trainjob.yaml", "pytorchjob.yaml"}


def test_the_rbac_check_refuses_a_misspelt_field():
    role = next(yaml.safe_load_all((EXAMPLES_DIR / "rbac-trainjob.yaml").read_text()))
    role["rules"][0]["resource"] = role["rules"][0].pop("resources")
    with pytest.raises(ValidationError, match="rules.0.resource"):
        client.V1Role.model_validate(role)
