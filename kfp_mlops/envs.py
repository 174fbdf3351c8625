"""Local environments: one venv per runtime image, synced from the one uv lock.

``.envs/<image>`` holds exactly what the image's Dockerfile installs (``uv sync --frozen --extra <image>``)
plus the dev group (pytest and test servers) and any test group of its own, and kfp without its dependencies for the task runtime,
as the images have it. ``.envs/authoring`` is the host side: kfp, kfp-kubernetes and the CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from kfp_mlops.images import IMAGES
from kfp_mlops.paths import ENVS_DIR, PROJECT_ROOT

AUTHORING = "authoring"
ENV_NAMES = (AUTHORING, *IMAGES)
# Test and benchmark dependency groups that only some environments can hold (see pyproject.toml).
EXTRA_TEST_GROUPS = {"serve": ["serve-test"], "train": ["train-bench"]}


class LocalEnvError(RuntimeError):
    """A local environment is missing or could not be built."""


def venv_dir(name: str) -> Path:
    return ENVS_DIR / name


def venv_python(name: str) -> Path:
    """The interpreter of a local environment; raises with the fix when it was never built."""
    python = venv_dir(name) / "bin" / "python"
    if not python.exists():
        raise LocalEnvError(
            f"no local environment for image {name!r} at {venv_dir(name)}; build it with `kfp-mlops envs` "
            "(or `make envs`)"
        )
    return python


def find_uv() -> str:
    uv = shutil.which("uv") or str(ENVS_DIR / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        raise LocalEnvError("uv is not installed; `make envs` installs it, or `pip install uv`")
    return uv


def locked_version(package: str, lock_file: Path = PROJECT_ROOT / "uv.lock") -> str:
    """The single version of ``package`` in the lock."""
    lock = tomllib.loads(lock_file.read_text())
    versions = {p["version"] for p in lock["package"] if p["name"] == package}
    if len(versions) != 1:
        raise LocalEnvError(f"expected one locked version of {package}, found {sorted(versions) or 'none'}")
    return versions.pop()


def build(names: list[str] | None = None, *, log=print) -> None:
    """Create or refresh the named environments (all by default). Idempotent: an up-to-date env takes ~1 s."""
    uv = find_uv()
    kfp_requirement = f"kfp=={locked_version('kfp')}"
    for name in names or ENV_NAMES:
        if name not in ENV_NAMES:
            raise LocalEnvError(f"unknown environment {name!r}; known: {', '.join(ENV_NAMES)}")
        started = time.monotonic()
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv_dir(name))}
        env.pop("VIRTUAL_ENV", None)
        groups = [arg for group in EXTRA_TEST_GROUPS.get(name, []) for arg in ("--group", group)]
        _run([uv, "sync", "--frozen", "--quiet", "--extra", name, *groups], env=env, cwd=PROJECT_ROOT)
        if name != AUTHORING:
            # The KFP task runtime (kfp.dsl.executor_main under _KFP_RUNTIME=true) needs kfp's code only;
            # its dependencies (protobuf >= 6) would clash with this image's pins.
            _run([uv, "pip", "install", "--quiet", "--no-deps", "--python", str(venv_python(name)), kfp_requirement],
                 env=env, cwd=PROJECT_ROOT)
        log(f"env {name:<10} ready in {time.monotonic() - started:5.1f}s  ({venv_dir(name)})")


def _run(command: list[str], **kwargs) -> None:
    result = subprocess.run(command, **kwargs)
    if result.returncode != 0:
        raise LocalEnvError(f"`{' '.join(command)}` failed with exit code {result.returncode}")


if __name__ == "__main__":  # used by `make envs` before the CLI exists
    build(sys.argv[1:] or None)
