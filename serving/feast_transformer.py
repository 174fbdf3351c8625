"""KServe transformer that adds Feast online features to each request before the predictor sees it.

A V1 request ``{"instances": [{"text": "...", "customer_id": 7}, ...]}`` becomes
``{"instances": [{"text": "...", "customer_id": 7, "tier": "gold", "tickets_30d": 3}, ...]}``: each instance
is an object holding the entity keys, and every feature ref (``feature_view:feature``) adds a field named
after the feature, read from the feature store's online store in one lookup per request. An entity the
store does not know gets ``null`` features. KServe's transformer machinery then forwards the enriched
request to ``--predictor_host`` (same model name) and returns the predictor's answer. Only the V1
protocol is enriched; a V2 request is refused with a 400.

    python -m serving.feast_transformer --model_name tickets --predictor_host tickets-predictor:80 \\
        --feature_store_path feature_repo --entity_key customer_id \\
        --feature_refs customer_stats:tier customer_stats:tickets_30d

Feature views of different entities are served together when every view's join keys are given: each
``--entity_key`` is a join key, read from the instance field of the same name, or ``join_key=field`` when
the instance names it otherwise (the tabular models' instances carry the queue as ``queue``)::

    python -m serving.feast_transformer --model_name task-priority --predictor_host task-priority-predictor:80 \\
        --feature_store_path feature_repo --entity_key queue_id=queue user_id \\
        --feature_refs queue_task_stats:queue_task_count user_task_stats:user_avg_duration_s

Bad input (not an object, a missing or mistyped entity key, a field that would be overwritten) raises
:class:`kserve.errors.InvalidInput`, answered with HTTP 400 naming the instance and the field.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import kserve
from feast import FeatureStore
from feast.errors import FeastError
from kserve import model_server
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

# JSON types accepted for an entity key of each Feast type (bool is an int in Python: refused separately).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "INT32": (int,),
    "INT64": (int,),
    "FLOAT32": (int, float),
    "FLOAT64": (int, float),
    "STRING": (str,),
    "BOOL": (bool,),
}


class FeatureConfigError(ValueError):
    """The feature store, a feature ref or an entity key does not exist or does not fit."""


class FeastTransformer(kserve.Model):
    """Enriches V1 instances with Feast online features; the predictor call is KServe's own.

    entity_keys: one ``join_key`` or ``join_key=instance_field`` per entity key (a single string: one key).
    """

    def __init__(
        self, name: str, feature_store_path: str, feature_refs: Sequence[str], entity_keys: str | Sequence[str]
    ):
        super().__init__(name)
        if not feature_refs:
            raise FeatureConfigError("give at least one feature ref (feature_view:feature)")
        self.feature_store_path = feature_store_path
        self.feature_refs = list(feature_refs)
        self.entity_fields = parse_entity_keys([entity_keys] if isinstance(entity_keys, str) else entity_keys)
        self.feature_names = [_feature_name(ref) for ref in self.feature_refs]
        duplicates = sorted({name for name in self.feature_names if self.feature_names.count(name) > 1})
        if duplicates:
            raise FeatureConfigError(f"feature refs {self.feature_refs} name the feature(s) {duplicates} twice")
        overwritten = sorted(set(self.feature_names) & set(self.entity_fields.values()))
        if overwritten:
            raise FeatureConfigError(f"feature(s) {overwritten} would overwrite the entity key field(s) so named")
        self._entity_types: dict[str, tuple[type, ...]] = {}

    def load(self) -> bool:
        try:
            self._store = FeatureStore(repo_path=self.feature_store_path)
        except (OSError, ValueError, FeastError) as error:
            raise FeatureConfigError(f"cannot open the feature store at {self.feature_store_path}: {error}") from error
        join_key_types: dict[str, str] = {}
        for ref in self.feature_refs:
            view_name, feature = ref.split(":", 1)
            try:
                view = self._store.get_feature_view(view_name)
            except FeastError as error:
                raise FeatureConfigError(f"feature ref {ref!r}: {error}") from error
            if feature not in [field.name for field in view.features]:
                raise FeatureConfigError(
                    f"feature ref {ref!r}: view {view_name!r} has no feature {feature!r}; "
                    f"it has {[field.name for field in view.features]}"
                )
            view_keys = {column.name: column.dtype.name for column in view.entity_columns}
            missing = sorted(set(view_keys) - set(self.entity_fields))
            if missing:
                raise FeatureConfigError(
                    f"feature view {view_name!r} needs join key(s) {missing}, which the entity keys "
                    f"{sorted(self.entity_fields)} do not give (its join keys: {sorted(view_keys)})"
                )
            join_key_types.update(view_keys)
        unused = sorted(set(self.entity_fields) - set(join_key_types))
        if unused:
            raise FeatureConfigError(
                f"entity key(s) {unused} are not join keys of any feature view of the refs "
                f"(their join keys: {sorted(join_key_types)})"
            )
        self._entity_types = {key: JSON_TYPES.get(type_name, (object,)) for key, type_name in join_key_types.items()}
        self.ready = True
        return self.ready

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict:
        if isinstance(payload, InferRequest):
            raise InvalidInput('the Feast transformer enriches V1 requests {"instances": [...]}; V2 is not supported')
        instances = self._instances(payload)
        entity_rows = [
            {join_key: instance[field] for join_key, field in self.entity_fields.items()} for instance in instances
        ]
        features = await asyncio.to_thread(self.online_features, entity_rows)
        enriched = [
            {**instance, **{name: features[name][index] for name in self.feature_names}}
            for index, instance in enumerate(instances)
        ]
        return {**payload, "instances": enriched}

    def online_features(self, entity_rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Feature name -> one value per entity row (``None`` where the store has none); blocking.

        One call for all views: Feast reads each view with its own join keys from rows that hold them all."""
        response = self._store.get_online_features(features=self.feature_refs, entity_rows=entity_rows)
        return response.to_dict()

    def _instances(self, payload: Any) -> list[dict]:
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('request body must be a JSON object {"instances": [{...}, ...]}')
        instances = payload["instances"]
        if not instances:
            raise InvalidInput("'instances' is empty")
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            if not isinstance(instance, dict):
                holding = ", ".join(repr(field) for field in self.entity_fields.values())
                raise InvalidInput(f"{where} must be an object holding {holding}, got {type(instance).__name__}")
            for join_key, field in self.entity_fields.items():
                self._check_entity_key(where, instance, join_key, field)
            clashes = sorted(set(instance) & set(self.feature_names))
            if clashes:
                raise InvalidInput(f"{where} already has field(s) {clashes}, which this transformer fills from Feast")
        return instances

    def _check_entity_key(self, where: str, instance: dict, join_key: str, field: str) -> None:
        named = "" if field == join_key else f" (join key {join_key!r})"
        if field not in instance:
            raise InvalidInput(f"{where} has no entity key {field!r}{named}; got fields {sorted(instance)}")
        key, expected_types = instance[field], self._entity_types[join_key]
        if not isinstance(key, expected_types) or (isinstance(key, bool) and bool not in expected_types):
            expected = " or ".join(kind.__name__ for kind in expected_types)
            raise InvalidInput(f"{where}.{field} must be {expected}{named}, got {key!r}")


def parse_entity_keys(specs: Sequence[str]) -> dict[str, str]:
    """``["queue_id=queue", "user_id"]`` -> ``{"queue_id": "queue", "user_id": "user_id"}`` (join key -> field)."""
    if not specs:
        raise FeatureConfigError("give at least one entity key (join_key or join_key=instance_field)")
    fields: dict[str, str] = {}
    for spec in specs:
        join_key, separator, field = spec.partition("=")
        field = field if separator else join_key
        if not join_key or not field or "=" in field:
            raise FeatureConfigError(f"entity key {spec!r} must look like join_key or join_key=instance_field")
        if join_key in fields:
            raise FeatureConfigError(f"entity keys {list(specs)} give the join key {join_key!r} twice")
        fields[join_key] = field
    return fields


def _feature_name(ref: str) -> str:
    view, separator, feature = ref.partition(":")
    if not (view and separator and feature):
        raise FeatureConfigError(f"feature ref {ref!r} must look like feature_view:feature")
    return feature


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="KServe transformer: add Feast online features to V1 instances, then call the predictor.",
        parents=[model_server.parser],
    )
    parser.add_argument("--feature_store_path", required=True, help="Feast repo directory (feature_store.yaml)")
    parser.add_argument("--feature_refs", nargs="+", required=True, help="feature_view:feature ...")
    parser.add_argument(
        "--entity_key",
        nargs="+",
        required=True,
        help="the join keys of the views, read from the instance field of the same name; "
        "join_key=instance_field where the instance names it otherwise (e.g. queue_id=queue user_id)",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if not args.predictor_host:
        sys.exit("serving.feast_transformer: --predictor_host is required (host:port of the predictor)")
    try:
        transformer = FeastTransformer(args.model_name, args.feature_store_path, args.feature_refs, args.entity_key)
        transformer.load()
    except FeatureConfigError as error:
        sys.exit(f"serving.feast_transformer: {error}")
    kserve.ModelServer().start([transformer])


if __name__ == "__main__":
    main()
