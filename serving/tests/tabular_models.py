"""Small real tabular models for the server tests, trained with the train_tabular component's own code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_diabetes

from components.train_tabular.tabular_trainer import train_tabular_model
from kfp_mlops import demo_tasks

PRIORITY_FEATURES = ["task_type", "requested_cpu", "requested_memory_gb", "queue", "n_dependencies"]


def priority_classifier(folder: Path) -> Path:
    """A random forest (skops) predicting demo tasks' priority: 4 classes, numeric and categorical features."""
    train = demo_tasks.write(folder / "tasks-train.csv", rows=400, seed=21)
    evaluation = demo_tasks.write(folder / "tasks-eval.csv", rows=100, seed=22)
    train_tabular_model(
        train, evaluation, folder / "priority", task="classification", target_column="priority",
        feature_columns=PRIORITY_FEATURES, algorithm="random_forest", hyperparameters={"n_estimators": 20},
        num_threads=1,
    )  # fmt: skip
    return folder / "priority"


def diabetes_regressor(folder: Path) -> Path:
    """An XGBoost regressor (UBJSON) with p10/p90 on scikit-learn's diabetes data (no download)."""
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})  # one categorical feature
    train, evaluation = folder / "diabetes-train.parquet", folder / "diabetes-eval.parquet"
    frame.iloc[:340].to_parquet(train)
    frame.iloc[340:].to_parquet(evaluation)
    train_tabular_model(
        train, evaluation, folder / "diabetes", task="regression", target_column="progression",
        algorithm="xgboost", hyperparameters={"n_estimators": 30, "max_depth": 3}, num_threads=1,
    )  # fmt: skip
    return folder / "diabetes"


def diabetes_rows(count: int) -> list[dict]:
    """The first ``count`` rows of the diabetes features as V1 instances."""
    frame = load_diabetes(as_frame=True, scaled=False).frame.drop(columns="target")
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})
    return frame.iloc[:count].to_dict(orient="records")


def task_rows(count: int, seed: int = 23) -> list[dict]:
    """Demo task records as V1 instances: the features typed as JSON would carry them (blank memory: null)."""
    rows = []
    for record in demo_tasks.tasks(count, seed=seed):
        memory = record["requested_memory_gb"]
        rows.append({
            "task_id": record["task_id"],  # not a feature: ignored
            "task_type": record["task_type"],
            "requested_cpu": int(record["requested_cpu"]),
            "requested_memory_gb": float(memory) if memory else None,
            "queue": record["queue"],
            "n_dependencies": int(record["n_dependencies"]),
        })  # fmt: skip
    return rows


def as_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)
