"""Tabular family benchmark: training time and quality, serving latency at concurrency 8, drift latency.

``.envs/serve/bin/python -m bench.tabular_family [--out bench/results/tabular.md]``

Each part runs in the venv of the image that runs it in a pipeline, every case in a fresh process
(``bench.common``'s child protocol; setup such as imports and data loading is not timed):

* **Training** (``.envs/train``): ``train_tabular_model`` with each algorithm's defaults and one thread, on
  scikit-learn's breast cancer (569 rows, 30 features: diagnosis) and diabetes (442 rows, 10 features:
  progression) data, shipped inside scikit-learn (no download), split 60/20/20 with a fixed seed. Quality is
  ``score_tabular_model`` (what the gate compares) on the held-out 20 %, beside a trivial baseline fitted on
  the train split: the majority class, the train mean.
* **Serving** (``.envs/serve``): ``serving.server`` on the breast cancer XGBoost classifier and the diabetes
  XGBoost regressor, driven by 8 closed-loop clients (``bench.serve_load``'s keep-alive HTTP/1.1 loop), one
  row per V1 request; with request batching (the default ``--max_batch_size``) and without (1), measured in
  turns; and, as the floor, the in-process ``predict`` of one row (no HTTP).
* **Drift** (``.envs/monitor``): the tabular detector of the tabular pipelines (KS on ``requested_cpu`` and
  ``n_dependencies``, Chi-squared on ``task_type``, ``queue``, ``user_id``, ``requested_memory_gb``) fitted on
  3,000 demo task records, then ``predict`` on a 1,000-row window, drifted (``demo-data tasks --drift``) and
  not (fresh records of the same generator).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import CHILD_FLAG, REPO_ROOT, BenchmarkError, Measurement, child_main, command_line

MODULE = "bench.tabular_family"
DEFAULT_OUT = "bench/results/tabular.md"
ALGORITHMS = ("xgboost", "random_forest", "svm", "linear")
DATASETS = {"breast_cancer": ("classification", "diagnosis"), "diabetes": ("regression", "progression")}
CONCURRENCY = 8
SERVED = "tabular"
DRIFT_NUMERIC = ("requested_cpu", "n_dependencies")
DRIFT_CATEGORICAL = ("task_type", "queue", "user_id", "requested_memory_gb")


def venv_python(image: str) -> str:
    return str(REPO_ROOT / ".envs" / image / "bin" / "python")


def run_case(python: str, case: str, params: dict[str, Any]) -> Measurement:
    """``bench.common.measure`` with the interpreter of another venv."""
    command = [python, "-m", MODULE, CHILD_FLAG, case, json.dumps(params)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True)
    if done.returncode != 0:
        raise BenchmarkError(f"case {case!r} exited with {done.returncode}:\n{done.stderr.decode()[-4000:]}")
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return Measurement(case, result.pop("seconds"), result.pop("cpu_seconds"), result.pop("peak_rss_bytes"),
                       result.pop("rss_before_bytes"), result)  # fmt: skip


# --- children ---------------------------------------------------------------------------------------------


def split_files(name: str, folder: Path) -> tuple[Path, Path, Path]:
    """The data set as seeded 60/20/20 train/eval/test Parquet files."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if name == "breast_cancer":
        data = load_breast_cancer(as_frame=True)
        frame = data.frame.rename(columns={"target": "diagnosis"})
        frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(data.target_names)))
    else:
        frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cuts = [0, int(len(frame) * 0.6), int(len(frame) * 0.8), len(frame)]
    paths = tuple(folder / f"{name}-{part}.parquet" for part in ("train", "eval", "test"))
    for path, start, end in zip(paths, cuts, cuts[1:]):
        shuffled.iloc[start:end].to_parquet(path)
    return paths


def _train_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from components.train_tabular.scoring import score_tabular_model
    from components.train_tabular.tabular_trainer import train_tabular_model

    task, target = DATASETS[params["dataset"]]
    train, evaluation, test = split_files(params["dataset"], Path(params["work"]))
    model_dir = Path(params["work"]) / f"{params['dataset']}-{params['algorithm']}"

    def run() -> dict[str, Any]:
        result = train_tabular_model(train, evaluation, model_dir, task=task, target_column=target,
                                     algorithm=params["algorithm"], num_threads=1)  # fmt: skip
        return {
            "fit_seconds": result.metrics["train_seconds"],
            "test": score_tabular_model(model_dir, test, target),
            "baseline": _baseline_scores(task, target, train, test),
            "model_dir": str(model_dir),
        }

    return run


def _baseline_scores(task: str, target: str, train: Path, test: Path) -> dict[str, float]:
    """The trivial predictor fitted on the train split: its majority class, or its mean."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    truth, fitted = pd.read_parquet(test)[target], pd.read_parquet(train)[target]
    if task == "classification":
        guess = np.full(len(truth), fitted.mode()[0], dtype=object)
        return {"accuracy": accuracy_score(truth, guess), "macro_f1": f1_score(truth, guess, average="macro")}
    error = truth.to_numpy() - fitted.mean()
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "r2": 0.0}


def _drift_frames(params: dict[str, Any]) -> tuple[Any, Any, Any]:
    import pandas as pd

    from kfp_mlops import demo_data

    work = Path(params["work"])
    reference = demo_data.write("tasks", work / "reference.csv", rows=3000, seed=0)
    drifted = demo_data.write("tasks", work / "drifted.csv", rows=params["window"], seed=1, drift=True)
    fresh = demo_data.write("tasks", work / "fresh.csv", rows=params["window"], seed=2)
    return tuple(pd.read_csv(path) for path in (reference, drifted, fresh))


def _drift_detector() -> Any:
    from components.drift.detectors import DetectorSettings, DriftColumns, create_detector

    return create_detector(DriftColumns(numeric=DRIFT_NUMERIC, categorical=DRIFT_CATEGORICAL), DetectorSettings())


def _drift_fit_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    reference, _, _ = _drift_frames(params)
    detector = _drift_detector()

    def run() -> dict[str, Any]:
        detector.fit(reference)
        return {"rows": len(reference)}

    return run


def _drift_predict_case(params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    reference, drifted, fresh = _drift_frames(params)
    detector = _drift_detector()
    detector.fit(reference)
    window = drifted if params["drifted"] else fresh

    def run() -> dict[str, Any]:
        result = detector.predict(window)
        return {"rows": len(window), "drift": bool(result.drift), "drifted": list(result.drifted_features)}

    return run


CASES = {"train": _train_case, "drift-fit": _drift_fit_case, "drift-predict": _drift_predict_case}


# --- serving (in this process: the serve venv) --------------------------------------------------------------


async def drive(url: str, bodies: list[bytes], warmup_s: float, duration_s: float) -> tuple[list[float], int, float]:
    """CONCURRENCY closed-loop clients on keep-alive connections; latencies (ms) after the warm-up."""
    from urllib.parse import urlparse

    from bench.serve_load import _post

    parsed = urlparse(url)
    head = (f"POST /v1/models/{SERVED}:predict HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            "Content-Type: application/json\r\n").encode()  # fmt: skip
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    latencies: list[float] = []
    failures = 0

    async def client(number: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        index = number
        try:
            while (sent := time.perf_counter()) < stop_at:
                status = await _post(reader, writer, head, bodies[index % len(bodies)])
                index += CONCURRENCY
                if sent >= measure_from:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    failures += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(client(number) for number in range(CONCURRENCY)))
    return latencies, failures, time.perf_counter() - measure_from


def percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(percent / 100 * len(ordered) + 0.5) - 1))]  # nearest rank


def serving_rows(model_dir: str, test: Path, args: argparse.Namespace) -> list[list[str]]:
    """Batched and unbatched servers in turns, then the in-process floor, for one model."""
    import pandas as pd

    from components.train_tabular import tabular_model
    from serving.process import ServerProcess

    model = tabular_model.load(Path(model_dir))
    names = [feature["name"] for feature in model.manifest["features"]]
    frame = pd.read_parquet(test)[names]
    rows = frame.to_dict(orient="records")
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows]
    name = f"{Path(model_dir).name} ({model.manifest['task']})"
    servers = {
        "batched": ServerProcess.start(model_dir, SERVED),
        "unbatched": ServerProcess.start(model_dir, SERVED, extra_args=["--max_batch_size", "1"]),
    }
    results: dict[str, list[tuple[list[float], int, float]]] = {label: [] for label in servers}
    try:
        for _ in range(args.turns):
            for label, server in servers.items():
                results[label].append(asyncio.run(drive(server.url, bodies, args.warmup, args.duration)))
    finally:
        for server in servers.values():
            server.stop()
    table = []
    for label, turns in results.items():
        latencies = [ms for turn in turns for ms in turn[0]]
        seconds, failures = sum(turn[2] for turn in turns), sum(turn[1] for turn in turns)
        table.append([name, f"server, {label}", f"{len(latencies) / seconds:.0f}", f"{percentile(latencies, 50):.1f}",
                      f"{percentile(latencies, 99):.1f}", str(len(latencies)), str(failures)])  # fmt: skip
    single = []
    predict = model.predict_proba if model.manifest["task"] == "classification" else model.predict
    for index in range(args.floor_calls):
        started = time.perf_counter()
        predict(frame.iloc[[index % len(frame)]])
        single.append((time.perf_counter() - started) * 1000)
    table.append([name, "in-process predict, 1 row (floor)", f"{1000 / statistics.mean(single):.0f}",
                  f"{percentile(single, 50):.1f}", f"{percentile(single, 99):.1f}", str(len(single)), "0"])  # fmt: skip
    return table


# --- driver -------------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="Markdown report (default %(default)s)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per serving turn")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--turns", type=int, default=2, help="turns of batched then unbatched per model")
    parser.add_argument("--floor-calls", type=int, default=300, help="in-process single-row predictions")
    parser.add_argument("--window", type=int, default=1000, help="rows of the drift window")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tabular-") as work:
        training = [
            run_case(venv_python("train"), "train", {"dataset": dataset, "algorithm": algorithm, "work": work})
            for dataset in DATASETS
            for algorithm in ALGORITHMS
        ]
        train_rows = []
        for m in training:
            test, baseline = m.details["test"], m.details["baseline"]
            keys = ("accuracy", "macro_f1", "roc_auc") if "accuracy" in test else ("rmse", "mae", "r2",
                                                                                  "interval_coverage")
            quality = ", ".join(f"{key} {fmt(test[key])}" for key in keys)
            trivial = ", ".join(f"{key} {fmt(value)}" for key, value in baseline.items())
            dataset, algorithm = Path(m.details["model_dir"]).name.rsplit("-", 1)
            train_rows.append([dataset, algorithm, f"{m.details['fit_seconds']:.2f}", f"{m.seconds:.2f}",
                               f"{m.peak_rss_mib:.0f}", quality, trivial])  # fmt: skip
        models = {m.details["model_dir"]: m for m in training if m.details["model_dir"].endswith("xgboost")}
        serve_rows = []
        for model_dir in models:
            dataset = Path(model_dir).name.rsplit("-", 1)[0]
            serve_rows += serving_rows(model_dir, Path(work) / f"{dataset}-test.parquet", args)
        monitor = venv_python("monitor")
        drift_rows = []
        fit = run_case(monitor, "drift-fit", {"work": work, "window": args.window})
        drift_rows.append(["fit", str(fit.details["rows"]), f"{fit.seconds * 1000:.0f}", f"{fit.peak_rss_mib:.0f}", ""])
        for drifted in (True, False):
            m = run_case(monitor, "drift-predict", {"work": work, "window": args.window, "drifted": drifted})
            verdict = f"drift={m.details['drift']} {m.details['drifted']}"
            drift_rows.append([f"predict, {'drifted' if drifted else 'fresh'} window", str(m.details["rows"]),
                               f"{m.seconds * 1000:.0f}", f"{m.peak_rss_mib:.0f}", verdict])  # fmt: skip
    notes = [
        "training: one thread (num_threads=1), each algorithm's default hyperparameters; fit s is the trainer's own "
        "timing of preprocessing + estimator (+ p10/p90 models); wall s adds reading, evaluation and saving.",
        f"serving: concurrency {CONCURRENCY}, {args.turns} turns of {args.duration:.0f} s per server after "
        f"{args.warmup:.0f} s of warm-up, one row per V1 request; the load generator shares the machine.",
        f"drift: {args.window}-row windows; the detector's p-value 0.05 with a Bonferroni correction over 6 tests.",
    ]
    write_markdown(args.out, MODULE, argv, [
        ("Training and quality (held-out 20 %)",
         ["data set", "algorithm", "fit s", "wall s", "peak RSS MiB", "test quality", "trivial baseline on test"],
         train_rows),
        (f"Serving at concurrency {CONCURRENCY}",
         ["model", "setup", "requests/s", "p50 ms", "p99 ms", "requests", "failures"], serve_rows),
        ("Drift detection", ["case", "rows", "ms", "peak RSS MiB", "verdict"], drift_rows),
    ], notes)  # fmt: skip
    print(Path(args.out).read_text())


def write_markdown(
    path: str, module: str, argv: list[str] | None, tables: list[tuple[str, list[str], list[list[str]]]],
    notes: list[str],
) -> None:  # fmt: skip
    from bench.common import machine_description

    machine = machine_description()
    command = command_line(module, sys.argv[1:] if argv is None else argv)
    lines = ["# Tabular family: training, serving, drift", "", __doc__.split("\n\n", 2)[2].strip(), "",
             f"Run on {machine['date']} with `{command}`.", "", "| machine | |", "|---|---|"]  # fmt: skip
    lines += [f"| {key} | {value} |" for key, value in machine.items() if key != "date"]
    for title, headers, rows in tables:
        lines += ["", f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in notes]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(target)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        child_main(CASES, sys.argv[1:])
    else:
        main()
