"""The Feast transformer against tiny Feast repos built here (SQLite online store, write_to_online_store).

One repo has a single entity (customers, for the text model); the other mirrors feature_repo/tabular_features.py:
queue and user views, each with its own entity, which the tabular task models read together.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import requests
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String
from kserve.context import set_predictor_config
from kserve.errors import InvalidInput
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest
from kserve.utils.inference_client_factory import InferenceClientFactory

from components.train_tabular.tabular_trainer import train_tabular_model
from kfp_mlops import demo_tasks
from serving.feast_transformer import FeastTransformer, FeatureConfigError, parse_args
from serving.process import ServerProcess
from serving.tests import tabular_models
from serving.tests.conftest import MODEL

REFS = ["customer_stats:tier", "customer_stats:tickets_30d", "customer_profile:country"]
TASK_REFS = ["queue_task_stats:queue_task_count", "queue_task_stats:queue_failure_rate",
             "user_task_stats:user_avg_duration_s"]  # fmt: skip
# the tabular models' instances carry the queue as "queue" and the user as "user_id"
TASK_ENTITY_KEYS = ["queue_id=queue", "user_id"]
# online history per queue and per user (demo users are u00..u39); u39 has none
QUEUE_STATS = {queue: (10 * (rank + 1), 0.01 * (rank + 1)) for rank, queue in enumerate(demo_tasks.QUEUES)}
USER_AVG_DURATION_S = {f"u{user:02d}": 100.0 + 25.0 * user for user in range(demo_tasks.USERS - 1)}


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
def task_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Queue and user history in two views with different entities, as feature_repo/tabular_features.py has."""
    root = tmp_path_factory.mktemp("task_repo")
    (root / "feature_store.yaml").write_text(
        f"project: serving_tasks\nregistry: {root / 'registry.db'}\nprovider: local\n"
        f"online_store:\n  type: sqlite\n  path: {root / 'online.db'}\nentity_key_serialization_version: 3\n"
    )
    now = datetime.now(timezone.utc)
    queues = pd.DataFrame({
        "queue_id": list(QUEUE_STATS), "queue_task_count": [count for count, _ in QUEUE_STATS.values()],
        "queue_failure_rate": [rate for _, rate in QUEUE_STATS.values()], "event_timestamp": now,
    })
    users = pd.DataFrame({
        "user_id": list(USER_AVG_DURATION_S), "user_avg_duration_s": list(USER_AVG_DURATION_S.values()),
        "event_timestamp": now,
    })
    queues.to_parquet(root / "queues.parquet")
    users.to_parquet(root / "users.parquet")
    queue = Entity(name="queue", join_keys=["queue_id"], value_type=ValueType.STRING)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    views = [
        FeatureView(
            name="queue_task_stats", entities=[queue], ttl=timedelta(days=3),
            schema=[Field(name="queue_id", dtype=String), Field(name="queue_task_count", dtype=Int64),
                    Field(name="queue_failure_rate", dtype=Float64)],
            source=FileSource(path=str(root / "queues.parquet"), timestamp_field="event_timestamp"),
        ),
        FeatureView(
            name="user_task_stats", entities=[user], ttl=timedelta(days=3),
            schema=[Field(name="user_id", dtype=String), Field(name="user_avg_duration_s", dtype=Float64)],
            source=FileSource(path=str(root / "users.parquet"), timestamp_field="event_timestamp"),
        ),
    ]  # fmt: skip
    store = FeatureStore(repo_path=str(root))
    store.apply([queue, user, *views])
    store.write_to_online_store("queue_task_stats", queues)
    store.write_to_online_store("user_task_stats", users)
    return root


@pytest.fixture(scope="module")
def task_transformer(task_repo: Path) -> FeastTransformer:
    model = FeastTransformer("task-priority", str(task_repo), TASK_REFS, TASK_ENTITY_KEYS)
    assert model.load()
    return model


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
        (["customer_stats:tier"], "account_id",
         "feature view 'customer_stats' needs join key(s) ['customer_id'], which the entity keys ['account_id']"),
        (["customer_stats:tier"], ["customer_id", "account_id"],
         "entity key(s) ['account_id'] are not join keys of any feature view of the refs"),
        (["nope:tier"], "customer_id", "feature ref 'nope:tier': Feature view nope does not exist"),
        (["customer_stats:colour"], "customer_id", "view 'customer_stats' has no feature 'colour'"),
    ],
)  # fmt: skip
def test_configuration_that_does_not_fit_the_repo_fails_at_load(
    feature_repo: Path, refs: list, entity_key: str | list, problem: str
) -> None:
    with pytest.raises(FeatureConfigError, match=re.escape(problem)):
        FeastTransformer(MODEL, str(feature_repo), refs, entity_key).load()


def test_malformed_configuration_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FeatureConfigError, match="'tier' must look like feature_view:feature"):
        FeastTransformer(MODEL, str(tmp_path), ["tier"], "customer_id")
    with pytest.raises(FeatureConfigError, match=r"name the feature\(s\) \['tier'\] twice"):
        FeastTransformer(MODEL, str(tmp_path), ["a:tier", "b:tier"], "customer_id")
    with pytest.raises(FeatureConfigError, match=f"cannot open the feature store at {tmp_path}"):
        FeastTransformer(MODEL, str(tmp_path), ["a:tier"], "customer_id").load()


@pytest.fixture(scope="module")
def forwarding_loop() -> Iterator[asyncio.Runner]:
    """One event loop for every request forwarded to a predictor: KServe keeps one process-wide HTTP client
    (InferenceClientFactory), bound to the loop that first used it."""
    with asyncio.Runner() as runner:
        yield runner
        runner.run(InferenceClientFactory().close())


def test_transformer_forwards_enriched_requests_to_the_predictor(
    server: ServerProcess, feature_repo: Path, forwarding_loop: asyncio.Runner
) -> None:
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

    via_transformer = forwarding_loop.run(through_transformer())
    direct = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=30)
    assert via_transformer == direct.json()


def test_instances_get_their_queue_and_user_features_in_one_lookup(task_transformer: FeastTransformer) -> None:
    """Views of two entities read together: each from its own join key, unknown ones give null."""
    payload = {
        "instances": [
            {"task_type": "etl", "queue": "batch", "user_id": "u04"},
            {"task_type": "report", "queue": "nightly", "user_id": "u01"},
            {"task_type": "backup", "queue": "gpu", "user_id": "u39"},
        ]
    }
    enriched = asyncio.run(task_transformer.preprocess(payload))
    batch, gpu = QUEUE_STATS["batch"], QUEUE_STATS["gpu"]
    assert enriched["instances"] == [
        {"task_type": "etl", "queue": "batch", "user_id": "u04", "queue_task_count": batch[0],
         "queue_failure_rate": batch[1], "user_avg_duration_s": USER_AVG_DURATION_S["u04"]},
        {"task_type": "report", "queue": "nightly", "user_id": "u01", "queue_task_count": None,
         "queue_failure_rate": None, "user_avg_duration_s": USER_AVG_DURATION_S["u01"]},
        {"task_type": "backup", "queue": "gpu", "user_id": "u39", "queue_task_count": gpu[0],
         "queue_failure_rate": gpu[1], "user_avg_duration_s": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("instances", "problem"),
    [
        ([[1, 2]], "instances[0] must be an object holding 'queue', 'user_id', got list"),
        ([{"queue": "batch", "user_id": "u01"}, {"user_id": "u01"}],
         "instances[1] has no entity key 'queue' (join key 'queue_id'); got fields ['user_id']"),
        ([{"queue": "batch"}], "instances[0] has no entity key 'user_id'; got fields ['queue']"),
        ([{"queue": 3, "user_id": "u01"}], "instances[0].queue must be str (join key 'queue_id'), got 3"),
        ([{"queue": "batch", "user_id": None}], "instances[0].user_id must be str, got None"),
        ([{"queue": "batch", "user_id": "u01", "queue_task_count": 5}],
         "instances[0] already has field(s) ['queue_task_count']"),
    ],
)  # fmt: skip
def test_bad_instances_name_the_instance_and_the_entity_field(
    task_transformer: FeastTransformer, instances: list, problem: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        asyncio.run(task_transformer.preprocess({"instances": instances}))
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("entity_keys", "problem"),
    [
        (["queue_id=queue"], "feature view 'user_task_stats' needs join key(s) ['user_id'], which the entity keys "
                             "['queue_id'] do not give"),
        (["queue=queue_id", "user_id"], "feature view 'queue_task_stats' needs join key(s) ['queue_id']"),
    ],
)  # fmt: skip
def test_every_view_needs_its_join_keys_among_the_entity_keys(
    task_repo: Path, entity_keys: list, problem: str
) -> None:
    with pytest.raises(FeatureConfigError) as error:
        FeastTransformer("task-priority", str(task_repo), TASK_REFS, entity_keys).load()
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("entity_keys", "problem"),
    [
        ([], "give at least one entity key"),
        (["=queue"], "entity key '=queue' must look like join_key or join_key=instance_field"),
        (["queue_id="], "entity key 'queue_id=' must look like join_key"),
        (["queue_id=a=b"], "entity key 'queue_id=a=b' must look like join_key"),
        (["queue_id", "queue_id=queue"], "give the join key 'queue_id' twice"),
        (["queue_id=queue_task_count"], "feature(s) ['queue_task_count'] would overwrite the entity key field(s)"),
    ],
)
def test_malformed_entity_keys_fail_at_construction(task_repo: Path, entity_keys: list, problem: str) -> None:
    with pytest.raises(FeatureConfigError) as error:
        FeastTransformer("task-priority", str(task_repo), TASK_REFS, entity_keys)
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("flags", "entity_fields"),
    [
        (["--entity_key", "customer_id"], {"customer_id": "customer_id"}),
        (["--entity_key", "queue_id=queue", "user_id"], {"queue_id": "queue", "user_id": "user_id"}),
    ],
)
def test_command_line_entity_keys(task_repo: Path, flags: list, entity_fields: dict) -> None:
    args = parse_args(["--model_name", "m", "--feature_store_path", str(task_repo), *flags,
                       "--feature_refs", *TASK_REFS])  # fmt: skip
    transformer = FeastTransformer(args.model_name, args.feature_store_path, args.feature_refs, args.entity_key)
    assert transformer.entity_fields == entity_fields
    assert transformer.feature_refs == TASK_REFS


@pytest.fixture(scope="module")
def task_classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A priority classifier trained on demo tasks with the queue and user history the task repo serves."""
    folder = tmp_path_factory.mktemp("task_classifier")
    paths = []
    for split, seed in (("train", 31), ("eval", 32)):
        frame = pd.read_csv(demo_tasks.write(folder / f"{split}.csv", rows=300, seed=seed))
        frame["queue_task_count"] = frame["queue"].map(lambda queue: QUEUE_STATS[queue][0])
        frame["queue_failure_rate"] = frame["queue"].map(lambda queue: QUEUE_STATS[queue][1])
        frame["user_avg_duration_s"] = frame["user_id"].map(USER_AVG_DURATION_S)
        frame.to_parquet(folder / f"{split}.parquet")
        paths.append(folder / f"{split}.parquet")
    features = [*tabular_models.PRIORITY_FEATURES, "user_id", "queue_task_count", "queue_failure_rate",
                "user_avg_duration_s"]  # fmt: skip
    train_tabular_model(
        *paths, folder / "model", task="classification", target_column="priority", feature_columns=features,
        algorithm="random_forest", hyperparameters={"n_estimators": 10}, num_threads=1,
    )  # fmt: skip
    with ServerProcess.start(folder / "model", "task-priority") as running:
        yield running


def test_transformer_gives_the_tabular_predictor_queue_and_user_history(
    task_classifier: ServerProcess, task_transformer: FeastTransformer, forwarding_loop: asyncio.Runner
) -> None:
    """Instances without history, through the transformer, predict as the same instances with it, sent directly."""
    rows = tabular_models.task_rows(6, seed=33)
    rows[-1]["queue"] = "nightly"  # no history: null queue features
    instances = [{**row, "user_id": user} for row, user in zip(rows, ["u00", "u04", "u09", "u17", "u39", "u02"])]
    with_history = [
        {**instance, "queue_task_count": QUEUE_STATS.get(instance["queue"], (None, None))[0],
         "queue_failure_rate": QUEUE_STATS.get(instance["queue"], (None, None))[1],
         "user_avg_duration_s": USER_AVG_DURATION_S.get(instance["user_id"])}
        for instance in instances
    ]  # fmt: skip

    async def through_transformer() -> dict:
        set_predictor_config(PredictorConfig(predictor_host=task_classifier.url.removeprefix("http://")))
        response, _ = await task_transformer({"instances": instances}, headers={})
        return response

    via_transformer = forwarding_loop.run(through_transformer())
    url = f"{task_classifier.url}/v1/models/task-priority:predict"
    direct = requests.post(url, json={"instances": with_history}, timeout=30)
    assert direct.status_code == 200, direct.text
    assert via_transformer == direct.json()
    assert len(via_transformer["predictions"]) == len(instances)
    without_history = requests.post(url, json={"instances": instances}, timeout=30)
    assert without_history.status_code == 400  # the predictor needs the history the transformer adds
