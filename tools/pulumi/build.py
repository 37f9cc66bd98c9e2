"""Build the real `pulumi` CLI from its Go modules into a cache outside the work tree, keyed by the pins (./dev runs it).

The pins live in tools/pulumi/go.mod (pkg/v3 and sdk/v3 at one release); the cache key is
that version, the Go version and a digest of go.mod + go.sum, so a change of pins or Go
builds afresh and every later run (a fresh clone in CI included) reuses the binary.
The real-engine tests find the binaries through `bin_dir()`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
VERSION_VARIABLE = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"


def pinned_version() -> str:
    """The pulumi release tools/pulumi/go.mod pins (pkg/v3)."""
    match = re.search(r"github\.com/pulumi/pulumi/pkg/v3 (v\S+)", (HERE / "go.mod").read_text())
    if match is None:
        raise SystemExit("tools/pulumi/go.mod: no github.com/pulumi/pulumi/pkg/v3 requirement")
    return match.group(1)


def go_version() -> str | None:
    """`go1.26.8`, or None when there is no Go toolchain."""
    go = shutil.which("go")
    if go is None:
        return None
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def cache_root() -> Path:
    base = os.environ.get("REDISGUARD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "redisguard"
    )
    return Path(base) / "pulumi"


def bin_dir(go: str | None = None) -> Path | None:
    """Where the binaries for the current pins and Go live (built or not); None without Go."""
    go = go or go_version()
    if go is None:
        return None
    digest = hashlib.sha256((HERE / "go.mod").read_bytes() + (HERE / "go.sum").read_bytes()).hexdigest()[:12]
    return cache_root() / f"{pinned_version()}-{go}-{digest}" / "bin"


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build() -> int:
    go = go_version()
    if go is None:
        print("dev: go not found: the real-engine tests will be skipped (install Go to run them)", file=sys.stderr)
        return 0
    target = bin_dir(go)
    assert target is not None
    version = pinned_version()
    if (target / "pulumi").is_file():
        print(f"dev: pulumi {version} (cached in {target})", file=sys.stderr)
        return 0
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    # Helpers and CI may run ./dev at once: one builds, the others wait and reuse its binary.
    with open(target.parent.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "pulumi").is_file():
            return 0
        print(f"dev: building pulumi {version} from Go modules with {go} into {target} (once per pin; slow)", file=sys.stderr)
        began = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent.parent))
        env = {**os.environ, "GOFLAGS": "-buildvcs=false -mod=readonly"}
        argv = [
            "nice", "-n", "10", "go", "build", "-p", os.environ.get("REDISGUARD_GO_BUILD_JOBS", "2"), "-trimpath",
            "-ldflags", f"-s -w -X {VERSION_VARIABLE}={version}",
            "-o", str(staging / "pulumi"), CLI_PACKAGE,
        ]
        result = subprocess.run(argv, cwd=HERE, env=env, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            print(f"dev: building pulumi {version} failed (go build exit {result.returncode})", file=sys.stderr)
            return result.returncode
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        took = time.monotonic() - began
        size = _dir_size(target) / 2**20
        print(f"dev: built pulumi {version} in {took:.0f}s ({size:.0f} MiB in {target})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(build())
