"""The gate with its champion from the MLflow registry (an embedded SQLite store): found through the alias,
downloaded, named in the reason and the comparison; a declined challenger is recorded in the alias history."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.gate.gate import GateThresholds, RegistryLink, run_gate
from components.register.registry import ModelRegistry, RegistryError

NAME = "sentiment"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables created once (that takes seconds); tests copy it."""
    database = tmp_path_factory.mktemp("template") / "mlflow.db"
    ModelRegistry(f"sqlite:///{database}").models()
    return database


@pytest.fixture
def registry(tmp_path: Path, empty_store: Path, models: dict[str, str]) -> ModelRegistry:
    """v1 (the strong model) and v2 (the weak one) registered; no champion yet."""
    (tmp_path / "registry").mkdir()
    shutil.copy(empty_store, tmp_path / "registry" / "mlflow.db")
    store = ModelRegistry(f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}")
    for model in ("strong", "weak"):
        store.register(NAME, models[model], alias="challenger", actor="test")
    return store


def test_without_a_champion_alias_only_the_absolute_bars_apply(registry, models, test_path, tmp_path):
    link = RegistryLink(NAME, registry.tracking_uri, challenger_version="1", actor="kfp run r1 task t1")
    result = run_gate(models["strong"], test_path, str(tmp_path / "c.md"), registry=link)
    assert result.decision.blessed
    assert result.decision.reason.startswith("blessed: no champion yet; min_accuracy")
    assert result.champion is None and result.champion_source is None
    assert [e.action for e in registry.alias_history(NAME, "champion")] == []  # deploy moves it, not the gate


def test_the_registry_champion_blocks_a_weaker_challenger_and_the_decline_is_recorded(
    registry, models, test_path, tmp_path
):
    registry.set_alias(NAME, "champion", "1", reason="first release", actor="alice")
    comparison = tmp_path / "comparison.md"
    link = RegistryLink(NAME, registry.tracking_uri, challenger_version="2", actor="kfp run r2 task t2")
    result = run_gate(models["weak"], test_path, str(comparison), registry=link)

    assert not result.decision.blessed
    assert result.decision.reason.startswith(f"not blessed: champion {NAME} version 1; min_improvement: macro_f1")
    assert result.champion.metrics["accuracy"] == 1.0  # the downloaded v1 is the strong model
    assert (result.champion_source.model_name, result.champion_source.version) == (NAME, "1")
    assert not Path(result.champion_source.model_dir).exists()  # the download was temporary
    text = comparison.read_text()
    assert f"- champion: {NAME} version 1 (`models:/{NAME}/1`)" in text
    assert f"- challenger: `{models['weak']}` ({NAME} version 2), a text classifier" in text

    assert registry.get_alias(NAME, "champion").version == "1"
    declined = registry.alias_history(NAME, "champion")[-1]
    assert (declined.action, declined.version, declined.previous_version) == ("declined", "2", "1")
    assert declined.actor == "kfp run r2 task t2"
    assert declined.reason == "not blessed by gate: " + result.decision.reason.removeprefix("not blessed: ")
    # A declined version is not part of the alias's stack: a rollback still has nothing to go back to.
    with pytest.raises(RegistryError, match="has held only version 1"):
        registry.rollback(NAME, "champion")


def test_a_better_challenger_beats_the_registry_champion_and_a_given_path_wins_over_it(
    registry, models, test_path, tmp_path
):
    registry.set_alias(NAME, "champion", "2", reason="weak one first", actor="alice")
    link = RegistryLink(NAME, registry.tracking_uri, challenger_version="1")
    result = run_gate(models["strong"], test_path, str(tmp_path / "c.md"), registry=link)
    assert result.decision.blessed, result.decision.reason
    assert result.decision.reason.startswith(f"blessed: champion {NAME} version 2; ")
    assert [e.action for e in registry.alias_history(NAME, "champion")] == ["set"]  # nothing recorded when blessed

    explicit = run_gate(models["strong"], test_path, str(tmp_path / "c2.md"), champion_model=models["strong"],
                        thresholds=GateThresholds(min_improvement=0.0), registry=link)  # fmt: skip
    assert explicit.champion_source.model_dir == models["strong"] and explicit.champion_source.version == ""
    assert explicit.decision.reason.startswith(f"blessed: champion {models['strong']}; ")


def test_an_unknown_registered_model_fails_the_gate(registry, models, test_path, tmp_path):
    link = RegistryLink("no-such-model", registry.tracking_uri)
    with pytest.raises(RegistryError, match="no registered model named 'no-such-model'"):
        run_gate(models["strong"], test_path, str(tmp_path / "c.md"), registry=link)
    assert not (tmp_path / "c.md").exists()
