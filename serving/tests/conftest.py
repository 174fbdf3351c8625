from pathlib import Path

import pytest

from serving.tests.tiny_model import build_tiny_text_classifier


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init BERT classifier directory (3 labels), as the train component writes it."""
    return build_tiny_text_classifier(tmp_path_factory.mktemp("model") / "tiny-bert")
