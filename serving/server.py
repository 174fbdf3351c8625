"""Start the text model server: ``python -m serving.server --model_dir PATH --model_name NAME [--http_port N]``.

All of KServe's model server flags (``--http_port``, ``--grpc_port``, ``--enable_grpc``, ``--workers``, ...)
apply; this adds the model directory and the request limits.
"""

from __future__ import annotations

import argparse
import sys

import kserve
from kserve import model_server

from serving.text_classifier import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_TEXT_CHARS,
    ModelLoadError,
    TextClassifier,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve a Hugging Face text classifier with KServe (V1 and V2 protocols).",
        parents=[model_server.parser],
    )
    parser.add_argument(
        "--model_dir", required=True, help="local model directory (config.json, model.safetensors, tokenizer)"
    )
    parser.add_argument(
        "--max_instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most texts accepted in one request"
    )
    parser.add_argument(
        "--max_text_chars", type=int, default=DEFAULT_MAX_TEXT_CHARS, help="longest text accepted, in characters"
    )
    parser.add_argument("--device", default=None, help="torch device; default: cuda when available, else cpu")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    model = TextClassifier(
        args.model_name,
        args.model_dir,
        max_instances=args.max_instances,
        max_text_chars=args.max_text_chars,
        device=args.device,
    )
    try:
        model.load()
    except ModelLoadError as error:
        sys.exit(f"serving.server: {error}")
    # ModelServer takes its settings (ports, workers, gRPC, logging) from the same command line,
    # parsed by kserve.model_server when it is imported.
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
