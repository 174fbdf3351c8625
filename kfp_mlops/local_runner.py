"""Run pipelines and components on this machine with kfp.local, each task in the venv of its image.

kfp.local's SubprocessRunner runs every task with one interpreter. Our images cannot share one
environment, so :func:`image_venvs` swaps in a task handler that reads the task's image (which the
handler receives) and runs the task with ``.envs/<image>/bin/python`` instead. Everything else —
orchestration, artifact passing, placeholders, outputs — stays kfp.local's own.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from kfp import local
from kfp.local import status, subprocess_task_handler

from kfp_mlops.envs import venv_python
from kfp_mlops.images import image_name
from kfp_mlops.paths import LOCAL_DIR

PIPELINE_ROOT = LOCAL_DIR / "runs"


class ImageVenvTaskHandler(subprocess_task_handler.SubprocessTaskHandler):
    """A SubprocessTaskHandler that runs each task with the interpreter of its image's local venv."""

    def validate_image(self, image: str) -> None:
        if image_name(image) is None:
            raise RuntimeError(
                f"image {image!r} is not a kfp-mlops runtime image, so no local venv can run it; "
                "use kfp.local.DockerRunner for other images"
            )
        venv_python(image_name(image))  # fails early, with the fix, when the venv was never built

    def run(self) -> status.Status:
        command = with_interpreter(self.full_command, str(venv_python(image_name(self.image))))
        return_code = subprocess_task_handler.run_local_subprocess(command, env_vars=self.env_vars)
        return status.Status.SUCCESS if return_code == 0 else status.Status.FAILURE


EXECUTOR_START = "python3 -m kfp.dsl.executor_main"


def with_interpreter(full_command: list[str], python: str) -> list[str]:
    """``full_command`` with ``python`` starting KFP's executor.

    Only the executor's start is rewritten: kfp.local's own ``replace_python_executable`` replaces
    "python3" anywhere in the command, the task's inputs included, so an input path such as
    ``.envs/train/lib/python3.11/...`` would reach the task mangled.
    """
    return [part.replace(EXECUTOR_START, f"{python} -m kfp.dsl.executor_main") for part in full_command]


@contextlib.contextmanager
def image_venvs() -> Iterator[None]:
    """While active, kfp.local's SubprocessRunner runs each task in its image's venv."""
    original = subprocess_task_handler.SubprocessTaskHandler
    subprocess_task_handler.SubprocessTaskHandler = ImageVenvTaskHandler
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = original


def init(pipeline_root: Path = PIPELINE_ROOT, docker: bool = False) -> None:
    """Configure kfp.local: image venvs by default, or the built images with Docker.

    In Docker, tasks run as the calling user (not the images' own non-root user) so that the
    outputs they write under the mounted pipeline root stay writable and removable by that user.
    """
    pipeline_root = pipeline_root.resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    if docker:
        runner = local.DockerRunner(user=f"{os.getuid()}:{os.getgid()}", environment={"HOME": "/tmp"})
    else:
        runner = local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)


@dataclass
class TaskOutputs:
    """What one finished task left: its artifacts' paths and metadata, and its output parameters."""

    task: str
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


def run_outputs(run_dir: Path) -> list[TaskOutputs]:
    """Read the executor outputs that kfp.local wrote under one pipeline run's folder."""
    results = []
    for output_file in sorted(run_dir.glob("*/executor_output.json"), key=lambda p: p.stat().st_mtime):
        executor_output = json.loads(output_file.read_text())
        task = TaskOutputs(task=output_file.parent.name)
        for name, listing in executor_output.get("artifacts", {}).items():
            for artifact in listing.get("artifacts", []):
                task.artifacts[name] = {
                    "path": _local_path(artifact.get("uri", "")),
                    "metadata": artifact.get("metadata", {}),
                }
        task.parameters = executor_output.get("parameterValues", {})
        # Output parameters declared as OutputPath(str) stay files beside the artifacts.
        for path in output_file.parent.iterdir():
            if path.is_file() and path != output_file and path.name not in task.artifacts:
                task.parameters.setdefault(path.name, path.read_text())
        results.append(task)
    return results


def latest_run_dir(pipeline_root: Path, pipeline_name: str) -> Path | None:
    runs = sorted(pipeline_root.glob(f"{pipeline_name}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def _local_path(uri: str) -> str:
    return uri.removeprefix("file://") if uri.startswith("file://") else uri


def single_run_name(component: Any) -> str:
    return f"{component.name}-local"


def single_component_pipeline(component: Any, arguments: dict[str, Any]):
    """A one-task pipeline around ``component``; artifact inputs (paths or URIs) come in through importers."""
    from kfp import dsl

    from kfp_mlops.params import is_artifact

    specs = component.component_spec.inputs or {}
    artifact_uris = {name: value for name, value in arguments.items() if is_artifact(specs[name])}
    parameters = {name: value for name, value in arguments.items() if name not in artifact_uris}

    @dsl.pipeline(name=single_run_name(component))
    def single_component():
        imported = {
            name: dsl.importer(artifact_uri=uri, artifact_class=_ARTIFACT_CLASSES[specs[name].type.split("@")[0]]).output
            for name, uri in artifact_uris.items()
        }
        component(**parameters, **imported)

    return single_component


def _artifact_classes() -> dict[str, type]:
    from kfp import dsl

    kinds = (dsl.Artifact, dsl.Dataset, dsl.Model, dsl.Metrics, dsl.ClassificationMetrics, dsl.HTML, dsl.Markdown)
    return {kind.schema_title: kind for kind in kinds}


_ARTIFACT_CLASSES = _artifact_classes()
