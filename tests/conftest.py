import os

import pytest

from kfp_mlops import images


@pytest.fixture(autouse=True)
def default_registry(monkeypatch):
    """Compiled YAML and image references use the default registry unless a test sets another."""
    monkeypatch.delenv(images.REGISTRY_ENV, raising=False)


@pytest.fixture(scope="session", autouse=True)
def local_state(tmp_path_factory):
    """The CLI processes a test starts keep their local state (demo data, the embedded registry, run outputs
    not given a --pipeline-root) in a folder of the test session, not in the checkout's .local/."""
    path = tmp_path_factory.mktemp("kfp-mlops-local")
    previous = os.environ.get("KFP_MLOPS_LOCAL")
    os.environ["KFP_MLOPS_LOCAL"] = str(path)
    yield path
    if previous is None:
        del os.environ["KFP_MLOPS_LOCAL"]
    else:
        os.environ["KFP_MLOPS_LOCAL"] = previous


@pytest.fixture(scope="session")
def shared_data():
    """The real data sets beside the checkout (CI has them; users of `make run` don't need them)."""
    from kfp_mlops.paths import PROJECT_ROOT

    path = PROJECT_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"needs the shared data sets at {path} (present in CI)")
    return path
