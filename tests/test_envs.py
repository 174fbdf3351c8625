"""Each local environment imports its image's key packages, at the versions uv.lock pins for that image."""

import json
import subprocess

import pytest

from kfp_mlops import envs
from kfp_mlops.paths import PROJECT_ROOT

# image -> {distribution: module to import}
KEY_PACKAGES = {
    "data": {"pyarrow": "pyarrow", "pandas": "pandas", "numpy": "numpy", "google-cloud-storage": "google.cloud.storage", "feast": "feast"},
    "validate": {"tensorflow-data-validation": "tensorflow_data_validation", "tensorflow": "tensorflow", "pandas": "pandas", "pyarrow": "pyarrow"},
    "train": {"torch": "torch", "transformers": "transformers", "scikit-learn": "sklearn", "xgboost": "xgboost", "optuna": "optuna"},
    "tune": {"kubeflow-katib": "kubeflow.katib", "protobuf": "google.protobuf"},
    "serve": {"kserve": "kserve", "torch": "torch", "transformers": "transformers", "feast": "feast"},
    "monitor": {"alibi-detect": "alibi_detect", "torch": "torch", "numpy": "numpy", "transformers": "transformers", "pyarrow": "pyarrow"},
}
PROBE = """
import importlib, importlib.metadata, json, sys
packages = json.loads(sys.argv[1])
for module in packages.values():
    importlib.import_module(module)
import kfp.dsl.executor_main  # the KFP task runtime, as the image runs it
print(json.dumps({d: importlib.metadata.version(d) for d in packages}))
"""


def locked_pins(extra: str) -> dict[str, str]:
    exported = subprocess.run(
        [envs.find_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--extra", extra],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout
    pins = {}
    for line in exported.splitlines():
        requirement = line.split(";")[0].strip()
        if "==" in requirement and not requirement.startswith("#"):
            name, version = requirement.split("==")
            pins[name.split("[")[0].lower()] = version.strip()
    return pins


def test_every_image_has_key_packages():
    assert set(KEY_PACKAGES) == set(envs.ENV_NAMES) - {envs.AUTHORING}


@pytest.mark.parametrize("image", sorted(KEY_PACKAGES))
def test_environment_imports_its_key_packages_at_locked_versions(image):
    packages = KEY_PACKAGES[image]
    probe = subprocess.run(
        [str(envs.venv_python(image)), "-c", PROBE, json.dumps(packages)],
        capture_output=True, text=True, env={"_KFP_RUNTIME": "true", "PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    installed = json.loads(probe.stdout.strip().splitlines()[-1])
    pins = locked_pins(image)
    for distribution, version in installed.items():
        assert pins[distribution] == version, f"{image}: {distribution} {version} installed, {pins[distribution]} locked"
