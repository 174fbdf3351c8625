"""traced_forward refuses a graph whose logits differ from the eager model's."""

import logging
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer
from transformers.modeling_outputs import SequenceClassifierOutput

from serving.torchscript import TRACE_TEXTS, traced_forward


class BatchSizeDependent(torch.nn.Module):
    """Branches on the batch size in Python: a trace bakes in the branch its example batch took."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        logits = attention_mask.float().sum(dim=1, keepdim=True).repeat(1, 3)
        if input_ids.shape[0] == len(TRACE_TEXTS):
            logits = logits * 2
        return SequenceClassifierOutput(logits=logits)


def test_a_graph_that_differs_from_the_eager_model_is_not_used(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with caplog.at_level(logging.WARNING, logger="serving.torchscript"):
        assert traced_forward(BatchSizeDependent(), tokenizer, max_tokens=64) is None
    assert "the traced graph's logits differ from it by" in caplog.text
    assert "on a batch of 1 texts" in caplog.text
