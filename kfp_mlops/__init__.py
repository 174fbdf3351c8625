"""kfp-mlops: Kubeflow Pipelines components for the whole ML lifecycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kfp-mlops")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
