"""KServe transformer that adds Feast online features to each request before the predictor sees it.

A V1 request ``{"instances": [{"text": "...", "customer_id": 7}, ...]}`` becomes
``{"instances": [{"text": "...", "customer_id": 7, "tier": "gold", "tickets_30d": 3}, ...]}``: each instance
is an object holding the entity key, and every feature ref (``feature_view:feature``) adds a field named
after the feature, read from the feature store's online store in one lookup per request. An entity the
store does not know gets ``null`` features. KServe's transformer machinery then forwards the enriched
request to ``--predictor_host`` (same model name) and returns the predictor's answer. Only the V1
protocol is enriched; a V2 request is refused with a 400.

    python -m serving.feast_transformer --model_name tickets --predictor_host tickets-predictor:80 \\
        --feature_store_path feature_repo --entity_key customer_id \\
        --feature_refs customer_stats:tier customer_stats:tickets_30d

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
    """The feature store, a feature ref or the entity key does not exist or does not fit."""


class FeastTransformer(kserve.Model):
    """Enriches V1 instances with Feast online features; the predictor call is KServe's own."""

    def __init__(self, name: str, feature_store_path: str, feature_refs: Sequence[str], entity_key: str):
        super().__init__(name)
        if not feature_refs:
            raise FeatureConfigError("give at least one feature ref (feature_view:feature)")
        self.feature_store_path = feature_store_path
        self.feature_refs = list(feature_refs)
        self.entity_key = entity_key
        self.feature_names = [_feature_name(ref) for ref in self.feature_refs]
        duplicates = sorted({name for name in self.feature_names if self.feature_names.count(name) > 1})
        if duplicates:
            raise FeatureConfigError(f"feature refs {self.feature_refs} name the feature(s) {duplicates} twice")
        self._entity_types: tuple[type, ...] = ()

    def load(self) -> bool:
        try:
            self._store = FeatureStore(repo_path=self.feature_store_path)
        except (OSError, ValueError, FeastError) as error:
            raise FeatureConfigError(f"cannot open the feature store at {self.feature_store_path}: {error}") from error
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
            join_keys = {column.name: column.dtype for column in view.entity_columns}
            if self.entity_key not in join_keys:
                raise FeatureConfigError(
                    f"entity key {self.entity_key!r} is not a join key of feature view {view_name!r} "
                    f"(its join keys: {sorted(join_keys)})"
                )
            self._entity_types = JSON_TYPES.get(join_keys[self.entity_key].name, (object,))
        self.ready = True
        return self.ready

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict:
        if isinstance(payload, InferRequest):
            raise InvalidInput('the Feast transformer enriches V1 requests {"instances": [...]}; V2 is not supported')
        instances = self._instances(payload)
        entity_rows = [{self.entity_key: instance[self.entity_key]} for instance in instances]
        features = await asyncio.to_thread(self.online_features, entity_rows)
        enriched = [
            {**instance, **{name: features[name][index] for name in self.feature_names}}
            for index, instance in enumerate(instances)
        ]
        return {**payload, "instances": enriched}

    def online_features(self, entity_rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Feature name -> one value per entity row (``None`` where the store has none); blocking."""
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
                kind = type(instance).__name__
                raise InvalidInput(f"{where} must be an object holding {self.entity_key!r}, got {kind}")
            if self.entity_key not in instance:
                raise InvalidInput(f"{where} has no entity key {self.entity_key!r}; got fields {sorted(instance)}")
            key = instance[self.entity_key]
            if not isinstance(key, self._entity_types) or (isinstance(key, bool) and bool not in self._entity_types):
                expected = " or ".join(kind.__name__ for kind in self._entity_types)
                raise InvalidInput(f"{where}.{self.entity_key} must be {expected}, got {key!r}")
            clashes = sorted(set(instance) & set(self.feature_names))
            if clashes:
                raise InvalidInput(f"{where} already has field(s) {clashes}, which this transformer fills from Feast")
        return instances


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
    parser.add_argument("--entity_key", required=True, help="the instance field holding the entity's join key")
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
