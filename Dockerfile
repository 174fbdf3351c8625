# One Dockerfile for every runtime image: `--build-arg EXTRA=<image>` picks the uv extra (see `make images`).
# The image holds exactly the locked environment of that extra, the project code, and kfp without its
# dependencies (the KFP task runtime imports no protobuf, so kfp's pins do not bind the image).
FROM python:3.11-slim

ARG EXTRA
ARG UV_VERSION=0.13.9
# Recorded by the model registry with every model trained in this image (an image has no .git).
ARG GIT_COMMIT=""
ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    KFP_MLOPS_GIT_COMMIT=${GIT_COMMIT} \
    KFP_MLOPS_FEATURE_REPO=/opt/kfp-mlops/feature_repo \
    KFP_MLOPS_FEATURE_STATE=/tmp/feast-state

RUN test -n "$EXTRA" || (echo "build with --build-arg EXTRA=<data|validate|train|tune|serve|monitor>" && exit 1) \
 && pip install --no-cache-dir uv==${UV_VERSION} \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin kfp

WORKDIR /opt/kfp-mlops
COPY pyproject.toml uv.lock README.md ./
# Dependencies first, in their own layer, so code changes don't reinstall them.
RUN uv sync --frozen --no-dev --no-install-project --extra ${EXTRA} && rm -rf /root/.cache/uv
COPY kfp_mlops ./kfp_mlops
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY feature_repo ./feature_repo
RUN uv sync --frozen --no-dev --no-editable --extra ${EXTRA} \
 && uv pip install --python /opt/venv/bin/python --no-deps "kfp==$(python -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "kfp"))')" \
 && rm -rf /root/.cache/uv

LABEL org.opencontainers.image.source="https://github.com/kfp-mlops/kfp-mlops" \
      io.kfp-mlops.image="${EXTRA}"
USER 10001
WORKDIR /home/kfp
