"""Every pipeline compiles to its committed golden YAML; every component follows the folder convention."""

import difflib

import pytest
import yaml
from kfp import compiler

from kfp_mlops import catalog, images, test_plan
from kfp_mlops.paths import COMPILED_DIR, PROJECT_ROOT

PIPELINES = sorted(catalog.pipelines())
COMPONENTS = sorted(catalog.components())


def test_the_catalog_finds_the_pipelines_and_components():
    assert "text_classification" in PIPELINES
    assert {"ingest", "validate", "train", "evaluate", "deploy"} <= set(COMPONENTS)


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_compiles_to_its_golden_yaml(name, tmp_path):
    compiled = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(catalog.pipeline(name), package_path=str(compiled))
    golden = COMPILED_DIR / f"{name}.yaml"
    assert golden.exists(), f"{golden} is missing: run `make compile` and commit it"
    diff = list(difflib.unified_diff(golden.read_text().splitlines(), compiled.read_text().splitlines(), lineterm=""))
    assert not diff, f"{golden} is stale (run `make compile`):\n" + "\n".join(diff[:40])


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_pipelines_use_only_project_images_at_the_project_tag(name):
    # The pipeline spec, then (with kfp-kubernetes settings) the platform spec: both must parse.
    spec, *platform = yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text())
    for executor in spec["deploymentSpec"]["executors"].values():
        if "importer" in executor:  # dsl.importer: the backend resolves a URI, no container runs
            continue
        reference = executor["container"]["image"]
        assert images.image_name(reference), reference
        assert reference.endswith(f":{images.image_tag()}"), reference
        assert "pip install" not in " ".join(executor["container"]["command"]), "images carry their packages"


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_folder_has_definition_logic_tests_and_readme(name):
    folder = PROJECT_ROOT / "components" / name
    assert (folder / "README.md").is_file()
    assert list((folder / "tests").glob("test_*.py")), f"{folder}/tests has no tests"
    logic_modules = [p for p in folder.glob("*.py") if p.name not in {"__init__.py", "component.py"}]
    assert logic_modules, f"{folder} keeps no logic beside component.py"


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_tests_run_in_the_venv_of_its_image(name):
    image = images.image_name(catalog.component(name).component_spec.implementation.container.image)
    assert f"components/{name}" in test_plan.test_paths()[image], (
        f"components/{name} runs in image {image!r}: list it under {image} in [tool.kfp_mlops.test-paths]"
    )


def test_registry_prefix_is_chosen_at_compile_time(monkeypatch):
    monkeypatch.setenv(images.REGISTRY_ENV, "registry.example.com/ml/")
    assert images.image("train") == f"registry.example.com/ml/kfp-mlops-train:{images.image_tag()}"
    assert images.image_name(images.image("train")) == "train"
