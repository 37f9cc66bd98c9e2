# syntax=docker/dockerfile:1
# redisguard: the daemon, the report commands and the local emulator in one image.
#   docker build -t redisguard .
#   docker run --rm -v "$PWD/redisguard.yaml:/etc/redisguard/redisguard.yaml:ro" -p 127.0.0.1:9464:9464 redisguard
# Deployment guide: docs/deployment.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve the locked dependencies into /app/.venv -----------------------------------
FROM ${PYTHON_IMAGE} AS build
# Same uv as ./dev (tests/test_deploy_files.py checks the two agree).
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, from the lock file alone: this layer survives edits to the source.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY core/ core/
COPY program/ program/
COPY policies/ policies/
COPY daemon/ daemon/
COPY emulator/ emulator/
# Not editable: the venv holds redisguard itself, so the runtime stage needs no build tools.
RUN uv sync --frozen --no-dev --no-editable

# --- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UV_VERSION=0.13.8
# redis-server backs every emulated instance (`redisguard emulator`); the daemon does not use it.
# uv stays in the image: Pulumi's uv toolchain (program/Pulumi.yaml) calls `uv sync` against
# /app/.venv and the lock file before it runs the program.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server=5:7.0.* \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --system --uid 10001 --home-dir /var/lib/redisguard --create-home --shell /usr/sbin/nologin redisguard \
    && mkdir -p /etc/redisguard
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_FROZEN=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_CACHE_DIR=/tmp/uv-cache \
    PULUMI_HOME=/var/lib/redisguard/pulumi \
    REDISGUARD_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz
WORKDIR /var/lib/redisguard
USER 10001:10001
EXPOSE 9464
# Healthy means what /healthz means: every enabled check succeeded recently (docs/daemon.md).
# Without curl in a slim image, Python's urllib does the request; a 503 raises, so exit 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['REDISGUARD_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["redisguard"]
CMD ["daemon", "--config", "/etc/redisguard/redisguard.yaml"]
