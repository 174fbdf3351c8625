"""``kfp-mlops models list|show|promote|rollback|download``, ``kfp-mlops lineage`` and ``kfp-mlops ui``.

The registry runs on MLflow, which only the train (and serve) environments hold, so these commands parse
their arguments here (the same parser as ``components/register/cli.py``) and run them in the train venv:
``.envs/train/bin/python -m components.register.cli --args-json '<parsed arguments>'``. ``ui`` only prints a
command, so it runs here. Call :func:`add_commands` with the ``kfp-mlops`` subparsers.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from kfp_mlops import envs
from kfp_mlops.paths import PROJECT_ROOT


def add_commands(subparsers) -> None:
    from components.register import cli

    cli.add_commands(subparsers, forward=run_in_train_env)


def run_in_train_env(args: argparse.Namespace) -> None:
    """Run the parsed command in the train venv; its exit status becomes this process's when it fails."""
    arguments = {key: value for key, value in vars(args).items() if key != "func"}
    command = [str(envs.venv_python("train")), "-m", "components.register.cli", "--args-json", json.dumps(arguments, default=str)]
    result = subprocess.run(command, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise SystemExit(result.returncode)
