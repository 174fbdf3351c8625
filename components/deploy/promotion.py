"""Move the registry's ``champion`` alias with a deployment: only once the new model serves, never before.

Before anything is deployed, the registry is asked for the version (so an unreachable tracking server or an
unknown version fails the task with nothing changed). A deployment that fails — a local server that does not
start, a KServe rollout that is rolled back or deleted — leaves ``champion`` where it was and records a
``declined`` event with the cause; a deployment that succeeds moves ``champion`` to the version, recorded with
who (the KFP run and task) and why (the gate's reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from components.deploy.local import DeployOutputs
from components.deploy.smoke import DeployError

CHAMPION_ALIAS = "champion"
_MAX_CAUSE_CHARS = 400
Deployed = TypeVar("Deployed")


@dataclass(frozen=True)
class Promotion:
    model_name: str
    version: str
    tracking_uri: str = ""
    reason: str = ""
    """Why the version is deployed, e.g. the gate's ``blessed: ...`` reason."""
    actor: str = ""
    target: str = "local"


def deploy_and_promote(deploy: Callable[[], Deployed], promotion: Promotion | None) -> Deployed:
    """Run ``deploy``; with a ``promotion``, check the version first, then move ``champion`` to it when the
    deployment succeeded, or record the version as declined when it failed (and re-raise)."""
    if promotion is None:
        return deploy()
    from components.register.registry import ModelRegistry, default_actor

    registry = ModelRegistry(promotion.tracking_uri)
    actor = promotion.actor or default_actor()
    registry.version(promotion.model_name, promotion.version)  # reachable, and the version exists
    try:
        deployed = deploy()
    except DeployError as error:
        cause = str(error).strip()
        if len(cause) > _MAX_CAUSE_CHARS:
            cause = cause[:_MAX_CAUSE_CHARS] + "…"
        try:
            registry.record_declined(
                promotion.model_name, CHAMPION_ALIAS, promotion.version,
                reason=f"deployment ({promotion.target}) failed, champion unchanged: {cause}", actor=actor,
            )  # fmt: skip
        except Exception as record_error:  # the failed deployment is the error to report
            error.add_note(f"recording the failed deployment in the registry failed too: {record_error}")
        raise
    try:
        registry.set_alias(
            promotion.model_name, CHAMPION_ALIAS, promotion.version, reason=promotion_reason(promotion),
            actor=actor,
        )  # fmt: skip
    except Exception as error:
        raise DeployError(
            f"version {promotion.version} of {promotion.model_name} is deployed ({promotion.target}), but moving the "
            f"champion alias to it failed: {error}; move it with `kfp-mlops models promote {promotion.model_name} "
            f"{promotion.version} --reason ...`"
        ) from error
    return deployed


def promotion_reason(promotion: Promotion) -> str:
    gate = promotion.reason.strip()
    if gate.startswith("blessed: "):
        return f"deployed ({promotion.target}), blessed by gate: {gate.removeprefix('blessed: ')}"
    return f"deployed ({promotion.target})" + (f": {gate}" if gate else "")


def deploy_model(
    target: str,
    model_path: str,
    model_uri: str,
    report_path: str,
    model_name: str,
    smoke_input: str,
    *,
    kserve_settings: Mapping[str, Any],
    registry_model_name: str = "",
    model_version: str = "",
    tracking_uri: str = "",
    promotion_reason: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
) -> DeployOutputs:
    """The deploy component's logic: check the settings, deploy to ``target`` (``local``: ``model_path``;
    ``kserve``: ``model_uri`` with ``kserve_settings``) and, with a registered version, move ``champion``."""
    from components.register.locations import check_task_tracking_uri

    if target not in ("local", "kserve"):
        raise ValueError(f"target {target!r} is not 'local' or 'kserve'")
    check_task_tracking_uri(tracking_uri)
    if bool(registry_model_name) != bool(model_version):
        raise ValueError("give registry_model_name and model_version together (or neither, to deploy unregistered)")
    promotion = None
    if registry_model_name:
        from components.register.register import kfp_actor

        actor = kfp_actor(kfp_run_id, kfp_task_id)
        promotion = Promotion(registry_model_name, model_version, tracking_uri, promotion_reason, actor, target)

    def roll_out() -> DeployOutputs:
        if target == "local":
            from components.deploy.local import deploy_locally

            return deploy_locally(model_path, report_path, model_name, smoke_input)
        from components.deploy.kserve_client import deploy_with_kserve

        version = {"registered_model": registry_model_name, "model_version": model_version}
        return deploy_with_kserve(report_path, model_uri, model_name, smoke_input, **kserve_settings, **version)

    return deploy_and_promote(roll_out, promotion)
