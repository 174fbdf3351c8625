"""Runs every test folder in the venv of the image its code runs in (``[tool.kfp_mlops.test-paths]``).

``python -m kfp_mlops.test_plan [IMAGE ...]``: one pytest session per environment, all of them run
even when one fails; the exit code is non-zero if any failed or collected no tests.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from kfp_mlops.envs import venv_python
from kfp_mlops.paths import PROJECT_ROOT

NO_TESTS_COLLECTED = 5


def test_paths() -> dict[str, list[str]]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return config["tool"]["kfp_mlops"]["test-paths"]


def main(selected: list[str], pytest_args: list[str]) -> int:
    failed = []
    for env, paths in test_paths().items():
        if selected and env not in selected:
            continue
        print(f"\n=== {env}: pytest {' '.join(paths)}", flush=True)
        code = subprocess.call([str(venv_python(env)), "-m", "pytest", *paths, *pytest_args], cwd=PROJECT_ROOT)
        if code != 0:
            failed.append(f"{env} (exit {code}{', no tests collected' if code == NO_TESTS_COLLECTED else ''})")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    sys.exit(main(names, [a for a in sys.argv[1:] if a.startswith("-")]))
