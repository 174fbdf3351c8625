"""ResourceProfile: GPU, CPU, memory, node selector, toleration and /dev/shm land in the compiled pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset

from components.train.component import train
from kfp_mlops.resources import ResourceProfile, Toleration

GPU_PROFILE = ResourceProfile(
    cpu_request="4",
    cpu_limit="8",
    memory_request="16Gi",
    memory_limit="32Gi",
    accelerator_type="nvidia.com/gpu",
    accelerator_count=2,
    shm_size="8Gi",
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
)


def compile_with(profile: ResourceProfile, path: Path) -> list[dict]:
    @dsl.pipeline(name="gpu-train")
    def pipeline():  # no return annotation: KFP reads it as the pipeline's outputs
        train_split = dsl.importer(artifact_uri="gs://bucket/train.parquet", artifact_class=Dataset)
        eval_split = dsl.importer(artifact_uri="gs://bucket/eval.parquet", artifact_class=Dataset)
        profile.apply(train(train_data=train_split.output, eval_data=eval_split.output))

    compiler.Compiler().compile(pipeline, str(path))
    return list(yaml.safe_load_all(path.read_text()))


def test_gpu_profile_is_in_the_compiled_pipeline(tmp_path: Path) -> None:
    pipeline_spec, platform_spec = compile_with(GPU_PROFILE, tmp_path / "pipeline.yaml")
    resources = pipeline_spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == ("4", "8")
    assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == ("16Gi", "32Gi")

    kubernetes = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert kubernetes["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert kubernetes["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert kubernetes["emptyDirMounts"] == [
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "8Gi"}
    ]


def test_cpu_profile_adds_no_accelerator_and_no_platform_spec(tmp_path: Path) -> None:
    documents = compile_with(ResourceProfile(cpu_request="2", memory_limit="8Gi"), tmp_path / "pipeline.yaml")
    assert len(documents) == 1  # nothing Kubernetes-specific
    resources = documents[0]["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert "accelerator" not in resources
    assert (resources["resourceCpuRequest"], resources["resourceMemoryLimit"]) == ("2", "8Gi")


def test_inconsistent_accelerator_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="accelerator_count is 1 but accelerator_type is not set"):
        ResourceProfile(accelerator_count=1)
    with pytest.raises(ValueError, match="accelerator_count must be 0 or more"):
        ResourceProfile(accelerator_type="nvidia.com/gpu", accelerator_count=-1)
