"""The text classifier's forward pass as a frozen TorchScript graph, checked against the eager model.

Why (measured, serving/README.md): an eager forward pass gives up the GIL inside each of its hundreds of
torch ops and must take it back after each one, while the server's event loop thread wants the GIL for
HTTP and JSON. The traced graph runs in C++ and holds the GIL once per batch, so the forward pass and the
event loop stop waiting for each other: MiniLM-L6 at concurrency 32 served 181–218 requests/s on 2 CPUs
against 131–143 eagerly on one thread (the old default), with the same logits.

``torch.jit`` is deprecated in torch 2.13 in favour of ``torch.export`` and ``torch.compile``, whose CPU
backend compiles C++ at load time (the ``serve`` image has no compiler). A trace that fails, or whose
logits differ from the eager model's on the check batches, is not used: the server logs why and serves
the eager model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping

import torch

logger = logging.getLogger(__name__)

Forward = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]

# Texts of different lengths: the example batch has padding, the checks cover one text and the longest input.
TRACE_TEXTS = ["card declined", "the payment failed twice yesterday and the app shows an error"]
LOGIT_TOLERANCE = 1e-4


def eager_forward(model: torch.nn.Module) -> Forward:
    return lambda encoded: model(**encoded).logits


def traced_forward(model: torch.nn.Module, tokenizer, max_tokens: int) -> Forward | None:
    """The model's logits function run as a frozen TorchScript graph, or None (logged) when it is not exact."""
    encode = lambda texts: dict(  # noqa: E731
        tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    )
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # TracerWarnings about shape checks becoming constants, and torch.jit's deprecation notice: the
            # comparison below is what decides whether the graph is used.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model.eval(), example_kwarg_inputs=encode(TRACE_TEXTS), strict=False)
            graph = torch.jit.freeze(traced)
    except Exception as error:  # any failure to trace leaves the eager model serving
        logger.warning("serving the eager model: tracing failed: %r", error)
        return None

    def forward(encoded: Mapping[str, torch.Tensor]) -> torch.Tensor:
        output = graph(**encoded)
        return output["logits"] if isinstance(output, Mapping) else output[0]

    check_batches = [TRACE_TEXTS[:1], [" ".join(TRACE_TEXTS * max_tokens), *TRACE_TEXTS]]
    with torch.inference_mode():
        for texts in check_batches:
            encoded = encode(texts)
            difference = (forward(encoded) - model(**encoded).logits).abs().max().item()
            if not difference <= LOGIT_TOLERANCE:
                logger.warning(
                    "serving the eager model: the traced graph's logits differ from it by %.3g on a batch of "
                    "%d texts (tolerance %g)", difference, len(texts), LOGIT_TOLERANCE,
                )  # fmt: skip
                return None
    return forward
