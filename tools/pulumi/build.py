"""Build the real `pulumi` CLI and the plugins it runs into a cache outside the work tree (./dev runs it).

The CLI comes from its Go modules: the pins live in tools/pulumi/go.mod (pkg/v3 and sdk/v3 at one
release); its cache key is that version, the Go version and a digest of go.mod + go.sum. The
plugins the Go module proxy refuses — the Python and Node.js language hosts and the `command`
provider — build from their public sources in ../shared/third_party (PLUGINS); each one's cache
key is the Go version and a digest of its sources. A change of pins, sources or Go builds afresh;
every later run (a fresh clone in CI included) reuses the binaries. One lock serialises builds.
The real-engine tests find the binaries through `bin_dir()` and `plugin_dirs()`.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
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


@dataclass(frozen=True)
class Plugin:
    """A Pulumi plugin built from a folder of ../shared/third_party."""

    binary: str
    folder: str
    package: str = "."
    # Other third_party folders its go.mod replaces a module with (part of its sources).
    also: tuple[str, ...] = ()
    # Files of the folder that must sit beside the binary (the Python host's exec shim).
    beside: tuple[str, ...] = ()
    # The version the binary reports, stamped as upstream's release builds do: the engine checks a
    # plugin's version against what the SDK asks for (the command SDK wants >=1.2.1, and the
    # unstamped source says 0.7.1).
    version_variable: str = VERSION_VARIABLE
    version: str = "v3.260.0"


PLUGINS = (
    # The hosts' sources are pulumi/pulumi at 3.260.0 in development (third_party/README.md).
    Plugin("pulumi-language-python", "pulumi-language-python", beside=("pulumi-language-python-exec",)),
    Plugin("pulumi-language-nodejs", "pulumi-language-nodejs"),
    # pulumi-command at v1.2.1 and later commits; build metadata keeps it equal to 1.2.1 for semver.
    Plugin(
        "pulumi-resource-command",
        "pulumi-command",
        package="./provider/cmd/pulumi-resource-command",
        also=("pulumi-go-provider",),
        version_variable="github.com/pulumi/pulumi-command/provider/pkg/version.Version",
        version="1.2.1+010bd8e0",
    ),
)


def third_party() -> Path | None:
    """../shared/third_party beside the checkout (CI and the developers have it), or None (a user's clone)."""
    configured = os.environ.get("REDISGUARD_THIRD_PARTY")
    folder = Path(configured) if configured else REPO.parent / "shared" / "third_party"
    return folder if folder.is_dir() else None


def _source_digest(folders: list[Path], version: str) -> str:
    """A digest of the stamped version and every file's path and bytes in `folders` (sorted), so
    any edit builds afresh."""
    digest = hashlib.sha256(version.encode())
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def plugin_dir(plugin: Plugin, go: str, sources: Path) -> Path:
    """Where `plugin` built from `sources` with `go` lives (built or not)."""
    digest = _source_digest([sources / plugin.folder, *(sources / f for f in plugin.also)], plugin.version)
    return cache_root() / "plugins" / f"{plugin.binary}-{go}-{digest}"


def plugin_dirs() -> Iterator[tuple[Plugin, Path | None]]:
    """Each plugin with the folder that holds it built, or None (no Go, no third_party, not built yet)."""
    go, sources = go_version(), third_party()
    for plugin in PLUGINS:
        if go is None or sources is None:
            yield plugin, None
            continue
        folder = plugin_dir(plugin, go, sources)
        yield plugin, folder if (folder / plugin.binary).is_file() else None


def go_build(out: Path, package: str, cwd: Path, ldflags: str = "-s -w") -> int:
    """`go build` of `package` in the module at `cwd` into `out` (niced, -trimpath, go.sum as pinned); its exit code."""
    # Static, as the image's build stages build them (Dockerfile), so the test that runs the image's
    # language-host stage here shares this build's Go cache instead of compiling everything again.
    env = {**os.environ, "GOFLAGS": "-buildvcs=false -mod=readonly", "CGO_ENABLED": "0"}
    argv = [
        "nice", "-n", "10", "go", "build", "-p", os.environ.get("REDISGUARD_GO_BUILD_JOBS", "2"), "-trimpath",
        "-ldflags", ldflags, "-o", str(out), package,
    ]
    return subprocess.run(argv, cwd=cwd, env=env, check=False).returncode


def build_plugin(plugin: Plugin, go: str, sources: Path) -> int:
    """Build one plugin into its cache folder (the caller holds the lock); 0 when it is there."""
    target = plugin_dir(plugin, go, sources)
    if (target / plugin.binary).is_file():
        print(f"dev: {plugin.binary} (cached in {target})", file=sys.stderr)
        return 0
    print(f"dev: building {plugin.binary} from {sources / plugin.folder} with {go} (once per source change)", file=sys.stderr)
    began = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    ldflags = f"-s -w -X {plugin.version_variable}={plugin.version}"
    code = go_build(staging / plugin.binary, plugin.package, sources / plugin.folder, ldflags=ldflags)
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"dev: building {plugin.binary} failed (go build exit {code})", file=sys.stderr)
        return code
    for name in plugin.beside:
        shutil.copy(sources / plugin.folder / name, staging / name)
        (staging / name).chmod(0o755)
    staging.rename(target)
    print(f"dev: built {plugin.binary} in {time.monotonic() - began:.0f}s ({target})", file=sys.stderr)
    return 0


def build_plugins(go: str) -> int:
    sources = third_party()
    if sources is None:
        print(
            "dev: ../shared/third_party not found: the language hosts and the command provider are not built; "
            "the real-engine tests use them from PATH (a Pulumi install) or skip",
            file=sys.stderr,
        )
        return 0
    for plugin in PLUGINS:
        code = build_plugin(plugin, go, sources)
        if code != 0:
            return code
    return 0


@contextmanager
def build_lock() -> Iterator[None]:
    """The one build lock: helpers and CI may run ./dev at once; one builds, the others wait and reuse."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_cli(go: str) -> int:
    """Build the pulumi CLI into its cache folder (the caller holds the lock); 0 when it is there."""
    target = bin_dir(go)
    assert target is not None
    version = pinned_version()
    if (target / "pulumi").is_file():
        print(f"dev: pulumi {version} (cached in {target})", file=sys.stderr)
        return 0
    print(f"dev: building pulumi {version} from Go modules with {go} into {target} (once per pin; slow)", file=sys.stderr)
    began = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=cache_root()))
    code = go_build(staging / "pulumi", CLI_PACKAGE, HERE, ldflags=f"-s -w -X {VERSION_VARIABLE}={version}")
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"dev: building pulumi {version} failed (go build exit {code})", file=sys.stderr)
        return code
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    size = _dir_size(target) / 2**20
    print(f"dev: built pulumi {version} in {time.monotonic() - began:.0f}s ({size:.0f} MiB in {target})", file=sys.stderr)
    return 0


def build() -> int:
    go = go_version()
    if go is None:
        print("dev: go not found: the real-engine tests will be skipped (install Go to run them)", file=sys.stderr)
        return 0
    with build_lock():
        return build_cli(go) or build_plugins(go)


if __name__ == "__main__":
    sys.exit(build())
