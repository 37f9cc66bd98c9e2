"""Build helm (v4) and kubevalidate from Go modules into a cache outside the work tree (./dev runs it).

The pins live in tools/helm/go.mod and go.sum (helm.sh/helm/v4, the Prometheus Operator's API
types kubevalidate decodes into); the Kubernetes API's OpenAPI schema is the swagger.json that
the k8s.io/kubernetes module ships, fetched with `go mod download` and checked against the h1:
sum pinned below. The cache key is helm's version, the Go version and a digest of go.mod, go.sum,
kubevalidate's source and that pin; the build shares tools/pulumi/build.py's one lock and Go
settings. The chart tests find the binaries and the schema through `bin_dir()` and `schema_file()`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HELM_PACKAGE = "helm.sh/helm/v4/cmd/helm"
HELM_VERSION_VARIABLE = "helm.sh/helm/v4/internal/version.version"
# The Kubernetes release whose API schema rendered objects are checked against, and its module's
# h1: sum (as go.sum would hold it): a different download is refused.
KUBERNETES = "k8s.io/kubernetes"
KUBERNETES_VERSION = "v1.37.2"
KUBERNETES_SUM = "h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE="
SCHEMA_IN_MODULE = "api/openapi-spec/swagger.json"


def _pulumi_build() -> Any:
    """tools/pulumi/build.py: the Go version, the cache root, the one build lock, `go build`."""
    spec = importlib.util.spec_from_file_location("redisguard_tools_pulumi_build", HERE.parent / "pulumi" / "build.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def helm_version() -> str:
    """The helm release tools/helm/go.mod pins."""
    match = re.search(r"helm\.sh/helm/v4 (v\S+)", (HERE / "go.mod").read_text())
    if match is None:
        raise SystemExit("tools/helm/go.mod: no helm.sh/helm/v4 requirement")
    return match.group(1)


def _digest() -> str:
    digest = hashlib.sha256(f"{KUBERNETES}@{KUBERNETES_VERSION} {KUBERNETES_SUM}\0".encode())
    for path in [HERE / "go.mod", HERE / "go.sum", *sorted((HERE / "kubevalidate").glob("*.go"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def tool_dir(go: str | None = None) -> Path | None:
    """Where helm, kubevalidate and the schema for the current pins and Go live (built or not); None without Go."""
    go = go or _pulumi_build().go_version()
    if go is None:
        return None
    return _pulumi_build().cache_root().parent / "helm" / f"{helm_version()}-{go}-{_digest()}"


def bin_dir(go: str | None = None) -> Path | None:
    folder = tool_dir(go)
    return folder / "bin" if folder is not None else None


def schema_file(go: str | None = None) -> Path | None:
    folder = tool_dir(go)
    return folder / "schema" / f"kubernetes-{KUBERNETES_VERSION}-swagger.json" if folder is not None else None


def _fetch_schema(into: Path) -> int:
    """Copy the k8s.io/kubernetes module's swagger.json into `into`, once its sum matched the pin."""
    argv = ["go", "mod", "download", "-json", f"{KUBERNETES}@{KUBERNETES_VERSION}"]
    out = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, check=False)
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        print(f"dev: go mod download {KUBERNETES}@{KUBERNETES_VERSION} failed: {out.stderr.strip()}", file=sys.stderr)
        return out.returncode or 1
    if info.get("Error") or info.get("Sum") != KUBERNETES_SUM:
        print(f"dev: {KUBERNETES}@{KUBERNETES_VERSION}: {info.get('Error') or 'sum ' + str(info.get('Sum')) + ' is not the pinned ' + KUBERNETES_SUM}", file=sys.stderr)
        return 1
    into.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(info["Dir"]) / SCHEMA_IN_MODULE, into)
    return 0


def build_tools(go: str) -> int:
    """Build helm and kubevalidate and fetch the schema into the cache (the caller holds the lock)."""
    target = tool_dir(go)
    assert target is not None
    version = helm_version()
    if (target / "bin" / "helm").is_file():
        print(f"dev: helm {version} and kubevalidate (cached in {target})", file=sys.stderr)
        return 0
    print(f"dev: building helm {version} and kubevalidate from Go modules with {go} into {target} (once per pin)", file=sys.stderr)
    build = _pulumi_build()
    began = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    schema = staging / "schema" / f"kubernetes-{KUBERNETES_VERSION}-swagger.json"
    code = (
        build.go_build(staging / "bin" / "helm", HELM_PACKAGE, HERE, ldflags=f"-s -w -X {HELM_VERSION_VARIABLE}={version}")
        or build.go_build(staging / "bin" / "kubevalidate", "./kubevalidate", HERE)
        or _fetch_schema(schema)
    )
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"dev: building helm {version} / kubevalidate failed (exit {code})", file=sys.stderr)
        return code
    staging.rename(target)
    print(f"dev: built helm {version} and kubevalidate in {time.monotonic() - began:.0f}s ({target})", file=sys.stderr)
    return 0


def build() -> int:
    build = _pulumi_build()
    go = build.go_version()
    if go is None:
        print("dev: go not found: the Helm chart tests will be skipped (install Go to run them)", file=sys.stderr)
        return 0
    with build.build_lock():
        return build_tools(go)


if __name__ == "__main__":
    sys.exit(build())
