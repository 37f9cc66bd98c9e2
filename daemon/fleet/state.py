"""A stack's deployed state, read as a user reads it (`pulumi stack export`, never `--show-secrets`), for any program in any language.

The export is the checkpoint the backend holds (file://, gs://, s3://, azblob:// or Pulumi Cloud,
whatever the CLI supports): every resource with its inputs and outputs, secret values still the
engine's encrypted secret objects. Reading it needs the `pulumi` CLI and the backend's credentials,
never a provider plugin, a language host or the stack's passphrase.

Each read is cached in this process by the stack's version. On a file:// backend the version is the
checkpoint file's stat (Pulumi's DIY layout, pulumi/pkg/backend/diy/store.go), so an unchanged stack
is not exported again. The other backends offer no cheap probe the CLI exposes: their stacks are
exported on every read (one CLI run each, the cost docs/deployment.md names).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from redisguard.core.errors import ConfigError, PermanentError, TransientError
from redisguard.core.files import forget_listings, names_in, stat_signature
from redisguard.core.processes import die_with_parent_argv, kill_group
from redisguard.core.pulumi import resource_name
from redisguard.core.secrets import redact_url, scrub, secret_values
from redisguard.core.validation import load_yaml
from redisguard.daemon.config import PulumiSettings

T = TypeVar("T")

log = logging.getLogger(__name__)

# The deployment schema versions whose resources have the shape read here (apitype.DeploymentV3;
# V4 adds fields, none removed).
SUPPORTED_DEPLOYMENT_VERSIONS = (3, 4)
# What the CLI's stack file variants are called in a DIY backend (diy/state.go stackPath: the
# most recently written of the three is the checkpoint).
_CHECKPOINT_SUFFIXES = (".json", ".json.gz", ".json.zst")
# On a timeout: how long the CLI gets to exit on SIGTERM before its group is SIGKILLed.
_KILL_GRACE_SECONDS = 5.0
# `pulumi stack ls` for a "did you mean" after an unknown stack: a hint, so a short limit.
_LIST_TIMEOUT_SECONDS = 20.0
_INSTALL_HINT = "install it (https://www.pulumi.com/docs/install/) on the host that runs redisguard"


@dataclass(frozen=True)
class StateResource:
    """One resource of a deployment, as the checkpoint holds it."""

    urn: str
    type: str
    """The resource type token, e.g. core.pulumi.INSTANCE_TYPE ("gcp:redis/instance:Instance")."""
    id: str | None
    """The provider's id (e.g. projects/P/locations/R/instances/NAME); None for a component."""
    inputs: Mapping[str, Any]
    """As in the checkpoint: camelCase keys; secret values stay the engine's encrypted secret objects."""
    outputs: Mapping[str, Any]
    parent: str | None
    provider: str | None
    """The provider reference, "<provider urn>::<provider id>"."""
    protect: bool = False
    """`protect: true` in the program (the engine refuses to delete it)."""

    @property
    def name(self) -> str:
        """The logical name, the URN's last segment."""
        return resource_name(self.urn)

    @property
    def project(self) -> str:
        """The Pulumi project the URN names (`urn:pulumi:<stack>::<project>::...`)."""
        parts = self.urn.split("::")
        return parts[1] if len(parts) > 2 else ""


@dataclass(frozen=True)
class StackState:
    """A stack's deployment: every resource (callers filter by type), and the version it was read at."""

    stack: str
    version: str
    """What the cache is keyed on: the checkpoint file's path, mtime and size on a file:// backend,
    else a digest of the export."""
    resources: tuple[StateResource, ...]
    cached: bool
    """True when this read did not run the CLI (the version had not changed)."""

    def of_type(self, type_: str) -> list[StateResource]:
        return [r for r in self.resources if r.type == type_]


# --- the export document ----------------------------------------------------------------------


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_export(text: str | bytes, *, stack: str, source: str) -> StackState:
    """A `pulumi stack export` document (what `--file` writes) as a StackState (not cached, version
    its digest). `source` names where it came from in errors (a file, "the export of stack S"):
    ConfigError for a document that is not a deployment; never a value from it in the message."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"{source}: not a Pulumi deployment export: not valid JSON{where}") from None
    return _from_document(document, stack=stack, source=source, version=_digest(text))


def _digest(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()[:32]


def _from_document(document: Any, *, stack: str, source: str, version: str) -> StackState:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{source}: not a Pulumi deployment export: {problem}")

    if not isinstance(document, Mapping):
        raise bad("the document is not a JSON object (expected {\"version\": 3, \"deployment\": {...}})")
    schema = document.get("version")
    if schema not in SUPPORTED_DEPLOYMENT_VERSIONS:
        allowed = ", ".join(map(str, SUPPORTED_DEPLOYMENT_VERSIONS))
        found = "missing" if schema is None else json.dumps(schema) if isinstance(schema, (int, str)) else "not a number"
        raise bad(f"key 'version' is {found}; supported deployment versions: {allowed}")
    deployment = document.get("deployment")
    if not isinstance(deployment, Mapping):
        raise bad("key 'deployment' is missing or not an object")
    raw_resources = deployment.get("resources")
    if raw_resources is None:  # a stack with nothing deployed
        raw_resources = []
    if not isinstance(raw_resources, list):
        raise bad("key 'deployment.resources' is not a list")
    resources: list[StateResource] = []
    problems: list[str] = []
    for index, raw in enumerate(raw_resources):
        where = f"deployment.resources[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where} is not an object")
            continue
        urn, type_ = raw.get("urn"), raw.get("type")
        if not isinstance(urn, str) or not urn.startswith("urn:pulumi:"):
            problems.append(f"{where}.urn is missing or not a Pulumi URN")
            continue
        if not isinstance(type_, str) or not type_:
            problems.append(f"{where}.type is missing or not a string")
            continue
        inputs, outputs = raw.get("inputs"), raw.get("outputs")
        inputs, outputs = {} if inputs is None else inputs, {} if outputs is None else outputs
        if not isinstance(inputs, Mapping) or not isinstance(outputs, Mapping):
            problems.append(f"{where}: inputs and outputs must be objects")
            continue
        if raw.get("delete") is True:
            # The old copy of a replaced resource, waiting to be deleted: not what is deployed.
            continue
        resources.append(
            StateResource(
                urn=urn,
                type=type_,
                id=_optional_str(raw.get("id")),
                inputs=MappingProxyType(dict(inputs)),
                outputs=MappingProxyType(dict(outputs)),
                parent=_optional_str(raw.get("parent")),
                provider=_optional_str(raw.get("provider")),
                protect=raw.get("protect") is True,
            )
        )
    if problems:
        shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise bad("; ".join(shown))
    return StackState(stack=stack, version=version, resources=tuple(resources), cached=False)


def read_export_file(path: Path) -> StackState:
    """A file `pulumi stack export --file` wrote, its stack named by its resources' URNs (the file's
    stem when it has none). ConfigError naming the file when it cannot be read or is not an export."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the state file: {exc.strerror or exc}") from None
    state = parse_export(data, stack=path.stem, source=str(path))
    stacks = {r.urn.removeprefix("urn:pulumi:").split("::", 1)[0] for r in state.resources}
    return dataclasses.replace(state, stack=stacks.pop()) if len(stacks) == 1 else state


# --- the CLI run ----------------------------------------------------------------------------


def workspace_env(settings: PulumiSettings) -> dict[str, str]:
    """Environment for the CLI: the backend from config. Credentials (PULUMI_ACCESS_TOKEN,
    PULUMI_CONFIG_PASSPHRASE, Google credentials) pass through from our own environment."""
    env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
    if settings.backend_url:
        env["PULUMI_BACKEND_URL"] = settings.backend_url
    return env


# Within one_look(): each shared path's stat (or the error it raised), looked at once.
_looked: ContextVar[dict[str, os.stat_result | OSError] | None] = ContextVar("looked", default=None)
# Within one_look(): what was worked out from those stats (a folder's names, the project file).
_worked_out: ContextVar[dict[tuple[str, object], Any] | None] = ContextVar("worked_out", default=None)


@contextmanager
def one_look() -> Iterator[None]:
    """Within it, the files every stack of a backend shares (its stack folders, meta.yaml, the
    project's Pulumi.yaml) are looked at once, not once per stack: a scan that reads many stacks in a
    row sees the backend as it was when it began, and a change after that is seen by the next scan.
    Each stack's own checkpoint is still looked at for that stack."""
    token, worked_out = _looked.set({}), _worked_out.set({})
    try:
        yield
    finally:
        _worked_out.reset(worked_out)
        _looked.reset(token)


def _once_per_look(key: tuple[str, object], compute: Callable[[], T]) -> T:
    """compute(), once per one_look() (each time outside one)."""
    worked_out = _worked_out.get()
    if worked_out is None:
        return compute()
    try:
        return cast(T, worked_out[key])
    except KeyError:
        value = worked_out[key] = compute()
        return value


def _shared_stat(path: str) -> os.stat_result:
    """os.stat(path), once per one_look()."""
    looked = _looked.get()
    if looked is None:
        return os.stat(path)
    found = looked.get(path)
    if found is None:
        try:
            found = os.stat(path)
        except OSError as exc:
            found = exc
        looked[path] = found
    if isinstance(found, OSError):
        # A new error each time: raising one instance again would grow its traceback.
        raise type(found)(found.errno, found.strerror, found.filename)
    return found


# work_dir -> the Pulumi.yaml last parsed: its name, stat signature and text, and what parsing gave.
_projects: dict[Path, tuple[str, tuple[int, int, int, int] | None, str, Mapping[str, Any]]] = {}


def _project_file(work_dir: Path) -> Mapping[str, Any] | None:
    """`work_dir`'s Pulumi.yaml (the project the CLI runs in), None without one; {} when it cannot be
    parsed (the CLI then says why). Parsed again only when it changed (core/files.stat_signature, else
    its text): every stack of a scan asks, and a YAML parse costs more than the rest of a cached read."""
    return _once_per_look(("project", work_dir), lambda: _read_project_file(work_dir))


def _read_project_file(work_dir: Path) -> Mapping[str, Any] | None:
    for name in ("Pulumi.yaml", "Pulumi.yml"):
        path = os.path.join(work_dir, name)
        try:
            signature = stat_signature(_shared_stat(path))
        except OSError:
            continue
        last = _projects.get(work_dir)
        if last is not None and signature is not None and last[:2] == (name, signature):
            return last[3]
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError:
            continue
        if last is not None and last[0] == name and last[2] == text:
            project = last[3]
        else:
            try:
                loaded = load_yaml(text)
                project = loaded if isinstance(loaded, Mapping) else {}
            except ConfigError:
                project = {}
        _projects[work_dir] = (name, signature, text, project)
        return project
    _projects.pop(work_dir, None)
    return None


def _first_error_line(stderr: str) -> str:
    """The CLI's own `error:` line (one line), else its last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return re.sub(r"\s+", " ", line[len("error:") :].strip())[:300]
    return lines[-1][:300] if lines else "pulumi failed without a message"


def _run(pulumi: str, args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """`pulumi ARGS` in its own process group, killed whole at `timeout` (subprocess.TimeoutExpired)."""
    with subprocess.Popen(
        # SIGKILLed when this process dies, however it dies: no CLI outlives us.
        die_with_parent_argv([pulumi, *args, "--non-interactive", "--color", "never"]),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process, _KILL_GRACE_SECONDS)
            process.communicate()
            raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


@dataclass(frozen=True)
class _Invocation:
    pulumi: str
    cwd: Path
    env: dict[str, str]
    secrets: tuple[str, ...]
    settings: PulumiSettings


def _stack_names(call: _Invocation) -> list[str]:
    """The backend's stack names for a "did you mean" ([] when listing fails: it is only a hint)."""
    try:
        done = _run(call.pulumi, ["stack", "ls", "--json"], call.cwd, call.env, _LIST_TIMEOUT_SECONDS)
        listed = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return [str(s["name"]) for s in listed if isinstance(s, Mapping) and "name" in s] if isinstance(listed, list) else []


def _export_error(call: _Invocation, stack: str, stderr: str, has_project: bool) -> Exception:
    line = scrub(_first_error_line(stderr), call.secrets)
    lowered = line.lower()
    backend = redact_url(call.settings.backend_url) if call.settings.backend_url else "the CLI's current login"
    if "no pulumi.yaml project file found" in lowered or ("fully qualified" in lowered and not has_project):
        return ConfigError(
            f"stack {stack!r}: {call.settings.work_dir} holds no Pulumi.yaml, so the stack must be named in full "
            f"as org/project/stack (for a DIY backend, organization/<project>/{stack}) in pulumi.stacks; pulumi said: {line}"
        )
    if re.search(r"no stack named|stack .* not found|could not find stack|stack not found", lowered):
        names = _stack_names(call)
        short = stack.rsplit("/", 1)[-1]
        close = difflib.get_close_matches(short, [n.rsplit("/", 1)[-1] for n in names], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else (f"; the backend has {', '.join(names)}" if names else "")
        return PermanentError(f"stack {stack!r} not found in {backend}{hint}")
    if re.search(r"pulumi login|not logged in|access token|unauthorized|401|403|forbidden|permission", lowered):
        return PermanentError(f"cannot read stack {stack!r} from {backend}: not logged in or not allowed: {line}")
    if re.search(r"timeout|timed out|connection refused|no such host|dial tcp|temporar|unavailable|50[234]|429|eof", lowered):
        return TransientError(f"cannot reach the backend {backend} for stack {stack!r}: {line}")
    return PermanentError(f"pulumi stack export --stack {stack} failed: {line}")


def _export(call: _Invocation, stack: str, timeout: float) -> bytes:
    has_project = call.cwd == call.settings.work_dir
    try:
        done = _run(call.pulumi, ["stack", "export", "--stack", stack], call.cwd, call.env, timeout)
    except subprocess.TimeoutExpired:
        raise TransientError(
            f"pulumi stack export --stack {stack} ran past {timeout:g}s; the CLI and its child processes were killed"
        ) from None
    except OSError as exc:
        raise PermanentError(f"cannot run the pulumi CLI ({call.pulumi}): {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise _export_error(call, stack, done.stderr.decode("utf-8", "replace"), has_project)
    return done.stdout


# --- the version probe and the cache ----------------------------------------------------------


def _backend_url(settings: PulumiSettings, project: Mapping[str, Any] | None) -> str | None:
    """The backend the CLI will use, where redisguard can tell without asking it (config, environment,
    the project's `backend.url`)."""
    if settings.backend_url:
        return settings.backend_url
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    backend = (project or {}).get("backend")
    return str(backend["url"]) if isinstance(backend, Mapping) and isinstance(backend.get("url"), str) else None


def _file_root(url: str | None, cwd: Path) -> Path | None:
    """A file:// backend's folder, resolved as the CLI resolves it (diy/backend.go massageBlobPath)."""
    if not url or not url.startswith("file://"):
        return None
    path = unquote(urlsplit(url).path if url.startswith("file:///") else url[len("file://") :].split("?", 1)[0])
    root = Path(path).expanduser()
    return root if root.is_absolute() else (cwd / root)


def checkpoint_candidates(root: Path, stack: str, project: str | None) -> list[Path]:
    """Where a DIY backend rooted at `root` may hold the stack's checkpoint: the project layout
    (`.pulumi/stacks/<project>/<stack>.json`, with .gz and .zst variants) and the legacy one
    (`.pulumi/stacks/<stack>.json`); diy/store.go's StackBasePath for each store version."""
    parts = stack.split("/")
    name = parts[-1]
    if len(parts) == 3:
        project = parts[1]
    stacks = root / ".pulumi" / "stacks"
    bases = ([stacks / project / name] if project else []) + [stacks / name]
    return [base.with_name(base.name + suffix) for base in bases for suffix in _CHECKPOINT_SUFFIXES]


@dataclass(frozen=True)
class _ProbePaths:
    """What the probe stats for one stack: each checkpoint candidate (checkpoint_candidates) as its
    path, folder and name, then meta.yaml."""

    candidates: tuple[tuple[str, str, str], ...]
    meta: str


# (backend URL, work_dir, stack, project) -> its _ProbePaths; None for a backend that is not file://.
_probe_paths: dict[tuple[str | None, Path, str, str | None], _ProbePaths | None] = {}


def _paths_to_probe(url: str | None, work_dir: Path, stack: str, project: str | None) -> _ProbePaths | None:
    key = (url, work_dir, stack, project)
    paths = _probe_paths.get(key)
    if paths is None and key not in _probe_paths:
        root = _file_root(url, work_dir)
        if root is not None:
            candidates = tuple((str(c), str(c.parent), c.name) for c in checkpoint_candidates(root, stack, project))
            paths = _ProbePaths(candidates, str(root / ".pulumi" / "meta.yaml"))
        if url is None or "~" not in url:  # a home folder is resolved on every read
            _probe_paths[key] = paths
    return paths


def _names_in(folder: str) -> frozenset[str] | None:
    """core/files.names_in, once per one_look()."""
    return _once_per_look(("names", folder), lambda: names_in(folder, _shared_stat))


def _probe(paths: _ProbePaths) -> str | None:
    """The stack's version from the checkpoint files' stat; None when none exists (let the CLI say why).

    Every candidate is looked at, not only the one found last time: the CLI reads the most recently
    written variant, and when its compression setting changes it writes the new variant beside the
    old one, which stays unchanged (diy/state.go saveCheckpoint). The inode and ctime are part of the
    version, so a checkpoint replaced by a copy that kept the old mtime and size is read again."""
    found = []
    for path, folder, name in paths.candidates:
        names = _names_in(folder)
        # os.access answers "not there" without raising (most candidates never exist).
        if (name not in names) if names is not None else not os.access(path, os.F_OK):
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue
        found.append(f"{path}:{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_size}")
    if not found:
        return None
    # meta.yaml decides which layout the CLI reads (diy/meta.go): a change there changes the answer.
    try:
        meta = _shared_stat(paths.meta)
        found.append(f"meta:{meta.st_ino}:{meta.st_mtime_ns}:{meta.st_ctime_ns}:{meta.st_size}")
    except OSError:
        pass
    return "|".join(found)


_cache: dict[tuple[str | None, str, str], StackState] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached export (tests; a daemon never needs to: versions do)."""
    with _cache_lock:
        _cache.clear()
        _projects.clear()
        _probe_paths.clear()
        forget_listings()


def _version(settings: PulumiSettings, stack: str) -> tuple[tuple[str | None, str, str], str | None, Mapping[str, Any] | None]:
    """The stack's cache key, its version (None: no probe, or no checkpoint found) and the project file."""
    project_file = _project_file(settings.work_dir)
    name = (project_file or {}).get("name")
    key = (settings.backend_url, _once_per_look(("absolute", settings.work_dir), lambda: str(settings.work_dir.absolute())), stack)
    url = _backend_url(settings, project_file)
    paths = _paths_to_probe(url, settings.work_dir, stack, name if isinstance(name, str) else None)
    return key, _probe(paths) if paths is not None else None, project_file


def _cached(key: tuple[str | None, str, str], version: str | None) -> StackState | None:
    if version is None:
        return None
    with _cache_lock:
        cached = _cache.get(key)
    # The same object every time while the stack is unchanged: what is derived from it
    # (fleet/declared.py's declared side) is kept with it.
    return cached if cached is not None and cached.version == version else None


def cached_stack_state(settings: PulumiSettings, stack: str) -> StackState | None:
    """What read_stack_state gives without running the CLI: the stack's cached export while its
    version is unchanged; None when reading it needs the CLI (never raising)."""
    return _cached(*_version(settings, stack)[:2])


def read_stack_state(settings: PulumiSettings, stack: str, *, timeout: float | None = None) -> StackState:
    """The stack's deployment as `pulumi stack export --stack STACK` gives it (never with
    --show-secrets), from this process's cache while its version is unchanged.

    Runs the CLI in `settings.work_dir` when it holds the project (Pulumi.yaml), else in an empty
    folder (the stack must then be org/project/stack), with PULUMI_BACKEND_URL from the config, in
    its own process group killed at `timeout` (default: pulumi.refresh_timeout_seconds).
    Raises ConfigError (the stack cannot be named from here, an export that is not a deployment),
    TransientError (timeout, backend unreachable) or PermanentError (no CLI, not logged in, stack
    not found), each one line with no secret in it.
    """
    began = time.monotonic()
    work_dir = settings.work_dir
    key, version, project_file = _version(settings, stack)
    cached = _cached(key, version)
    if cached is not None:
        return cached
    has_project = project_file is not None

    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise PermanentError(f"the pulumi CLI was not found on PATH; {_INSTALL_HINT} (reading stack {stack!r} needs it)")
    secrets = secret_values([settings.backend_url])
    env = {**os.environ, **workspace_env(settings)}
    with tempfile.TemporaryDirectory(prefix="redisguard-export-") as empty:
        cwd = work_dir if has_project else Path(empty)
        call = _Invocation(pulumi, cwd, env, secrets, settings)
        data = _export(call, stack, timeout if timeout is not None else settings.refresh_timeout_seconds)
    state = parse_export(data, stack=stack, source=f"the export of stack {stack!r}")
    if version is not None:
        state = dataclasses.replace(state, version=version)
        with _cache_lock:
            _cache[key] = dataclasses.replace(state, cached=True)
    log.debug(
        "stack export stack=%s resources=%d bytes=%d seconds=%.3f probed=%s",
        stack, len(state.resources), len(data), time.monotonic() - began, version is not None,
    )  # fmt: skip
    return state
