"""The model registry: MLflow experiment tracking and registered models, with recorded alias moves.

One class, :class:`ModelRegistry`, on top of ``mlflow.MlflowClient``:

- ``register`` logs one MLflow run per registration (parameters, metrics, the data, code and pipeline-run
  versions, and the model directory as artifacts with a sha256 manifest) and makes it a new version of a
  registered model, with the same facts as version tags.
- ``set_alias`` / ``rollback`` move aliases (``champion``, ``challenger``) and record every move as its own
  registered-model tag ``alias_log.<alias>.<time_ns>.<id>`` (a JSON event), so concurrent writers never
  overwrite each other's history and ``rollback`` can restore the version the alias held before.
  ``record_declined`` records, the same way, that a version was refused the alias (a gate that did not
  bless it, a deployment that failed and was rolled back) while the alias stayed where it was.
- ``lineage`` answers "where does this model come from": version → training run → data → pipeline run.

Tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else an embedded SQLite store under the project's
local state dir (``.local/mlflow/mlflow.db``, artifacts in ``.local/mlflow/artifacts``). Credentials for a
tracking server come only from the environment (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or
``MLFLOW_TRACKING_TOKEN``), which MLflow reads itself.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

import kfp_mlops
from kfp_mlops import images
from kfp_mlops.paths import PROJECT_ROOT

from components.register.locations import resolve_tracking_uri
from components.register.manifest import (
    MANIFEST_NAME,
    REGISTRY_FILE,
    ModelArtifactError,
    build_manifest,
    compare,
    read_manifest,
    verified_manifest,
    write_json_atomically,
)

MODEL_ARTIFACT_PATH = "model"
ALIAS_LOG_PREFIX = "alias_log."
GIT_COMMIT_ENV = "KFP_MLOPS_GIT_COMMIT"
ACTOR_ENV = "KFP_MLOPS_ACTOR"
# MLflow's own HTTP retries default to 7 with backoff factor 2 (minutes of waiting); bounded here unless set.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,255}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
_MAX_SOURCE_URIS_CHARS = 90_000  # under MLflow's 100,000-character limit on a model version tag
_MAX_REASON_CHARS = 1000  # an alias event is one registered-model tag, at most 5,000 characters


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked: unknown model, version or alias, no history."""


class RegistryUnavailableError(RegistryError):
    """The tracking server did not answer within the bounded retries."""


@dataclass(frozen=True)
class DataVersion:
    """Which data trained the model: ingest's metadata on the train split (see components/ingest/README.md)."""

    sha256: str = ""
    source_uris: tuple[str, ...] = ()
    schema_fingerprint: str = ""
    data_version: str = ""
    rows: int | None = None
    artifact_uri: str = ""
    hash_of: str = "ingest-content"
    """``ingest-content`` (ingest's content hash of the rows) or ``file-bytes`` (sha256 of the file itself)."""

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], artifact_uri: str = "") -> DataVersion:
        uris = metadata.get("source_uris") or ()
        rows = metadata.get("rows")
        return cls(
            sha256=str(metadata.get("sha256", "")),
            source_uris=tuple(str(uri) for uri in ([uris] if isinstance(uris, str) else uris)),
            schema_fingerprint=str(metadata.get("schema_fingerprint", "")),
            data_version=str(metadata.get("data_version", "")),
            rows=int(rows) if isinstance(rows, (int, float)) and not isinstance(rows, bool) else None,
            artifact_uri=artifact_uri,
        )

    def tags(self) -> dict[str, str]:
        uris = list(self.source_uris)
        while uris and len(json.dumps(uris)) > _MAX_SOURCE_URIS_CHARS:
            uris = uris[: len(uris) // 2]
        tags = {
            "data.sha256": self.sha256,
            "data.hash_of": self.hash_of if self.sha256 else "",
            "data.data_version": self.data_version,
            "data.schema_fingerprint": self.schema_fingerprint,
            "data.rows": "" if self.rows is None else str(self.rows),
            "data.source_uris": json.dumps(uris),
            "data.source_count": str(len(self.source_uris)),
            "data.artifact_uri": self.artifact_uri,
        }
        return {key: value for key, value in tags.items() if value}


@dataclass(frozen=True)
class CodeVersion:
    package_version: str
    git_commit: str
    images: dict[str, str]

    @classmethod
    def current(cls) -> CodeVersion:
        """This installation: ``kfp_mlops.__version__``, the git commit and the train and serve images."""
        return cls(kfp_mlops.__version__, git_commit(), {name: images.image(name) for name in ("train", "serve")})

    def tags(self) -> dict[str, str]:
        tags = {"code.version": self.package_version, "code.git_commit": self.git_commit}
        tags |= {f"image.{name}": reference for name, reference in self.images.items()}
        return {key: value for key, value in tags.items() if value}


@dataclass(frozen=True)
class PipelineRun:
    """The KFP run and task that registered the model: ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``,
    ``dsl.PIPELINE_TASK_ID_PLACEHOLDER`` and ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` (under kfp.local, the name of
    the run's folder in the pipeline root)."""

    run_id: str = ""
    task_id: str = ""
    run_name: str = ""

    def tags(self) -> dict[str, str]:
        tags = {"kfp.run_id": self.run_id, "kfp.task_id": self.task_id, "kfp.run_name": self.run_name}
        return {key: value for key, value in tags.items() if value}


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    run_id: str
    source: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created: str
    """UTC, ISO 8601."""

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: str
    aliases: dict[str, str]
    """alias → version"""


ALIAS_MOVES = ("set", "rollback")
"""Actions that move an alias; ``declined`` (the alias stays) is recorded beside them."""


@dataclass(frozen=True)
class AliasEvent:
    """One recorded alias event. ``action`` ``set`` or ``rollback``: the alias moved from ``previous_version``
    (None for a first set) to ``version``. ``declined``: ``version`` was refused the alias, which stays at
    ``previous_version`` (None when it points nowhere)."""

    alias: str
    action: str
    version: str
    previous_version: str | None
    reason: str
    actor: str
    at: str
    """UTC, ISO 8601."""


@dataclass(frozen=True)
class Registration:
    """What ``register`` recorded; ``version`` is the new model version."""

    version: ModelVersionInfo
    run_id: str
    experiment_id: str
    model_sha256: str
    alias_event: AliasEvent | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """The content of the run's ``registry.json``."""


def git_commit() -> str:
    """``$KFP_MLOPS_GIT_COMMIT`` (set in images at build time), else ``git rev-parse HEAD`` of a source checkout."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    if not (PROJECT_ROOT / ".git").exists():
        return ""
    try:
        result = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def default_actor() -> str:
    """Who moves an alias when no actor is given: ``$KFP_MLOPS_ACTOR``, else ``user@host``."""
    if os.environ.get(ACTOR_ENV):
        return os.environ[ACTOR_ENV]
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, e.g. an arbitrary container uid
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def check_model_name(name: str) -> None:
    if not _MODEL_NAME.match(name or ""):
        raise RegistryError(
            f"model name {name!r} is not allowed: use letters, digits, '_', '-', '.', spaces (no '/', ':' or quotes), "
            "starting with a letter or digit, at most 256 characters"
        )


def check_alias(alias: str) -> None:
    if not _ALIAS.match(alias or "") or alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise RegistryError(
            f"alias {alias!r} is not allowed: a letter, then letters, digits, '_' or '-' (not 'latest' or v<number>)"
        )


class ModelRegistry:
    """MLflow-backed model registry. Connection checks happen on first use, not on construction.

    ``artifact_root`` is where a SQLite store's experiments keep their artifacts (default: ``artifacts/`` beside
    the database). With a tracking server, the server decides. ``connect_attempts``, ``connect_timeout_s`` and
    ``retry_backoff_s`` bound the health probe of a tracking server (backoff doubles after each attempt).
    """

    def __init__(
        self,
        tracking_uri: str = "",
        *,
        artifact_root: str | Path | None = None,
        connect_attempts: int = 3,
        connect_timeout_s: float = 5.0,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self._scheme = urlparse(self.tracking_uri).scheme
        self._artifact_root = Path(artifact_root) if artifact_root else self._default_artifact_root()
        self._connect_attempts = max(1, connect_attempts)
        self._connect_timeout_s = connect_timeout_s
        self._retry_backoff_s = retry_backoff_s
        self._client_instance: MlflowClient | None = None
        if self._scheme in ("http", "https"):
            for name, value in MLFLOW_HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)

    # -- connection ----------------------------------------------------------------------------------------------

    @property
    def _client(self) -> MlflowClient:
        if self._client_instance is None:
            if self._scheme in ("http", "https"):
                self._wait_for_server()
            if self._scheme == "sqlite":
                # The first process to open a new database creates its tables; two at once would collide.
                with _file_lock(Path(self._sqlite_path() + ".lock")):
                    client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                    client.search_registered_models(max_results=1)
            else:
                client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            self._client_instance = client
        return self._client_instance

    def _wait_for_server(self) -> None:
        url = self.tracking_uri.rstrip("/") + "/health"
        last_problem = ""
        for attempt in range(1, self._connect_attempts + 1):
            try:
                response = requests.get(url, timeout=self._connect_timeout_s)
                if response.status_code < 500:
                    return
                last_problem = f"HTTP {response.status_code} from {url}"
            except requests.RequestException as error:
                last_problem = f"{type(error).__name__}: {error}"
            if attempt < self._connect_attempts:
                time.sleep(self._retry_backoff_s * 2 ** (attempt - 1))
        raise RegistryUnavailableError(
            f"MLflow tracking server {self.tracking_uri} is unreachable after {self._connect_attempts} attempts "
            f"(last: {last_problem}); check tracking_uri / MLFLOW_TRACKING_URI and that the server is running"
        )

    def _sqlite_path(self) -> str:
        return self.tracking_uri[len("sqlite:///"):]

    def _default_artifact_root(self) -> Path | None:
        if self._scheme == "sqlite":
            return Path(self._sqlite_path()).parent / "artifacts"
        return None

    # -- registration --------------------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_dir: str | Path,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step_metrics: Mapping[str, Sequence[float]] | None = None,
        data: DataVersion | None = None,
        pipeline_run: PipelineRun | None = None,
        code: CodeVersion | None = None,
        experiment: str = "",
        alias: str = "",
        actor: str = "",
        reason: str = "",
    ) -> Registration:
        """Log a training run for ``model_dir`` and register it as a new version of ``name``.

        The model directory is checked first (present, non-empty, matching its ``sha256_manifest.json`` when it
        carries one): a bad artifact fails before anything is written to the registry. ``step_metrics`` holds
        one value per step (step = index); ``metrics`` are the final values. With ``alias``, the new version
        takes that alias (recorded like any ``set_alias``). The run ends FAILED if a later step fails, and no
        version is created then.
        """
        check_model_name(name)
        if alias:
            check_alias(alias)
        manifest = verified_manifest(model_dir)
        final_metrics = _numeric_metrics(metrics or {}, step_metrics or {})
        data, pipeline_run = data or DataVersion(), pipeline_run or PipelineRun()
        code = code or CodeVersion.current()
        client = self._client
        experiment_id = self._experiment_id(experiment or name)
        lineage_tags = {
            **data.tags(),
            **code.tags(),
            **pipeline_run.tags(),
            "model.sha256": manifest["digest"],
            "model.artifact_path": MODEL_ARTIFACT_PATH,
            "model.name": name,
        }
        run_tags = {**lineage_tags, "mlflow.source.name": "kfp-mlops register", "mlflow.source.type": "JOB"}
        if code.git_commit:
            run_tags["mlflow.source.git.commit"] = code.git_commit
        run_name = f"{name}-{pipeline_run.run_id}" if pipeline_run.run_id else f"{name}-register"
        run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        run_id = run.info.run_id
        try:
            self._log_values(run_id, params or {}, final_metrics, step_metrics or {})
            if data.sha256:
                self._log_dataset(run_id, data)
            self._log_model_files(run_id, Path(model_dir), manifest)
            facts = {
                "model_name": name,
                "run_id": run_id,
                "experiment_id": experiment_id,
                "tracking_uri": _without_credentials(self.tracking_uri),
                "model_sha256": manifest["digest"],
                "data": asdict(data),
                "code": asdict(code),
                "pipeline_run": asdict(pipeline_run),
                "params": {key: _param_value(value) for key, value in (params or {}).items()},
                "metrics": final_metrics,
            }
            client.log_dict(run_id, facts, REGISTRY_FILE)
            self._ensure_registered_model(name)
            created = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}",
                run_id=run_id,
                tags=lineage_tags,
                description=reason or None,
            )
        except BaseException:
            with suppress(Exception):  # the error that stopped the registration is the one to report
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        version = str(created.version)
        event = None
        if alias:
            event = self.set_alias(
                name, alias, version, reason=reason or f"registered by run {run_id}", actor=actor or default_actor()
            )
        return Registration(self._version_info(name, version), run_id, experiment_id, manifest["digest"], event, facts)

    def _experiment_id(self, experiment: str) -> str:
        client = self._client
        existing = client.get_experiment_by_name(experiment)
        if existing is not None:
            return existing.experiment_id
        location = None
        if self._artifact_root is not None:
            location = (self._artifact_root / re.sub(r"[^\w.\-]", "_", experiment)).resolve().as_uri()
        try:
            return client.create_experiment(experiment, artifact_location=location)
        except MlflowException:
            existing = client.get_experiment_by_name(experiment)  # created by a concurrent registration
            if existing is None:
                raise
            return existing.experiment_id

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _log_values(
        self,
        run_id: str,
        params: Mapping[str, Any],
        final_metrics: Mapping[str, float],
        step_metrics: Mapping[str, Sequence[float]],
    ) -> None:
        now = int(time.time() * 1000)
        last_step = max((len(series) for series in step_metrics.values()), default=0)
        entries = [Param(_mlflow_key(key), _param_value(value)) for key, value in params.items()]
        for start in range(0, len(entries), 100):
            self._client.log_batch(run_id, params=entries[start : start + 100])
        series = [
            Metric(_mlflow_key(key), float(value), now, step)
            for key, values in step_metrics.items()
            for step, value in enumerate(values)
        ]
        series += [Metric(_mlflow_key(key), value, now, last_step) for key, value in final_metrics.items()]
        for start in range(0, len(series), 1000):
            self._client.log_batch(run_id, metrics=series[start : start + 1000])

    def _log_dataset(self, run_id: str, data: DataVersion) -> None:
        """Shows the training data in the MLflow UI's run page; the full facts are in the tags."""
        source = json.dumps({"uris": list(data.source_uris[:20]), "artifact_uri": data.artifact_uri})
        dataset = Dataset(name="train_data", digest=data.sha256[:36], source_type="kfp", source=source)
        self._client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])

    def _log_model_files(self, run_id: str, model_dir: Path, manifest: dict[str, Any]) -> None:
        """Upload the manifest's files (not a carried manifest or registry.json), then check what arrived."""
        for relative in manifest["files"]:
            parent = Path(relative).parent.as_posix()
            artifact_path = MODEL_ARTIFACT_PATH if parent == "." else f"{MODEL_ARTIFACT_PATH}/{parent}"
            self._client.log_artifact(run_id, str(model_dir / relative), artifact_path)
        with tempfile.TemporaryDirectory() as scratch:
            manifest_path = Path(scratch) / MANIFEST_NAME
            write_json_atomically(manifest_path, manifest)
            self._client.log_artifact(run_id, str(manifest_path), MODEL_ARTIFACT_PATH)
        stored = dict(self._artifact_sizes(run_id, MODEL_ARTIFACT_PATH))
        stored.pop(f"{MODEL_ARTIFACT_PATH}/{MANIFEST_NAME}", None)
        expected = {f"{MODEL_ARTIFACT_PATH}/{path}": entry["size"] for path, entry in manifest["files"].items()}
        if stored != expected:
            differences = sorted(
                f"{path}: {stored.get(path, 'missing')} bytes stored, {expected.get(path, 'none')} expected"
                for path in stored.keys() | expected.keys()
                if stored.get(path) != expected.get(path)
            )
            raise ModelArtifactError(f"the uploaded model of run {run_id} differs: " + "; ".join(differences))

    def _artifact_sizes(self, run_id: str, path: str) -> Iterator[tuple[str, int | None]]:
        for entry in self._client.list_artifacts(run_id, path):
            if entry.is_dir:
                yield from self._artifact_sizes(run_id, entry.path)
            else:
                yield entry.path, entry.file_size

    # -- reading -------------------------------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        summaries = []
        for model in _all_pages(self._client.search_registered_models):
            latest = max((int(v.version) for v in model.latest_versions or []), default=0)
            aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
            summaries.append(ModelSummary(model.name, str(latest) if latest else "", aliases))
        return sorted(summaries, key=lambda summary: summary.name)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of ``name``, oldest first."""
        aliases: dict[str, list[str]] = {}
        for alias, version in self._registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        found = _all_pages(self._client.search_model_versions, filter_string=f"name = '{name}'")
        infos = (replace(_info(v), aliases=tuple(sorted(aliases.get(str(v.version), [])))) for v in found)
        return sorted(infos, key=lambda info: int(info.version))  # a search does not fill in aliases

    def version(self, name: str, version: str) -> ModelVersionInfo:
        return self._version_info(name, version)

    def get_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` points at, or None when the alias is not set."""
        version = self._registered_model(name).aliases.get(alias)
        return None if version is None else self._version_info(name, str(version))

    def find_by_content(self, model_dir: str | Path) -> list[ModelVersionInfo]:
        """Registered versions whose files are exactly the files of ``model_dir`` (by manifest digest)."""
        digest = build_manifest(model_dir)["digest"]
        found = _all_pages(self._client.search_model_versions, filter_string=f"tags.`model.sha256` = '{digest}'")
        infos = [self._version_info(version.name, str(version.version)) for version in found]  # with their aliases
        return sorted(infos, key=lambda info: (info.name, int(info.version)))

    def lineage(self, name: str, version: str) -> dict[str, Any]:
        """Model version → training run → data version → pipeline run, as one JSON-ready dict."""
        info = self._version_info(name, version)
        tags = info.tags
        run = self._client.get_run(info.run_id)
        experiment = self._client.get_experiment(run.info.experiment_id)
        history = [asdict(e) for e in self.alias_history(name) if info.version in (e.version, e.previous_version)]
        return {
            "model": {
                "name": name,
                "version": info.version,
                "uri": info.model_uri,
                "aliases": list(info.aliases),
                "created": info.created,
                "source": info.source,
                "sha256": tags.get("model.sha256", ""),
            },
            "training_run": {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "experiment": experiment.name,
                "status": run.info.status,
                "started": _iso(run.info.start_time),
                "ended": _iso(run.info.end_time),
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
            },
            "data": {
                "sha256": tags.get("data.sha256", ""),
                "hash_of": tags.get("data.hash_of", ""),
                "data_version": tags.get("data.data_version", ""),
                "schema_fingerprint": tags.get("data.schema_fingerprint", ""),
                "rows": tags.get("data.rows", ""),
                "source_uris": json.loads(tags.get("data.source_uris", "[]")),
                "source_count": tags.get("data.source_count", ""),
                "artifact_uri": tags.get("data.artifact_uri", ""),
            },
            "code": {
                "version": tags.get("code.version", ""),
                "git_commit": tags.get("code.git_commit", ""),
                "images": {key[len("image."):]: value for key, value in tags.items() if key.startswith("image.")},
            },
            "pipeline_run": {
                "run_id": tags.get("kfp.run_id", ""),
                "task_id": tags.get("kfp.task_id", ""),
                "run_name": tags.get("kfp.run_name", ""),
            },
            "alias_history": history,
        }

    def download(self, name: str, version: str, destination: str | Path) -> Path:
        """Download a version's model directory to ``destination`` (which must not exist), verified file by file
        against its manifest, and write ``registry.json`` (name, version, run, model URI) beside the files."""
        destination = Path(destination)
        if destination.exists():
            raise RegistryError(f"{destination} already exists; download into a new directory")
        info = self._version_info(name, version)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent, prefix=f".{destination.name}.") as scratch:
            self._client.download_artifacts(info.run_id, MODEL_ARTIFACT_PATH, scratch)
            model_dir = Path(scratch) / MODEL_ARTIFACT_PATH
            manifest = read_manifest(model_dir / MANIFEST_NAME)
            compare(manifest, build_manifest(model_dir), f"downloaded {info.model_uri}")
            if manifest["digest"] != info.tags.get("model.sha256"):
                raise ModelArtifactError(f"{info.model_uri}: the stored manifest is not the one registered")
            record = {
                "model_name": name,
                "version": info.version,
                "model_uri": info.model_uri,
                "run_id": info.run_id,
                "tracking_uri": _without_credentials(self.tracking_uri),
                "model_sha256": manifest["digest"],
            }
            write_json_atomically(model_dir / REGISTRY_FILE, record)
            os.replace(model_dir, destination)
        return destination

    # -- aliases -------------------------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str, *, reason: str, actor: str) -> AliasEvent | None:
        """Point ``alias`` at ``version`` and record the move; None (nothing recorded) when it already points there."""
        check_alias(alias)
        version = self._version_info(name, str(version)).version
        previous = self._registered_model(name).aliases.get(alias)
        previous = None if previous is None else str(previous)
        if previous == version:
            return None
        self._client.set_registered_model_alias(name, alias, version)
        return self._record(name, AliasEvent(alias, "set", version, previous, reason, actor, _now()))

    def rollback(self, name: str, alias: str, *, reason: str = "", actor: str = "") -> AliasEvent:
        """Move ``alias`` back to the version it held before its current one, and record that."""
        check_alias(alias)
        current = self.get_alias(name, alias)
        held = _alias_stack(self.alias_history(name, alias))
        if current is None or not held:
            raise RegistryError(f"alias {alias!r} of model {name!r} has no recorded history to roll back")
        if held[-1] != current.version:
            raise RegistryError(
                f"alias {alias!r} of model {name!r} points at version {current.version}, but its recorded history "
                f"ends at version {held[-1]}: it was moved outside this registry; move it with set_alias (promote)"
            )
        if len(held) < 2:
            raise RegistryError(f"alias {alias!r} of model {name!r} has held only version {current.version}; nothing to roll back to")
        target = held[-2]
        self._version_info(name, target)
        self._client.set_registered_model_alias(name, alias, target)
        event = AliasEvent(alias, "rollback", target, current.version, reason or "rollback", actor or default_actor(), _now())
        return self._record(name, event)

    def record_declined(self, name: str, alias: str, version: str, *, reason: str, actor: str) -> AliasEvent:
        """Record that ``version`` was refused ``alias`` (not blessed, or its deployment failed); the alias stays."""
        check_alias(alias)
        version = self._version_info(name, str(version)).version
        current = self._registered_model(name).aliases.get(alias)
        previous = None if current is None else str(current)
        return self._record(name, AliasEvent(alias, "declined", version, previous, reason, actor, _now()))

    def alias_history(self, name: str, alias: str = "") -> list[AliasEvent]:
        """Recorded alias moves of ``name`` (one alias, or all), oldest first."""
        prefix = ALIAS_LOG_PREFIX + (f"{alias}." if alias else "")
        tags = self._registered_model(name).tags
        return [AliasEvent(**json.loads(tags[key])) for key in sorted(tags) if key.startswith(prefix)]

    def _record(self, name: str, event: AliasEvent) -> AliasEvent:
        event = AliasEvent(**{**asdict(event), "reason": event.reason[:_MAX_REASON_CHARS]})
        key = f"{ALIAS_LOG_PREFIX}{event.alias}.{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"
        self._client.set_registered_model_tag(name, key, json.dumps(asdict(event), sort_keys=True))
        return event

    # -- helpers -------------------------------------------------------------------------------------------------

    def _registered_model(self, name: str):
        check_model_name(name)
        try:
            return self._client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"no registered model named {name!r} at {_without_credentials(self.tracking_uri)}") from None
            raise

    def _version_info(self, name: str, version: str) -> ModelVersionInfo:
        check_model_name(name)
        if not str(version).isdigit():
            raise RegistryError(f"model version must be a number, got {version!r}")
        try:
            return _info(self._client.get_model_version(name, str(version)))
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        known = ", ".join(info.version for info in self.versions(name)) or "none"  # raises for an unknown model
        raise RegistryError(f"model {name!r} has no version {version} (versions: {known})")


def _alias_stack(events: list[AliasEvent]) -> list[str]:
    """The versions an alias held, oldest first, with rolled-back versions removed."""
    held: list[str] = []
    for event in (event for event in events if event.action in ALIAS_MOVES):
        if event.action == "rollback" and held and held[-1] == event.previous_version:
            held.pop()
        if not held or held[-1] != event.version:
            held.append(event.version)
    return held


def _numeric_metrics(metrics: Mapping[str, Any], step_metrics: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    bad = [key for key, value in metrics.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
    bad += [
        f"{key}[{step}]"
        for key, values in step_metrics.items()
        for step, value in enumerate(values)
        if isinstance(value, bool) or not isinstance(value, (int, float))
    ]
    if bad:
        raise ValueError(f"metrics must be numbers; not numeric: {', '.join(bad)}")
    return {key: float(value) for key, value in metrics.items()}


def _mlflow_key(name: str) -> str:
    """MLflow allows letters, digits, ``_ - . / : `` and spaces in names; anything else (e.g. evaluate's
    ``slice:channel=web:accuracy``) becomes ``_``."""
    return re.sub(r"[^\w.\-/: ]", "_", name)[:250]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > _MAX_PARAM_CHARS:
        marker = f"… ({len(text)} characters; the full value is in registry.json)"
        text = text[: _MAX_PARAM_CHARS - len(marker)] + marker
    return text


def _info(version) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        aliases=tuple(sorted(version.aliases or ())),
        tags=dict(version.tags or {}),
        created=_iso(version.creation_timestamp),
    )


def _all_pages(search, **kwargs) -> list:
    found, token = [], None
    while True:
        page = search(page_token=token, **kwargs)
        found += list(page)
        token = page.token
        if not token:
            return found


def _iso(milliseconds: int | None) -> str:
    if not milliseconds:
        return ""
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _now() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="seconds")


def _without_credentials(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password or parsed.username:
        return parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()
    return uri


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
