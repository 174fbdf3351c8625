import os

import pytest

from kfp_mlops import images


@pytest.fixture(autouse=True)
def default_registry(monkeypatch):
    """Compiled YAML and image references use the default registry unless a test sets another."""
    monkeypatch.delenv(images.REGISTRY_ENV, raising=False)


@pytest.fixture(scope="session")
def shared_data():
    """The real data sets beside the checkout (CI has them; users of `make run` don't need them)."""
    from kfp_mlops.paths import PROJECT_ROOT

    path = PROJECT_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"needs the shared data sets at {path} (present in CI)")
    return path
