from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.process import ServerProcess
from serving.tests.tiny_model import build_tiny_text_classifier

MODEL = "tiny"
MAX_INSTANCES = 4
MAX_TEXT_CHARS = 200
BATCH_WAIT_MS = 50  # long enough for requests sent together to share a batch even on a busy machine


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: load with malformed requests against the server and the payload logger (60 s)"
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init BERT classifier directory (3 labels), as the train component writes it."""
    return build_tiny_text_classifier(tmp_path_factory.mktemp("model") / "tiny-bert")


@pytest.fixture(scope="session")
def server(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    """One `python -m serving.server` on the tiny model for the whole session, with small request limits."""
    flags = ["--max_instances", str(MAX_INSTANCES), "--max_text_chars", str(MAX_TEXT_CHARS),
             "--max_batch_wait_ms", str(BATCH_WAIT_MS)]  # fmt: skip
    with ServerProcess.start(tiny_model_dir, MODEL, extra_args=flags) as running:
        yield running
    assert running.process.returncode is not None
