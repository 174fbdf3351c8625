"""Feast operations shared by the feature_apply, feature_materialize and training_set components and by
serving: open the store, apply the repo, materialize in resumable chunks, build a point-in-time training
set, read online features.

The feature repo is ``feature_repo/`` of the checkout unless ``KFP_MLOPS_FEATURE_REPO`` or an explicit
``repo_path`` names another. Every function raises :class:`FeatureStoreError` for bad input, with a
message that names the file, column, feature or view at fault.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource, Project, RepoConfig
from feast.errors import FeastError
from feast.feature_view import DUMMY_ENTITY
from feast.online_response import TIMESTAMP_POSTFIX
from feast.repo_contents import RepoContents
from feast.repo_operations import extract_objects_for_apply_delete, get_repo_files
from feast.types import Int32, Int64
from pydantic import ValidationError

REPO_ENV = "KFP_MLOPS_FEATURE_REPO"
STATE_ENV = "KFP_MLOPS_FEATURE_STATE"
# Read by feature_repo/feature_sources.py when the definitions are loaded.
SOURCES_ENV = "KFP_MLOPS_FEATURE_SOURCES"
DEFAULT_CONFIG_FILE = "feature_store.yaml"
REGISTRY_FILE = "registry.db"
ONLINE_STORE_FILE = "online_store.db"


class FeatureStoreError(ValueError):
    """Bad feature store input: a missing repo or column, an unknown feature reference, a bad time range."""


def default_repo_path() -> Path:
    """``$KFP_MLOPS_FEATURE_REPO``, else ``feature_repo/`` beside the ``components`` package."""
    return Path(os.environ.get(REPO_ENV) or Path(__file__).resolve().parents[2] / "feature_repo")


def open_store(
    repo_path: str | Path | None = None,
    *,
    state_dir: str | Path | None = None,
    config_file: str = DEFAULT_CONFIG_FILE,
) -> FeatureStore:
    """Opens the feature store of ``repo_path`` configured by ``config_file`` (relative to the repo).

    ``state_dir`` (default ``$KFP_MLOPS_FEATURE_STATE``, else the paths in the config file) moves the
    registry file and the SQLite online store of the local profile into that folder.
    """
    repo = Path(repo_path or default_repo_path()).resolve()
    config_path = repo / config_file
    if not config_path.is_file():
        raise FeatureStoreError(f"feature repo {repo} has no {config_file} (set {REPO_ENV} or pass repo_path)")
    raw = yaml.safe_load(os.path.expandvars(config_path.read_text()))
    if not isinstance(raw, dict):
        raise FeatureStoreError(f"{config_path} is not a Feast configuration (a YAML mapping)")
    state = state_dir or os.environ.get(STATE_ENV)
    if state:
        _move_local_state(raw, Path(state).resolve(), config_path)
    try:
        config = RepoConfig(**raw)
    except (ValidationError, FeastError) as error:
        raise FeatureStoreError(f"{config_path} is not a usable Feast configuration: {error}") from error
    config.repo_path = repo
    for local_file in _local_state_files(config):
        local_file.parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo), config=config)


def _move_local_state(raw: dict, state: Path, config_path: Path) -> None:
    online = raw.get("online_store") or {}
    if not isinstance(online, dict) or online.get("type", "sqlite") != "sqlite":
        raise FeatureStoreError(
            f"state_dir moves the SQLite online store and registry file of a local profile; {config_path} "
            f"configures online_store {online!r}"
        )
    registry = raw.get("registry")
    registry = dict(registry) if isinstance(registry, dict) else {"path": registry}
    registry["path"] = str(state / REGISTRY_FILE)
    raw["registry"] = registry
    raw["online_store"] = {**online, "path": str(state / ONLINE_STORE_FILE)}


def _local_state_files(config: RepoConfig) -> list[Path]:
    files = []
    registry_path = config.registry.path
    if config.registry.registry_type == "file" and "://" not in registry_path:
        files.append(config.repo_path / registry_path)
    if config.online_store.type == "sqlite":
        files.append(config.repo_path / config.online_store.path)
    return files


def load_definitions(repo_path: str | Path, sources: str | None = None) -> RepoContents:
    """Runs the repo's ``*.py`` files afresh (not through Python's module cache, so ``sources`` takes effect
    on every call) and collects their entities, feature views and feature services.

    ``sources`` sets ``$KFP_MLOPS_FEATURE_SOURCES`` while the files run: the folder or ``gs://`` prefix
    holding the views' Parquet files (relative paths resolve against the repo).
    """
    repo = Path(repo_path).resolve()
    found: dict[tuple[type, str], tuple[Any, Path]] = {}
    with _environment(SOURCES_ENV, sources), _on_sys_path(repo):
        for module_file in get_repo_files(repo):
            namespace = runpy.run_path(str(module_file), run_name=f"feature_repo_{module_file.stem}")
            for value in namespace.values():
                if isinstance(value, (Entity, FeatureView, FeatureService)):
                    key = (type(value), value.name)
                    if key in found and found[key][0] != value:
                        raise FeatureStoreError(
                            f"{type(value).__name__} {value.name!r} is defined differently in {found[key][1]} "
                            f"and {module_file}"
                        )
                    found.setdefault(key, (value, module_file))
    objects = [value for value, _ in found.values()]
    return RepoContents(
        projects=[],
        data_sources=[view.batch_source for view in objects if isinstance(view, FeatureView)],
        feature_views=[value for value in objects if isinstance(value, FeatureView)],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[value for value in objects if isinstance(value, Entity)],
        feature_services=[value for value in objects if isinstance(value, FeatureService)],
        permissions=[],
    )


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Sets the variable ``name`` to ``value`` (None: leaves it as it is) for the duration."""
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextlib.contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Lets repo files import each other (``from feature_sources import source_path``), as ``feast apply`` does."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def apply_repo(store: FeatureStore, sources: str | None = None) -> dict[str, Any]:
    """Registers the repo's definitions (``feast apply``): new and changed objects are applied, objects no
    longer defined are deleted with their online tables. Returns what the registry now holds."""
    repo = load_definitions(store.repo_path, sources)
    if not repo.feature_views:
        raise FeatureStoreError(f"feature repo {store.repo_path} defines no feature views")
    project = store.project
    # As `feast apply` does: the project and Feast's placeholder entity belong to the repo, or they'd be deleted.
    repo = repo._replace(projects=[Project(name=project)], entities=[*repo.entities, DUMMY_ENTITY])
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(project, store.registry, repo)
    try:
        store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    except FeastError as error:
        raise FeatureStoreError(f"applying {store.repo_path}: {error}") from error
    return {
        "project": project,
        "entities": sorted(entity.name for entity in repo.entities if entity is not DUMMY_ENTITY),
        "feature_views": {
            view.name: {
                "entities": list(view.entities),
                "features": [field.name for field in view.features],
                "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else 0,
                "source": view.batch_source.path,
            }
            for view in sorted(repo.feature_views, key=lambda view: view.name)
        },
        "feature_services": sorted(service.name for service in repo.feature_services),
        "deleted": sorted(f"{type(obj).__name__} {obj.name}" for obj in to_delete),
    }


@dataclass(frozen=True)
class Chunk:
    """One window of a chunked materialization: the views loaded and the views skipped as already done."""

    start: datetime
    end: datetime
    materialized: tuple[str, ...]
    skipped: tuple[str, ...]


def materialize_in_chunks(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    *,
    chunk_hours: float = 24,
    feature_views: Sequence[str] = (),
    resume: bool = True,
) -> list[Chunk]:
    """Loads ``[start, end]`` from the offline store into the online store in consecutive chunks of
    ``chunk_hours``, oldest first, each as one ``store.materialize`` call.

    With ``resume``, a chunk a view's registry already records as materialized (a finished chunk of an
    earlier, interrupted run) is skipped for that view. Chunks run oldest first because the SQLite online
    store keeps the last write, not the newest event: materializing an old range after a newer one would
    bring old values back, so backfill from the oldest range forward.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if start >= end:
        raise FeatureStoreError(f"materialize start {start.isoformat()} is not before end {end.isoformat()}")
    if chunk_hours <= 0:
        raise FeatureStoreError(f"chunk_hours must be positive, got {chunk_hours}")
    views = _views_to_materialize(store, feature_views)
    for view in views:
        _check_source(store, view)
    step = timedelta(hours=chunk_hours)
    chunks = []
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + step, end)
        done = {view.name for view in views if resume and _covered(view, chunk_start, chunk_end)}
        todo = sorted(view.name for view in views if view.name not in done)
        if todo:
            try:
                store.materialize(chunk_start, chunk_end, feature_views=todo)
            except (FeastError, OSError, pa.ArrowException) as error:
                raise FeatureStoreError(
                    f"materializing {', '.join(todo)} for {chunk_start.isoformat()} .. {chunk_end.isoformat()}: {error}"
                ) from error
        chunks.append(Chunk(chunk_start, chunk_end, tuple(todo), tuple(sorted(done))))
        chunk_start = chunk_end
    return chunks


def _views_to_materialize(store: FeatureStore, names: Sequence[str]) -> list[FeatureView]:
    online_views = {view.name: view for view in store.list_feature_views() if view.online}
    unknown = [name for name in names if name not in online_views]
    if unknown:
        raise FeatureStoreError(
            f"unknown or offline-only feature view(s) {', '.join(map(repr, unknown))}; "
            f"online views: {', '.join(sorted(online_views)) or 'none (apply the repo first)'}"
        )
    if not online_views:
        raise FeatureStoreError(f"project {store.project!r} has no online feature views: apply the repo first")
    return [online_views[name] for name in names] if names else list(online_views.values())


def _check_source(store: FeatureStore, view: FeatureView) -> None:
    """Fails with the path and the missing columns when a view's Parquet source lacks what the view reads."""
    path = FileSource.get_uri_for_file_path(store.repo_path, view.batch_source.path)
    try:
        columns = pyarrow.dataset.dataset(path, format="parquet").schema.names
    except (OSError, pa.ArrowException) as error:
        raise FeatureStoreError(f"cannot read the source of feature view {view.name!r} at {path}: {error}") from error
    needed = [column.name for column in view.entity_columns] + [view.batch_source.timestamp_field]
    missing = [name for name in needed + [field.name for field in view.features] if name not in columns]
    if missing:
        raise FeatureStoreError(
            f"the source of feature view {view.name!r} at {path} lacks column(s) {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(columns)}"
        )


def _covered(view: FeatureView, start: datetime, end: datetime) -> bool:
    """Whether the view's recorded materialization intervals, merged, contain ``[start, end]``."""
    reach = start
    for interval_start, interval_end in sorted(
        (_utc(a, "interval start"), _utc(b, "interval end")) for a, b in view.materialization_intervals
    ):
        if interval_start > reach:
            break
        reach = max(reach, interval_end)
    return reach >= end


def _utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise FeatureStoreError(f"{what} must be a datetime, got {moment!r}")
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def resolve_features(store: FeatureStore, features: Sequence[str]) -> list[str]:
    """Checks feature references against the registry and expands feature service names.

    Each entry is ``"view:feature"`` or the name of a feature service (which stands for its features).
    """
    return _resolve(store, features, _registered_views(store))


def _registered_views(store: FeatureStore) -> dict[str, FeatureView]:
    # list_feature_views reads the registry cache; get_feature_view costs milliseconds per call.
    return {view.name: view for view in store.list_feature_views(allow_cache=True)}


def _resolve(store: FeatureStore, features: Sequence[str], views: Mapping[str, FeatureView]) -> list[str]:
    if isinstance(features, str) or not features:
        raise FeatureStoreError(
            f"features must be a non-empty list of 'view:feature' references or service names, got {features!r}"
        )
    services = {
        service.name: service for service in store.registry.list_feature_services(store.project, allow_cache=True)
    }
    refs: list[str] = []
    for entry in features:
        if ":" not in entry:
            if entry not in services:
                raise FeatureStoreError(
                    f"{entry!r} is neither a 'view:feature' reference nor a feature service; "
                    f"services: {', '.join(sorted(services)) or 'none'}"
                )
            refs += [
                f"{projection.name_to_use()}:{field.name}"
                for projection in services[entry].feature_view_projections
                for field in projection.features
            ]
            continue
        view_name, _, feature_name = entry.partition(":")
        if view_name not in views:
            raise FeatureStoreError(
                f"unknown feature view {view_name!r} in feature reference {entry!r}; "
                f"views: {', '.join(sorted(views)) or 'none (apply the repo first)'}"
            )
        known = [field.name for field in views[view_name].features]
        if feature_name not in known:
            raise FeatureStoreError(
                f"unknown feature {feature_name!r} in feature reference {entry!r}; "
                f"view {view_name!r} has: {', '.join(known)}"
            )
        refs.append(entry)
    return list(dict.fromkeys(refs))


def _features_by_view(refs: Sequence[str]) -> dict[str, list[str]]:
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        view_name, _, feature_name = ref.partition(":")
        by_view.setdefault(view_name, []).append(feature_name)
    return by_view


def _join_keys(views: Sequence[FeatureView]) -> list[str]:
    """The entity columns the views are keyed by, in order of first use."""
    return list(dict.fromkeys(column.name for view in views for column in view.entity_columns))


def training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    features: Sequence[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """Point-in-time join (``get_historical_features``): for each row of ``entity_df`` (entity ids and the
    time of the event), each feature's latest value at or before that time and within its view's TTL, or
    null when there is none. Every row is kept, in order, with its other columns (labels pass through).

    Each view is joined on its own, over the distinct (entity, time) pairs, and merged back: Feast's file
    offline store drops an entity row whose entity has values but none inside the window (instead of
    giving nulls), and folds duplicate rows into one.
    """
    views = _registered_views(store)
    refs = _resolve(store, features, views)
    columns = [str(column) for column in entity_df.columns]
    if timestamp_column not in entity_df.columns:
        raise FeatureStoreError(
            f"entity dataframe has no timestamp column {timestamp_column!r}; columns: {', '.join(columns)}"
        )
    if entity_df.empty:
        raise FeatureStoreError("entity dataframe has no rows")
    by_view = _features_by_view(refs)
    keys = _join_keys([views[name] for name in by_view])
    missing_keys = [key for key in keys if key not in entity_df.columns]
    if missing_keys:
        raise FeatureStoreError(
            f"entity dataframe lacks the entity column(s) {', '.join(map(repr, missing_keys))} the requested "
            f"features are keyed by; columns: {', '.join(columns)}"
        )
    output_names = [
        f"{view}__{feature}" if full_feature_names else feature for view, names in by_view.items() for feature in names
    ]
    clashes = sorted({name for name in output_names if output_names.count(name) > 1 or name in columns})
    if clashes:
        raise FeatureStoreError(
            f"feature column name(s) {', '.join(map(repr, clashes))} repeat or clash with entity dataframe columns; "
            "use full_feature_names=True or rename the entity dataframe's columns"
        )
    entities = entity_df.reset_index(drop=True)
    for key in keys:
        empty = entities.index[entities[key].isna()]
        if len(empty):
            raise FeatureStoreError(f"entity column {key!r} is empty in {len(empty)} row(s), first at row {empty[0]}")
    try:
        times = pd.to_datetime(entities[timestamp_column], utc=True)
    except (ValueError, TypeError) as error:
        raise FeatureStoreError(
            f"timestamp column {timestamp_column!r} does not parse as timestamps: {error}"
        ) from error
    empty = entities.index[times.isna()]
    if len(empty):
        raise FeatureStoreError(
            f"timestamp column {timestamp_column!r} is empty in {len(empty)} row(s), first at row {empty[0]}"
        )
    entities[timestamp_column] = times.astype("datetime64[ns, UTC]")
    result = entities
    for view_name, feature_names in by_view.items():
        view = views[view_name]
        _check_source(store, view)
        view_keys = _join_keys([view])
        lookup = entities[view_keys + [timestamp_column]].drop_duplicates()
        lookup = lookup.rename(columns={timestamp_column: "event_timestamp"})
        try:
            joined = store.get_historical_features(
                entity_df=lookup,
                features=[f"{view_name}:{name}" for name in feature_names],
                full_feature_names=full_feature_names,
            ).to_df()
        except (FeastError, OSError, pa.ArrowException, ValueError) as error:  # ValueError: mismatched key types
            raise FeatureStoreError(f"point-in-time join of view {view_name!r} failed: {error}") from error
        joined["event_timestamp"] = joined["event_timestamp"].astype("datetime64[ns, UTC]")
        joined = joined.rename(columns={"event_timestamp": timestamp_column})
        feature_columns = [name for name in joined.columns if name not in view_keys and name != timestamp_column]
        integer_features = {field.name for field in view.features if field.dtype in (Int32, Int64)}
        integer_columns = [
            f"{view_name}__{name}" if full_feature_names else name for name in feature_names if name in integer_features
        ]
        result = result.merge(
            joined[view_keys + [timestamp_column] + feature_columns],
            on=view_keys + [timestamp_column],
            how="left",
            validate="many_to_one",
        )
        # Missing values turn integer columns into floats; keep them integers, with nulls.
        result = result.astype({column: "Int64" for column in integer_columns})
    return result


def online_features(
    store: FeatureStore,
    feature_refs: Sequence[str],
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> dict[str, list]:
    """The latest materialized values for ``entity_rows`` (e.g. ``[{"customer_id": "c1"}]``), as
    ``{column: [value per row]}``: the entity columns, then one list per feature.

    A value is ``None`` when the entity has none online, or when it is older than its view's TTL at
    ``now`` (default: the current time), as the training set treats it; Feast's online read itself
    ignores TTLs.
    """
    views = _registered_views(store)
    refs = _resolve(store, feature_refs, views)
    if not entity_rows:
        raise FeatureStoreError("entity_rows is empty: pass one mapping of entity columns per row")
    by_view = _features_by_view(refs)
    required = _join_keys([views[name] for name in by_view])
    for number, row in enumerate(entity_rows):
        missing = [key for key in required if key not in row]
        if missing:
            raise FeatureStoreError(f"entity row {number} lacks {', '.join(map(repr, missing))}; it has {sorted(row)}")
    try:
        response = store.get_online_features(features=refs, entity_rows=[dict(row) for row in entity_rows])
    except FeastError as error:
        raise FeatureStoreError(f"online feature read failed: {error}") from error
    values = response.to_dict(include_event_timestamps=True)
    now_seconds = _utc(now or datetime.now(timezone.utc), "now").timestamp()
    for view_name, feature_names in by_view.items():
        ttl = views[view_name].ttl
        if not ttl:
            continue
        for name in feature_names:
            values[name] = [
                None if stamp and now_seconds - stamp > ttl.total_seconds() else value
                for value, stamp in zip(values[name], values[f"{name}{TIMESTAMP_POSTFIX}"])
            ]
    return {name: column for name, column in values.items() if not name.endswith(TIMESTAMP_POSTFIX)}
