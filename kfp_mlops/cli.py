"""The ``kfp-mlops`` command line: build local envs, list, compile, run locally, submit to a cluster."""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from kfp_mlops import envs, images, models_cli
from kfp_mlops.paths import COMPILED_DIR, LOCAL_DIR


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit code 1."""


def cmd_envs(args: argparse.Namespace) -> None:
    envs.build(args.names or None)


def cmd_list(args: argparse.Namespace) -> None:
    from kfp_mlops import catalog

    for name, pipeline in catalog.pipelines().items():
        print(f"pipeline   {name:<26} {catalog.description(pipeline)}")
    for name, component in catalog.components().items():
        image = images.image_name(component.component_spec.implementation.container.image)
        print(f"component  {name:<26} [{image}] {catalog.description(component)}")


def cmd_compile(args: argparse.Namespace) -> None:
    from kfp import compiler

    from kfp_mlops import catalog

    if not args.all and not args.pipelines:
        raise CommandError("name a pipeline or pass --all")
    names = list(catalog.pipelines()) if args.all else args.pipelines
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        pipeline = catalog.pipeline(name)
        path = args.output_dir / f"{name.replace('-', '_')}.yaml"
        compiler.Compiler().compile(pipeline, package_path=str(path))
        print(f"compiled {name} -> {path}")


def cmd_run(args: argparse.Namespace) -> None:
    from kfp_mlops import catalog, local_runner, params

    pipeline = catalog.pipeline(args.pipeline)
    arguments = _with_demo_data(pipeline, params.parse(pipeline, args.param))
    local_runner.init(args.pipeline_root, docker=args.docker)
    _run_locally(lambda: pipeline(**arguments), args)
    run_dir = local_runner.latest_run_dir(args.pipeline_root, pipeline.name)
    _print_outputs(run_dir)


def cmd_run_component(args: argparse.Namespace) -> None:
    from kfp_mlops import catalog, local_runner, params

    component = catalog.component(args.component)
    arguments = params.parse(component, args.param, allow_artifacts=True)
    local_runner.init(args.pipeline_root, docker=args.docker)
    runnable = local_runner.single_component_pipeline(component, arguments)
    _run_locally(runnable, args)
    _print_outputs(local_runner.latest_run_dir(args.pipeline_root, local_runner.single_run_name(component)))


def cmd_submit(args: argparse.Namespace) -> None:
    import kfp

    from kfp_mlops import catalog, params

    pipeline = catalog.pipeline(args.pipeline)
    arguments = params.parse(pipeline, args.param)
    _refuse_demo_data(pipeline, arguments)
    client = kfp.Client(host=args.host, namespace=args.namespace)
    run = client.create_run_from_pipeline_func(
        pipeline,
        arguments=arguments,
        experiment_name=args.experiment,
        run_name=f"{pipeline.name}-{datetime.now():%Y%m%d-%H%M%S}",
        namespace=args.namespace,
    )
    print(f"submitted {pipeline.name}: run {run.run_id}")
    print(f"  {args.host.rstrip('/')}/#/runs/details/{run.run_id}")


def cmd_schedule(args: argparse.Namespace) -> None:
    """Check everything that needs no connection (cron, limits, parameters), then create the recurring run."""
    import tempfile

    import kfp
    from kfp import compiler

    from kfp_mlops import catalog, params, schedules

    try:
        cron = schedules.check_cron(args.cron)
        max_concurrency = schedules.check_max_concurrency(args.max_concurrency)
    except schedules.ScheduleError as error:
        raise CommandError(str(error)) from None
    pipeline = catalog.pipeline(args.pipeline)
    arguments = params.parse(pipeline, args.param)
    with tempfile.TemporaryDirectory() as directory:
        package = str(Path(directory) / f"{args.pipeline.replace('-', '_')}.yaml")
        compiler.Compiler().compile(pipeline, package_path=package)
        client = kfp.Client(host=args.host, namespace=args.namespace)
        recurring = schedules.create_recurring_run(
            client, package, job_name=f"{pipeline.name}-{datetime.now():%Y%m%d-%H%M%S}", cron=cron,
            experiment=args.experiment, namespace=args.namespace, params=arguments,
            max_concurrency=max_concurrency, no_catchup=args.no_catchup,
        )  # fmt: skip
    print(f"scheduled {pipeline.name} ({cron!r}): recurring run {recurring.recurring_run_id}")
    print(f"  {args.host.rstrip('/')}/#/recurringrun/details/{recurring.recurring_run_id}")


def cmd_demo_data(args: argparse.Namespace) -> None:
    from kfp_mlops import demo_data

    path = demo_data.write(args.family, args.out, rows=args.rows, seed=args.seed, drift=args.drift)
    print(f"wrote {args.rows} {args.family} rows to {path}")


def cmd_serve(args: argparse.Namespace) -> None:
    """Replace this process with the KServe model server, running in the serve image's venv."""
    python = str(envs.venv_python("serve"))
    command = [python, "-m", "serving.server", "--model_dir", args.model, "--model_name", args.name, "--http_port", str(args.port)]
    print(f"serving {args.model} as {args.name!r} on http://127.0.0.1:{args.port} (V1 and V2 protocols)", flush=True)
    os.execv(python, command)


def _demo_parameters(pipeline, arguments: dict) -> tuple[dict, dict[str, str]]:
    from kfp_mlops import demo_data

    defaults = {name: spec.default for name, spec in (pipeline.component_spec.inputs or {}).items()}
    try:
        return defaults, demo_data.demo_parameters(defaults, arguments)
    except ValueError as error:
        raise CommandError(str(error)) from None


def _with_demo_data(pipeline, arguments: dict) -> dict:
    """Write the demo data sets that ``demo:<family>`` parameters (given or default) stand for; pass their paths."""
    from kfp_mlops import demo_data

    defaults, found = _demo_parameters(pipeline, arguments)
    resolved = demo_data.with_demo_data(defaults, arguments, LOCAL_DIR / "demo")
    for name, family in found.items():
        print(f"{name}: demo data set {family!r} written to {resolved[name]}", flush=True)
    return resolved


def _refuse_demo_data(pipeline, arguments: dict) -> None:
    _, found = _demo_parameters(pipeline, arguments)
    if found:
        names = ", ".join(f"{name} (demo:{family})" for name, family in found.items())
        raise CommandError(f"{names}: demo data exists only on this machine; pass --param {next(iter(found))}=gs://...")


def _run_locally(run, args: argparse.Namespace) -> None:
    from kfp_mlops import local_runner

    if args.docker:
        run()
        return
    try:
        with local_runner.image_venvs():
            run()
    except RuntimeError as error:
        raise CommandError(_failure_summary(str(error))) from None


def _failure_summary(message: str) -> str:
    """kfp.local's failure message, without its terminal colours, reduced to the failing task."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
    task = re.search(r"(?:Inner task failed|Task): '([^']+)'", plain)
    return f"task '{task.group(1)}' failed (its log is above)" if task else f"local run failed: {plain}"


def _print_outputs(run_dir: Path | None) -> None:
    from kfp_mlops import local_runner

    if run_dir is None:
        return
    print(f"\nOutputs under {run_dir}:")
    for task in local_runner.run_outputs(run_dir):
        print(f"  {task.task}")
        for name, artifact in task.artifacts.items():
            print(f"    {name:<22} {artifact['path']}")
            numbers = {k: v for k, v in artifact["metadata"].items() if isinstance(v, (int, float)) and k != "rows"}
            if name.endswith("metrics") and numbers:
                print("      " + "  ".join(f"{k}={v:.4g}" for k, v in numbers.items()))
        for name, value in task.parameters.items():
            print(f"    {name:<22} {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfp-mlops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("envs", help="build or refresh the local environments (one venv per image)")
    p.add_argument("names", nargs="*", help=f"environments to build (default all: {', '.join(envs.ENV_NAMES)})")
    p.set_defaults(func=cmd_envs)

    p = commands.add_parser("list", help="list pipelines and components, one line each")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("compile", help="compile pipelines to pipelines/compiled/<name>.yaml")
    p.add_argument("pipelines", nargs="*", help="pipeline names")
    p.add_argument("--all", action="store_true", help="compile every pipeline")
    p.add_argument("--registry", help=f"image registry prefix (default ${images.REGISTRY_ENV} or {images.DEFAULT_REGISTRY})")
    p.add_argument("--output-dir", type=Path, default=COMPILED_DIR)
    p.set_defaults(func=cmd_compile)

    for name, func, what in (
        ("run", cmd_run, "pipeline"),
        ("run-component", cmd_run_component, "component"),
    ):
        p = commands.add_parser(name, help=f"run a {what} locally with kfp.local, each task in its image's venv")
        p.add_argument(what, help=f"{what} name (see `kfp-mlops list`)")
        p.add_argument("--local", action="store_true", required=True, help="run on this machine (required)")
        p.add_argument("--docker", action="store_true", help="run tasks in the built images with Docker")
        p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="an input; artifacts take a local path or URI" if what == "component" else "a parameter")
        p.add_argument("--pipeline-root", type=Path, default=LOCAL_DIR / "runs", help="where outputs are written")
        p.set_defaults(func=func)

    p = commands.add_parser("submit", help="submit a pipeline run to Kubeflow Pipelines with kfp.Client")
    p.add_argument("pipeline")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--experiment", default="kfp-mlops")
    p.add_argument("--namespace", help="profile namespace on multi-user Kubeflow")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.set_defaults(func=cmd_submit)

    p = commands.add_parser("schedule", help="create a recurring run (cron) of a pipeline on Kubeflow Pipelines")
    p.add_argument("pipeline")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--cron", required=True,
                   help="KFP cron: 6 fields, seconds first (\"0 0 6 * * *\": 06:00 daily), or @daily, @every 6h, ...")
    p.add_argument("--experiment", default="kfp-mlops")
    p.add_argument("--namespace", help="profile namespace on multi-user Kubeflow")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule at once (1-10)")
    p.add_argument("--no-catchup", action="store_true", help="after a pause, run once instead of every missed time")
    p.set_defaults(func=cmd_schedule)

    p = commands.add_parser("serve", help="serve a trained model locally with the KServe model server")
    p.add_argument("--model", required=True, help="model directory written by train, train_tabular or train_anomaly")
    p.add_argument("--name", default="text-classifier", help="model name in the V1/V2 URLs")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_serve)

    models_cli.add_commands(commands)  # models list|show|promote|rollback|download, lineage, ui

    p = commands.add_parser("demo-data", help="write a seeded demo data set (no download needed)")
    p.add_argument("family", choices=["tickets", "tasks", "metrics"], help="which data set")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--rows", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drift", action="store_true",
                   help="shift the data: tickets' category mix and vocabulary, tasks' mix towards heavy work")
    p.set_defaults(func=cmd_demo_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "registry", None):
        os.environ[images.REGISTRY_ENV] = args.registry
    from kfp_mlops import catalog, params

    try:
        args.func(args)
    except (CommandError, params.ParamError, catalog.UnknownName, envs.LocalEnvError) as error:
        print(f"kfp-mlops {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
