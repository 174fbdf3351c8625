"""Registry commands: ``models list|show|promote|rollback|download``, ``lineage`` and ``ui``.

Run them in the train venv: ``python -m components.register.cli models list``. ``kfp-mlops`` registers the same
commands (:func:`add_commands`, through ``kfp_mlops.models_cli``) and forwards them here, because the authoring
environment has no MLflow. This module imports MLflow only inside the commands that need it, so the authoring
side can build the same parser. A forwarded command arrives as ``--args-json`` (the parsed arguments).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

from components.register.locations import embedded_artifact_root, embedded_tracking_uri, resolve_tracking_uri
from kfp_mlops.envs import venv_dir

Handler = Callable[[argparse.Namespace], None]


def cmd_list(args: argparse.Namespace) -> None:
    models = _registry(args).models()
    if args.json:
        _print_json([vars(model) for model in models])
        return
    if not models:
        print(f"no registered models at {_display_uri(args)}")
    for model in models:
        aliases = ", ".join(f"{alias}=v{version}" for alias, version in sorted(model.aliases.items())) or "-"
        print(f"{model.name:<32} latest v{model.latest_version or '-':<5} aliases: {aliases}")


def cmd_show(args: argparse.Namespace) -> None:
    registry = _registry(args)
    if args.version:
        info = registry.version(args.name, args.version)
        if args.json:
            _print_json({**vars(info), "model_uri": info.model_uri})
            return
        print(f"{info.model_uri}  run {info.run_id}  created {info.created}  aliases: {', '.join(info.aliases) or '-'}")
        for key, value in sorted(info.tags.items()):
            print(f"  {key:<28} {value}")
        return
    versions, history = registry.versions(args.name), registry.alias_history(args.name)
    if args.json:
        _print_json({"versions": [vars(v) for v in versions], "alias_history": [vars(e) for e in history]})
        return
    print(f"model {args.name}: {len(versions)} version(s)")
    for info in versions:
        tags = info.tags
        print(
            f"  v{info.version:<5} {info.created}  aliases: {', '.join(info.aliases) or '-':<20} "
            f"data {tags.get('data.sha256', '')[:12] or '-'}  kfp run {tags.get('kfp.run_id') or '-'}"
        )
    if history:
        print("alias history (oldest first):")
        for event in history:
            print(f"  {_event_line(event)}")


def cmd_promote(args: argparse.Namespace) -> None:
    from components.register.registry import default_actor

    event = _registry(args).set_alias(args.name, args.alias, args.version, reason=args.reason, actor=args.actor or default_actor())
    if event is None:
        print(f"{args.alias} of {args.name} already points at version {args.version}; nothing changed")
    else:
        print(_event_line(event))


def cmd_rollback(args: argparse.Namespace) -> None:
    event = _registry(args).rollback(args.name, args.alias, reason=args.reason, actor=args.actor)
    print(_event_line(event))


def cmd_download(args: argparse.Namespace) -> None:
    registry = _registry(args)
    version = _version(registry, args)
    path = registry.download(args.name, version, args.out)
    print(f"downloaded models:/{args.name}/{version} to {path} (verified against its sha256 manifest)")


def cmd_lineage(args: argparse.Namespace) -> None:
    from components.register.registry import RegistryError

    registry = _registry(args)
    if args.model_dir:
        matches = registry.find_by_content(args.model_dir)
        if not matches:
            raise RegistryError(f"no registered model version has exactly the files of {args.model_dir}")
        lineages = [registry.lineage(info.name, info.version) for info in matches]
    else:
        if not args.name:
            raise RegistryError("name a model (with --version or --alias) or pass --model-dir")
        lineages = [registry.lineage(args.name, _version(registry, args))]
    if args.json:
        _print_json(lineages if args.model_dir else lineages[0])
        return
    print("\n\n".join(format_lineage(lineage) for lineage in lineages))


def cmd_ui(args: argparse.Namespace) -> None:
    """Print how to open the MLflow UI; needs no MLflow here, so it runs in the authoring env too."""
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        print(f"The tracking server has its own UI: open {tracking_uri} in a browser.")
        print("In a cluster: kubectl -n kfp-mlops port-forward svc/mlflow 5000:5000, then open http://127.0.0.1:5000")
        return
    mlflow = venv_dir("train") / "bin" / "mlflow"
    command = [str(mlflow), "ui", "--backend-store-uri", tracking_uri, "--port", str(args.port)]
    if tracking_uri == embedded_tracking_uri():
        command += ["--default-artifact-root", embedded_artifact_root().as_uri()]
    print("Start the MLflow UI on the local registry with:")
    print(f"  {shlex.join(command)}")
    print(f"then open http://127.0.0.1:{args.port}")


def format_lineage(lineage: dict[str, Any]) -> str:
    model, run, data = lineage["model"], lineage["training_run"], lineage["data"]
    code, pipeline = lineage["code"], lineage["pipeline_run"]
    sources = data["source_uris"]
    more = int(data["source_count"] or len(sources)) - len(sources[:3])
    lines = [
        f"model version   {model['uri']}  aliases: {', '.join(model['aliases']) or '-'}  created {model['created']}",
        f"  files sha256  {model['sha256']}",
        f"training run    {run['run_id']}  ({run['run_name']}, experiment {run['experiment']}, {run['status']}, "
        f"{run['started']} → {run['ended']})",
        "  params        " + (", ".join(f"{k}={_short(v)}" for k, v in sorted(run["params"].items())) or "-"),
        "  metrics       " + (", ".join(f"{k}={v:.4g}" for k, v in sorted(run["metrics"].items())) or "-"),
        f"data version    sha256 {data['sha256'] or '-'} ({data['hash_of'] or 'unknown'})",
        f"  data_version  {data['data_version'] or '-'}   schema {data['schema_fingerprint'] or '-'}   rows {data['rows'] or '-'}",
        "  sources       " + (", ".join(sources[:3]) or "-") + (f" (+{more} more)" if more > 0 else ""),
        f"  artifact      {data['artifact_uri'] or '-'}",
        f"code            kfp-mlops {code['version'] or '-'}  git {code['git_commit'] or '-'}",
        "  images        " + (", ".join(f"{k}={v}" for k, v in sorted(code["images"].items())) or "-"),
        f"pipeline run    {pipeline['run_id'] or '-'}  task {pipeline['task_id'] or '-'}"
        + (f"  ({pipeline['run_name']})" if pipeline.get("run_name") else ""),
    ]
    lines += [f"  alias         {_event_line_from_dict(event)}" for event in lineage["alias_history"]]
    return "\n".join(lines)


def add_commands(subparsers, forward: Handler | None = None) -> None:
    """Add ``models``, ``lineage`` and ``ui`` to ``subparsers``. With ``forward``, every command that needs
    MLflow runs ``forward(args)`` instead of its handler (``ui`` always runs here)."""

    def leaf(parser_set, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = parser_set.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--tracking-uri", default="", help="default: $MLFLOW_TRACKING_URI, else the embedded store")
        parser.set_defaults(func=forward or handler, registry_command=handler.__name__)
        return parser

    models = subparsers.add_parser("models", help="the model registry (MLflow): list, show, promote, rollback, download")
    commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = leaf(commands, "list", cmd_list, "registered models with their latest version and aliases")
    p.add_argument("--json", action="store_true")

    p = leaf(commands, "show", cmd_show, "a model's versions and alias history, or one version's tags")
    p.add_argument("name")
    p.add_argument("--version", default="")
    p.add_argument("--json", action="store_true")

    p = leaf(commands, "promote", cmd_promote, "point an alias (default champion) at a version, recorded")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--alias", default="champion")
    p.add_argument("--reason", required=True, help="why: kept in the alias history")
    p.add_argument("--actor", default="", help="who (default $KFP_MLOPS_ACTOR, else user@host)")

    p = leaf(commands, "rollback", cmd_rollback, "move an alias (default champion) back to its previous version")
    p.add_argument("name")
    p.add_argument("--alias", default="champion")
    p.add_argument("--reason", default="rollback")
    p.add_argument("--actor", default="")

    p = leaf(commands, "download", cmd_download, "download a version's model directory, verified by sha256")
    p.add_argument("name")
    _add_version_choice(p)
    p.add_argument("--out", required=True, help="a new directory")

    p = leaf(subparsers, "lineage", cmd_lineage, "model version -> training run -> data version -> pipeline run")
    p.add_argument("name", nargs="?", default="")
    _add_version_choice(p)
    p.add_argument("--model-dir", default="", help="a local model directory: found by the sha256 of its files")
    p.add_argument("--json", action="store_true")

    p = subparsers.add_parser("ui", help="print how to open the MLflow UI on the local registry")
    p.add_argument("--tracking-uri", default="")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_ui, registry_command=cmd_ui.__name__)


HANDLERS: dict[str, Handler] = {
    handler.__name__: handler
    for handler in (cmd_list, cmd_show, cmd_promote, cmd_rollback, cmd_download, cmd_lineage, cmd_ui)
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--args-json"]:
        args = argparse.Namespace(**json.loads(argv[1]))
    else:
        parser = argparse.ArgumentParser(prog="python -m components.register.cli", description=__doc__)
        add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
        args = parser.parse_args(argv)
    errors: tuple[type[Exception], ...] = (ValueError, RuntimeError)  # RegistryError, ModelArtifactError
    if args.registry_command != cmd_ui.__name__:
        from mlflow.exceptions import MlflowException

        errors += (MlflowException,)
    try:
        HANDLERS[args.registry_command](args)
    except errors as error:
        label = " ".join(filter(None, [getattr(args, "command", ""), getattr(args, "models_command", "")]))
        print(f"kfp-mlops {label}: {error}", file=sys.stderr)
        return 1
    return 0


def _registry(args: argparse.Namespace):
    from components.register.registry import ModelRegistry

    return ModelRegistry(args.tracking_uri)


def _version(registry, args: argparse.Namespace) -> str:
    from components.register.registry import RegistryError

    if args.version:
        return args.version
    alias = args.alias or "champion"
    info = registry.get_alias(args.name, alias)
    if info is None:
        raise RegistryError(f"model {args.name!r} has no alias {alias!r}; pass --version")
    return info.version


def _add_version_choice(parser: argparse.ArgumentParser) -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--version", default="")
    choice.add_argument("--alias", default="", help="default champion, when no --version")


def _display_uri(args: argparse.Namespace) -> str:
    return resolve_tracking_uri(args.tracking_uri)


def _event_line(event) -> str:
    return _event_line_from_dict(vars(event))


def _event_line_from_dict(event: dict[str, Any]) -> str:
    if event["action"] == "declined":
        stays = f"stays v{event['previous_version']}" if event["previous_version"] else "stays unset"
        what = f"declined v{event['version']} ({stays})"
    elif event["previous_version"]:
        what = f"{event['action']} v{event['previous_version']} -> v{event['version']}"
    else:
        what = f"{event['action']} -> v{event['version']}"
    return f"{event['at']}  {event['alias']} {what}  by {event['actor']}: {event['reason']}"


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    sys.exit(main())
