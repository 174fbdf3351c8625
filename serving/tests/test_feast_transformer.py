"""The Feast transformer against a tiny Feast repo built here (SQLite online store, write_to_online_store)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import requests
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Int64, String
from kserve.context import set_predictor_config
from kserve.errors import InvalidInput
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest

from serving.feast_transformer import FeastTransformer, FeatureConfigError
from serving.process import ServerProcess
from serving.tests.conftest import MODEL

REFS = ["customer_stats:tier", "customer_stats:tickets_30d", "customer_profile:country"]


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Customers 1 and 2 in two feature views, materialized straight into the SQLite online store."""
    root = tmp_path_factory.mktemp("feature_repo")
    (root / "feature_store.yaml").write_text(
        f"project: serving_test\nregistry: {root / 'registry.db'}\nprovider: local\n"
        f"online_store:\n  type: sqlite\n  path: {root / 'online.db'}\nentity_key_serialization_version: 3\n"
    )
    now = datetime.now(timezone.utc)
    stats = pd.DataFrame({"customer_id": [1, 2], "tier": ["gold", "free"], "tickets_30d": [3, 0], "ts": [now, now]})
    profile = pd.DataFrame({"customer_id": [1, 2], "country": ["DE", "BR"], "ts": [now, now]})
    stats.to_parquet(root / "stats.parquet")
    profile.to_parquet(root / "profile.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    views = [
        FeatureView(
            name="customer_stats", entities=[customer], ttl=timedelta(days=1),
            schema=[Field(name="tier", dtype=String), Field(name="tickets_30d", dtype=Int64)],
            source=FileSource(path=str(root / "stats.parquet"), timestamp_field="ts"),
        ),
        FeatureView(
            name="customer_profile", entities=[customer], ttl=timedelta(days=1),
            schema=[Field(name="country", dtype=String)],
            source=FileSource(path=str(root / "profile.parquet"), timestamp_field="ts"),
        ),
    ]  # fmt: skip
    store = FeatureStore(repo_path=str(root))
    store.apply([customer, *views])
    store.write_to_online_store("customer_stats", stats)
    store.write_to_online_store("customer_profile", profile)
    return root


@pytest.fixture(scope="module")
def transformer(feature_repo: Path) -> FeastTransformer:
    model = FeastTransformer(MODEL, str(feature_repo), REFS, "customer_id")
    assert model.load()
    return model


def test_instances_get_their_customers_features(transformer: FeastTransformer) -> None:
    payload = {
        "instances": [
            {"text": "my card was declined", "customer_id": 2},
            {"text": "where is my card", "customer_id": 1, "channel": "chat"},
            {"text": "who am i", "customer_id": 99},
        ]
    }
    enriched = asyncio.run(transformer.preprocess(payload))
    assert enriched["instances"] == [
        {"text": "my card was declined", "customer_id": 2, "tier": "free", "tickets_30d": 0, "country": "BR"},
        {"text": "where is my card", "customer_id": 1, "channel": "chat",
         "tier": "gold", "tickets_30d": 3, "country": "DE"},
        {"text": "who am i", "customer_id": 99, "tier": None, "tickets_30d": None, "country": None},
    ]
    assert payload["instances"][0] == {"text": "my card was declined", "customer_id": 2}  # the request is not mutated


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"inputs": []}, 'must be a JSON object {"instances"'),
        ({"instances": []}, "'instances' is empty"),
        ({"instances": ["just text"]}, "instances[0] must be an object holding 'customer_id', got str"),
        ({"instances": [{"customer_id": 1}, {"text": "x"}]}, "instances[1] has no entity key 'customer_id'"),
        ({"instances": [{"customer_id": "7"}]}, "instances[0].customer_id must be int, got '7'"),
        ({"instances": [{"customer_id": True}]}, "instances[0].customer_id must be int, got True"),
        ({"instances": [{"customer_id": 1, "tier": "platinum"}]}, "instances[0] already has field(s) ['tier']"),
    ],
)
def test_bad_requests_are_invalid_input_naming_the_instance(
    transformer: FeastTransformer, payload: dict, problem: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        asyncio.run(transformer.preprocess(payload))
    assert problem in str(error.value)


def test_v2_requests_are_refused(transformer: FeastTransformer) -> None:
    request = InferRequest(MODEL, infer_inputs=[InferInput("text", [1], "BYTES", ["x"])])
    with pytest.raises(InvalidInput, match="enriches V1 requests"):
        asyncio.run(transformer.preprocess(request))


@pytest.mark.parametrize(
    ("refs", "entity_key", "problem"),
    [
        (["customer_stats:tier"], "account_id", "'account_id' is not a join key of feature view 'customer_stats'"),
        (["nope:tier"], "customer_id", "feature ref 'nope:tier': Feature view nope does not exist"),
        (["customer_stats:colour"], "customer_id", "view 'customer_stats' has no feature 'colour'"),
    ],
)
def test_configuration_that_does_not_fit_the_repo_fails_at_load(
    feature_repo: Path, refs: list, entity_key: str, problem: str
) -> None:
    with pytest.raises(FeatureConfigError, match=problem.replace("(", r"\(")):
        FeastTransformer(MODEL, str(feature_repo), refs, entity_key).load()


def test_malformed_configuration_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FeatureConfigError, match="'tier' must look like feature_view:feature"):
        FeastTransformer(MODEL, str(tmp_path), ["tier"], "customer_id")
    with pytest.raises(FeatureConfigError, match=r"name the feature\(s\) \['tier'\] twice"):
        FeastTransformer(MODEL, str(tmp_path), ["a:tier", "b:tier"], "customer_id")
    with pytest.raises(FeatureConfigError, match=f"cannot open the feature store at {tmp_path}"):
        FeastTransformer(MODEL, str(tmp_path), ["a:tier"], "customer_id").load()


def test_transformer_forwards_enriched_requests_to_the_predictor(server: ServerProcess, feature_repo: Path) -> None:
    """KServe's transformer path (preprocess, then its HTTP call to --predictor_host) against the text server.

    In-process: a ``python -m serving.feast_transformer`` process spends most of a minute importing Feast on
    this shared 2-CPU machine; the command line adds only KServe's own argument parsing and server.
    """
    transformer = FeastTransformer(MODEL, str(feature_repo), REFS, "customer_id")
    transformer.load()
    instances = [{"text": "my card payment was declined twice", "customer_id": 1},
                 {"text": "i lost my card", "customer_id": 5}]  # fmt: skip

    async def through_transformer() -> tuple[dict, dict]:
        set_predictor_config(PredictorConfig(predictor_host=server.url.removeprefix("http://")))
        response, _ = await transformer({"instances": instances}, headers={})
        return response

    via_transformer = asyncio.run(through_transformer())
    direct = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=30)
    assert via_transformer == direct.json()
