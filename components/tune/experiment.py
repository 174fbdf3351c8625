"""A Katib Experiment (``kubeflow.org/v1beta1``) for a search space: each trial is a ``batch/v1`` Job that runs
the space's trainer (text or tabular) of the ``train`` image. Pure Python: it builds plain dicts, so both
images can import it.

Each trial runs ``python -m components.train.text_trainer --config '<JSON>'`` (or
``components.train_tabular.tabular_trainer``). The JSON holds the data paths, the settings every trial
shares, and one ``${trialParameters.NAME}`` placeholder per tuned field, which Katib replaces with the
trial's value (bare for numbers, inside quotes for strings). The trainer prints ``name=value`` lines
(every epoch for text, once for tabular), which Katib's StdOut metrics collector reads.

Write an Experiment as YAML (this is how ``manifests/katib/experiment-text.yaml`` is made)::

    python -m components.tune.experiment --search-space components/tune/example_search_space.json \\
        --name text-classifier-tune --train-path gs://BUCKET/train.parquet --eval-path gs://BUCKET/eval.parquet
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.tune.search_space import TRAINERS, SearchSpace, check_trainer_fit, parse_search_space
from kfp_mlops.images import image

TRIAL_CONTAINER = "training"
TRIAL_MODEL_DIR = "/tmp/trial/model"  # scratch: a trial's weights are not kept, only its metrics
# Katib's own defaults for a batch/v1 Job (experiment_defaults.go), written out so the manifest says it.
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
# Algorithms whose Katib suggestion service takes a random_state setting.
SEEDED_ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization")
_YAML_1_2_NUMBER = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


@dataclass(frozen=True)
class TrialSettings:
    """Where the data is, what every trial shares, and what each trial Job asks of the cluster."""

    train_path: str
    eval_path: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    """TrainConfig fields every trial uses (``base_model``, ``epochs``, ...); tuned parameters override them."""
    image: str = ""
    """The ``train`` image; empty means ``image("train")`` of this process's registry."""
    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = 0
    service_account: str = ""


def trial_config(space: SearchSpace, trial: TrialSettings) -> str:
    """The trainer's ``--config`` JSON, with a ``${trialParameters.NAME}`` placeholder for each tuned field."""
    check_trainer_fit(space, trial.settings)
    fields: dict[str, str] = {
        "train_path": json.dumps(trial.train_path),
        "eval_path": json.dumps(trial.eval_path),
        "model_dir": json.dumps(TRIAL_MODEL_DIR),
    }
    tuned = {parameter.name for parameter in space.parameters}
    settings = dict(trial.settings)
    if "num_threads" not in settings and trial.cpu.isdigit():
        settings["num_threads"] = int(trial.cpu)  # torch would otherwise start a thread per core of the node
    fields.update((name, json.dumps(value)) for name, value in settings.items() if name not in tuned)
    for parameter in space.parameters:
        placeholder = f"${{trialParameters.{parameter.name}}}"
        fields[parameter.name] = json.dumps(placeholder) if parameter.trainer_type == "str" else placeholder
    return "{" + ", ".join(f"{json.dumps(name)}: {value}" for name, value in fields.items()) + "}"


def build_experiment(
    space: SearchSpace,
    name: str,
    trial: TrialSettings,
    *,
    namespace: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The Experiment as a dict; ``seed`` becomes the algorithm's ``random_state`` unless the space sets one."""
    spec = space.to_katib_spec()
    if (
        seed is not None
        and space.algorithm.name in SEEDED_ALGORITHMS
        and space.algorithm.setting("random_state") is None
    ):
        spec["algorithm"].setdefault("algorithmSettings", []).append({"name": "random_state", "value": str(seed)})
    spec["metricsCollectorSpec"] = {"collector": {"kind": "StdOut"}}
    spec["trialTemplate"] = {
        "primaryContainerName": TRIAL_CONTAINER,
        "successCondition": JOB_SUCCESS_CONDITION,
        "failureCondition": JOB_FAILURE_CONDITION,
        "trialParameters": [
            {"name": p.name, "reference": p.name, "description": _describe(space, p.name, p.trainer_type)}
            for p in space.parameters
        ],
        "trialSpec": _trial_job(space, trial),
    }
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "kfp-mlops"}
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": metadata, "spec": spec}


def _describe(space: SearchSpace, name: str, kind: str) -> str:
    field = f"TrainConfig.{name}" if space.trainer == "text" else f"{space.trainer} hyperparameter {name}"
    return f"{field} ({kind})"


def _trial_job(space: SearchSpace, trial: TrialSettings) -> dict[str, Any]:
    limits: dict[str, Any] = {"memory": trial.memory}
    if trial.gpus:
        limits["nvidia.com/gpu"] = trial.gpus
    container = {
        "name": TRIAL_CONTAINER,
        "image": trial.image or image("train"),
        "command": ["python", "-m", TRAINERS[space.trainer].module, "--config", trial_config(space, trial)],
        "resources": {"requests": {"cpu": trial.cpu, "memory": trial.memory}, "limits": limits},
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if trial.service_account:
        pod_spec["serviceAccountName"] = trial.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,  # a trial that fails is a failed trial, not one to retry with the same values
            "template": {
                # An Istio sidecar would keep the pod, and so the Job, running after training ends.
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": pod_spec,
            },
        },
    }


def to_yaml(document: Mapping[str, Any]) -> str:
    """YAML that kubectl reads back unchanged: strings that YAML 1.2 would take for numbers are quoted.

    PyYAML follows YAML 1.1, so it leaves ``1e-5`` bare, which Kubernetes' YAML 1.2 parser reads as a
    float, and Katib's string-typed ``feasibleSpace.min`` would then be refused.
    """
    import yaml  # the tune image has PyYAML (kubernetes needs it); only the YAML output uses it

    class Dumper(yaml.SafeDumper):
        def represent_str(self, data: str) -> yaml.ScalarNode:
            style = "'" if _YAML_1_2_NUMBER.fullmatch(data) else None
            return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, Dumper.represent_str)
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, width=1 << 16)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a Katib Experiment for a search space as YAML.")
    parser.add_argument("--search-space", required=True, help="a JSON file in Katib's vocabulary")
    parser.add_argument("--name", required=True, help="the Experiment's name")
    parser.add_argument("--train-path", required=True, help="train Parquet, as the trial pods read it")
    parser.add_argument("--eval-path", required=True, help="eval Parquet, as the trial pods read it")
    parser.add_argument("--trainer", choices=list(TRAINERS), default="text", help="the trainer the trials run")
    parser.add_argument("--settings", default="{}", help="JSON object of trainer fields every trial uses")
    parser.add_argument("--seed", type=int, default=42, help="the algorithm's random_state")
    parser.add_argument("--out", help="the YAML file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        space = parse_search_space(Path(args.search_space).read_text(), args.trainer)
        trial = TrialSettings(args.train_path, args.eval_path, json.loads(args.settings))
        experiment = build_experiment(space, args.name, trial, seed=args.seed)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "-m", "components.tune.experiment", *(argv if argv is not None else sys.argv[1:])])
    text = f"# Generated by `{command}`; do not edit.\n" + to_yaml(experiment)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
