"""Start a model server: ``python -m serving.server --model_dir PATH --model_name NAME [--http_port N]``.

The model directory's kind picks the predictor (:func:`serving.model_kind.model_kind`): a Hugging Face text
classifier (``config.json``: :class:`serving.text_classifier.TextClassifier`), a tabular model
(``model.json`` with ``"family": "tabular"``: :class:`serving.tabular_model.TabularPredictor`) or an anomaly
detector (``"family": "anomaly"``: :class:`serving.anomaly_detector.AnomalyDetector`). Each predictor's module
is imported only when its kind is served.

All of KServe's model server flags (``--http_port``, ``--grpc_port``, ``--enable_grpc``, ``--workers``, ...)
apply; this adds the model directory, the request limits, request batching and torch's thread counts.
"""

from __future__ import annotations

import argparse
import gc
import sys

import kserve
from kserve import model_server

from serving.cpus import available_cpus
from serving.model_kind import ModelLoadError, model_kind

# Request limits for every kind of model: the text classifier's defaults (serving.text_classifier, which this
# module does not import up front because it loads torch; a test keeps the two equal).
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_TEXT_CHARS = 10_000
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_WAIT_MS = 0.0
# The forward pass gives up the GIL inside every torch op and needs it back after each of them (hundreds
# per batch); while the event loop thread is busy with HTTP, each of those waits up to this interval.
DEFAULT_GIL_SWITCH_INTERVAL_MS = 0.5


def default_torch_threads() -> int:
    """Every CPU available: the traced forward pass does not hold the GIL the event loop needs (measured)."""
    return available_cpus()


class DefaultJsonContentType:
    """ASGI middleware: a V2 request without Content-Type (and not binary) is taken as JSON.

    Triton's HTTP client sends JSON-only V2 requests without a Content-Type. KServe then takes the body for
    the binary tensor extension and refuses it for lacking ``Inference-Header-Content-Length``.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/v2/"):
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve a text, tabular or anomaly model with KServe (V1 and V2 protocols).",
        parents=[model_server.parser],
    )
    parser.add_argument(
        "--model_dir", required=True,
        help="local model directory: Hugging Face (config.json) or tabular/anomaly (model.json)",
    )  # fmt: skip
    parser.add_argument(
        "--max_instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most texts or rows accepted in one request"
    )
    parser.add_argument(
        "--max_text_chars", type=int, default=DEFAULT_MAX_TEXT_CHARS, help="text: longest text accepted, in characters"
    )
    parser.add_argument(
        "--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
        help="most texts or rows coalesced into one model call; 1 turns batching off",
    )  # fmt: skip
    parser.add_argument(
        "--max_batch_wait_ms", type=float, default=DEFAULT_MAX_BATCH_WAIT_MS,
        help="longest a request waits for others to join its batch, in milliseconds",
    )  # fmt: skip
    parser.add_argument(
        "--torch_threads", type=int, default=None,
        help="torch intra-op CPU threads; default: the CPUs this process may use (affinity, capped by a CPU quota)",
    )  # fmt: skip
    parser.add_argument("--torch_interop_threads", type=int, default=1, help="torch inter-op CPU threads")
    parser.add_argument(
        "--gil_switch_interval_ms", type=float, default=DEFAULT_GIL_SWITCH_INTERVAL_MS,
        help="how long a busy thread keeps the GIL (sys.setswitchinterval); Python's default is 5",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="torch device; default: cuda when available, else cpu")
    parser.add_argument(
        "--torchscript", action=argparse.BooleanOptionalAction, default=True,
        help="text on CPU: run the forward pass as a TorchScript graph checked against the eager model",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for flag in ("max_instances", "max_batch_size", "torch_interop_threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.torch_threads is not None and args.torch_threads < 1:
        parser.error(f"--torch_threads must be at least 1, got {args.torch_threads}")
    if args.max_batch_wait_ms < 0:
        parser.error(f"--max_batch_wait_ms must be 0 or more, got {args.max_batch_wait_ms}")
    if args.gil_switch_interval_ms <= 0:
        parser.error(f"--gil_switch_interval_ms must be positive, got {args.gil_switch_interval_ms}")
    return args


def build_model(args: argparse.Namespace) -> kserve.Model:
    """The predictor for the kind of model in ``args.model_dir``, loaded; raises ModelLoadError if it cannot be."""
    kind = model_kind(args.model_dir)
    if kind == "text":
        return _text_classifier(args)
    if kind == "tabular":
        from serving.tabular_model import TabularPredictor

        model = TabularPredictor(
            args.model_name, args.model_dir, max_instances=args.max_instances, max_batch_size=args.max_batch_size,
            max_batch_wait_ms=args.max_batch_wait_ms,
        )  # fmt: skip
    else:
        from serving.anomaly_detector import AnomalyDetector

        model = AnomalyDetector(args.model_name, args.model_dir)
    model.load()
    return model


def _text_classifier(args: argparse.Namespace) -> kserve.Model:
    import torch

    from serving import text_classifier

    # Inter-op threads can only be set before torch starts any parallel work, so first thing.
    torch.set_num_interop_threads(args.torch_interop_threads)
    torch.set_num_threads(args.torch_threads or default_torch_threads())
    model = text_classifier.TextClassifier(
        args.model_name,
        args.model_dir,
        max_instances=args.max_instances,
        max_text_chars=args.max_text_chars,
        max_batch_size=args.max_batch_size,
        max_batch_wait_ms=args.max_batch_wait_ms,
        device=args.device,
        torchscript=args.torchscript,
    )
    try:
        model.load()
    except text_classifier.ModelLoadError as error:
        raise ModelLoadError(str(error)) from error
    return model


def main() -> None:
    args = parse_args()
    sys.setswitchinterval(args.gil_switch_interval_ms / 1000)
    try:
        model = build_model(args)
    except ModelLoadError as error:
        sys.exit(f"serving.server: {error}")
    # torch, transformers and KServe leave about half a million objects that live as long as the process;
    # a full collection scanning them stalls every request (255 ms measured here). Exempt them from collection.
    gc.freeze()
    # ModelServer takes its settings (ports, workers, gRPC, logging) from the same command line,
    # parsed by kserve.model_server when it is imported; it serves kserve.model_server.app.
    model_server.app.add_middleware(DefaultJsonContentType)
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
