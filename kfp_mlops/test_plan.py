"""Runs every test folder in the venv of the image its code runs in (``[tool.kfp_mlops.test-paths]``).

``python -m kfp_mlops.test_plan [IMAGE ...]``: one pytest session per environment, all of them run
even when one fails; the exit code is non-zero if any failed or collected no tests.

The sessions run in three lanes at once, because the local pipeline runs of the authoring env use
less than one core (kfp.local starts task processes one after another): the text pipelines' runs,
the rest of the authoring tests, and every other environment in turn. Each output line is prefixed
with its session's name.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import tomllib

from kfp_mlops.envs import venv_python
from kfp_mlops.paths import PROJECT_ROOT

NO_TESTS_COLLECTED = 5
AUTHORING = "authoring"
TEXT_PIPELINE_TESTS = ["tests/test_text_pipeline.py", "tests/test_continuous_training.py"]
"""Local runs of the text pipelines: about half the authoring env's test time, so a lane of their own."""


def test_paths() -> dict[str, list[str]]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return config["tool"]["kfp_mlops"]["test-paths"]


def run_session(name: str, env: str, args: list[str], output_lock: threading.Lock) -> int:
    """One pytest session in ``env``'s venv, its output printed line by line with the session's name."""
    with output_lock:
        print(f"[{name}] === pytest {' '.join(args)}", flush=True)
    process = subprocess.Popen(
        [str(venv_python(env)), "-m", "pytest", *args],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    )  # fmt: skip
    for line in process.stdout:
        with output_lock:
            print(f"[{name}] {line}", end="", flush=True)
    return process.wait()


def lanes(selected: list[str], pytest_args: list[str]) -> list[list[tuple[str, str, list[str]]]]:
    """Lanes of (session name, env, pytest arguments); the sessions of one lane run one after another."""
    sessions = {env: paths for env, paths in test_paths().items() if not selected or env in selected}
    planned: list[list[tuple[str, str, list[str]]]] = []
    if AUTHORING in sessions:
        rest = [*sessions[AUTHORING], *(f"--ignore={path}" for path in TEXT_PIPELINE_TESTS)]
        planned.append([("authoring:text-pipelines", AUTHORING, [*TEXT_PIPELINE_TESTS, *pytest_args])])
        planned.append([(AUTHORING, AUTHORING, [*rest, *pytest_args])])
    others = [(env, env, [*paths, *pytest_args]) for env, paths in sessions.items() if env != AUTHORING]
    return [lane for lane in [*planned, others] if lane]


def main(selected: list[str], pytest_args: list[str]) -> int:
    results: dict[str, int] = {}
    lock = threading.Lock()

    def run_lane(lane: list[tuple[str, str, list[str]]]) -> None:
        for name, env, args in lane:
            results[name] = run_session(name, env, args, lock)

    threads = [threading.Thread(target=run_lane, args=(lane,)) for lane in lanes(selected, pytest_args)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [
        f"{name} (exit {code}{', no tests collected' if code == NO_TESTS_COLLECTED else ''})"
        for name, code in results.items()
        if code != 0
    ]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    else:
        print(f"\nall {len(results)} sessions passed: {', '.join(results)}")
    return 1 if failed else 0


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    sys.exit(main(names, [a for a in sys.argv[1:] if a.startswith("-")]))
