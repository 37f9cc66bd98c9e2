# syntax=docker/dockerfile:1
# redisguard: the daemon, the report commands, the pulumi CLI with its Python and Node.js language
# hosts, and the local emulator in one image.
#   docker build -t redisguard .    (fetches the language hosts' sources from GitHub; see below)
#   docker run --rm -v "$PWD/redisguard.yaml:/etc/redisguard/redisguard.yaml:ro" -p 127.0.0.1:9464:9464 redisguard
# Deployment guide: docs/deployment.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The Go that builds the pulumi CLI: the same release ./dev builds it with (tools/pulumi/go.mod).
ARG GO_IMAGE=golang:1.26.8-bookworm

# --- pulumi: the CLI the refresh and state checks run, from its Go modules -------------------
# Built as ./dev builds it (tools/pulumi/build.py): the module tools/pulumi/go.mod and go.sum pin,
# the same version stamp. The gcp provider plugin is fetched by the CLI at first use.
FROM ${GO_IMAGE} AS pulumi
# Equal to the pkg/v3 pin of tools/pulumi/go.mod (tests/test_deploy_files.py checks the two agree).
ARG PULUMI_VERSION=v3.274.1
WORKDIR /src
COPY tools/pulumi/go.mod tools/pulumi/go.sum ./
RUN CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${PULUMI_VERSION}" \
        -o /out/pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    && /out/pulumi version

# --- language hosts: what `pulumi refresh` (drift_pulumi) starts beside the CLI -----------------
# pulumi-language-python (with its exec shim) and pulumi-language-nodejs, which no Go module
# serves: built from source as tools/pulumi/build.py builds them for the tests. The sources are
# the build context `third_party`, laid out as ../shared/third_party is (one folder per host, each
# a Go module whose go.sum is complete). By default the stage below makes that layout from
# pulumi/pulumi at the CLI's tag (fetched from GitHub; its in-tree replaces point at the tree's own
# sdk/ and pkg/); the project's CI, which has ../shared beside the checkout, builds from there:
#   docker build --build-context third_party=../shared/third_party -t redisguard .
FROM ${GO_IMAGE} AS third_party
ARG PULUMI_VERSION=v3.274.1
ADD https://github.com/pulumi/pulumi.git#${PULUMI_VERSION} /pulumi
WORKDIR /third_party
RUN cp -r /pulumi/sdk pulumi-sdk \
    && cp -r /pulumi/pkg pulumi-pkg \
    && cp -r /pulumi/sdk/python/cmd/pulumi-language-python /pulumi/sdk/nodejs/cmd/pulumi-language-nodejs . \
    && cp /pulumi/sdk/python/cmd/pulumi-language-python-exec pulumi-language-python/ \
    && for host in pulumi-language-python pulumi-language-nodejs; do \
        go mod edit -replace=github.com/pulumi/pulumi/sdk/v3=../pulumi-sdk \
            -replace=github.com/pulumi/pulumi/pkg/v3=../pulumi-pkg "${host}/go.mod" || exit 1; \
    done

FROM ${GO_IMAGE} AS language-hosts
WORKDIR /src
COPY --from=third_party / ./
# Stamped, as upstream's release builds are, with the version of the SDK each host builds against.
RUN for host in pulumi-language-python pulumi-language-nodejs; do \
        version="$(GOFLAGS=-mod=readonly go -C "/src/${host}" list -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3)" \
        && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go -C "/src/${host}" build -trimpath \
            -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${version}" \
            -o "/out/${host}" . \
        || exit 1; \
    done \
    && install -m 0755 /src/pulumi-language-python/pulumi-language-python-exec /out/

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
COPY --from=pulumi /out/pulumi /usr/local/bin/pulumi
# On PATH beside the CLI, where the engine looks for a language host (a gcp provider plugin it
# fetches at first use into PULUMI_HOME).
COPY --from=language-hosts /out/ /usr/local/bin/
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
