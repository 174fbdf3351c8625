"""Compute resources of a pipeline task: CPU, memory, GPUs, shared memory, node selection, tolerations.

A :class:`ResourceProfile` is applied to a task when the pipeline is authored::

    GPU_TRAINING = ResourceProfile(
        cpu_request="4", memory_request="16Gi", memory_limit="32Gi",
        accelerator_type="nvidia.com/gpu", accelerator_count=1, shm_size="8Gi",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
    )
    GPU_TRAINING.apply(train(...))

Requests and limits go into the task's container spec (KFP's ``set_*`` methods); the node selector,
tolerations and the ``/dev/shm`` volume go into the Kubernetes platform spec (kfp-kubernetes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kfp import kubernetes
from kfp.dsl import PipelineTask

SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration: lets the task run on nodes with a matching taint (e.g. GPU nodes)."""

    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = None
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class ResourceProfile:
    """What a task needs from the cluster. Unset fields leave the cluster's defaults.

    ``accelerator_type`` is the resource name of the accelerator (``"nvidia.com/gpu"``, or a KFP backend name
    such as ``"NVIDIA_TESLA_A100"``) and ``accelerator_count`` how many; the GPU model is chosen with
    ``node_selector``. ``shm_size`` mounts a memory-backed ``emptyDir`` of that size at ``/dev/shm``: PyTorch
    data loaders and NCCL need more shared memory than a container's default 64 MiB.
    """

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    accelerator_type: str | None = None
    accelerator_count: int = 0
    shm_size: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()

    def __post_init__(self) -> None:
        if self.accelerator_count < 0:
            raise ValueError(f"accelerator_count must be 0 or more, got {self.accelerator_count}")
        if self.accelerator_count and not self.accelerator_type:
            raise ValueError(f"accelerator_count is {self.accelerator_count} but accelerator_type is not set")

    def apply(self, task: PipelineTask) -> PipelineTask:
        """Set these resources on ``task`` (in place) and return it."""
        if self.cpu_request:
            task.set_cpu_request(self.cpu_request)
        if self.cpu_limit:
            task.set_cpu_limit(self.cpu_limit)
        if self.memory_request:
            task.set_memory_request(self.memory_request)
        if self.memory_limit:
            task.set_memory_limit(self.memory_limit)
        if self.accelerator_type:
            task.set_accelerator_type(self.accelerator_type)
            task.set_accelerator_limit(self.accelerator_count)
        for label, value in self.node_selector.items():
            kubernetes.add_node_selector(task, label_key=label, label_value=value)
        for toleration in self.tolerations:
            kubernetes.add_toleration(
                task,
                key=toleration.key,
                operator=toleration.operator,
                value=toleration.value,
                effect=toleration.effect,
                toleration_seconds=toleration.toleration_seconds,
            )
        if self.shm_size:
            kubernetes.empty_dir_mount(
                task, volume_name=SHM_VOLUME, mount_path=SHM_PATH, medium="Memory", size_limit=self.shm_size
            )
        return task
