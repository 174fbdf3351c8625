"""With a Docker engine and the built images (`make images`), kfp.local's DockerRunner runs the same pipeline."""

import json
import subprocess

import pytest

from kfp_mlops import images, local_runner
from tests.test_local_runner import two_images


def docker_images_missing() -> str | None:
    """Why the Docker run cannot happen here, or None when it can."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "no docker client"
    if info.returncode != 0:
        return "no Docker engine reachable (docker info failed)"
    for name in ("data", "monitor"):
        if subprocess.run(["docker", "image", "inspect", images.image(name)], capture_output=True).returncode != 0:
            return f"image {images.image(name)} not built (make images)"
    return None


@pytest.mark.skipif(docker_images_missing() is not None, reason=f"DockerRunner check needs Docker: {docker_images_missing()}")
def test_docker_runner_runs_tasks_in_their_images(tmp_path):
    local_runner.init(pipeline_root=tmp_path, docker=True)
    result = json.loads(two_images().output)
    assert result["writer_numpy"].startswith("2.") and result["reader_numpy"].startswith("1.")
