"""The configured stack files, each text parsed once while it stays the same (fleet/declared.py reads the declared side from them or from the state)."""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from redisguard.core.errors import RedisguardError
from redisguard.core.files import names_in, stat_signature
from redisguard.daemon.config import RedisguardConfig, SourceName
from redisguard.program.config import StackConfig, StackConfigError, parse_stack_file, read_stack_text


@dataclass(frozen=True)
class StackFileRead:
    """One configured stack's file as read: its config, or why there is none (stack_edit.StackFile is the editable one)."""

    name: str
    path: Path
    stack: StackConfig | None
    error: StackConfigError | None
    """The file's problems; None with no `stack`: the file does not exist."""
    load_seconds: float

    @property
    def problem(self) -> str | None:
        """Why the file gives no config, as the reports show it; None when it does."""
        if self.stack is not None:
            return None
        return str(self.error) if self.error is not None else f"{self.path}: stack file not found"


# (path, key, required) -> the file's stat and text last parsed, and what parsing gave.
_parsed: dict[tuple[str, str, bool], tuple[tuple[int, ...] | None, str, StackConfig | None, StackConfigError | None]] = {}
_parsed_lock = threading.Lock()
# (work_dir, stack) -> its stack file's path, and the path, folder and name as text (a Path's hash
# is worked out again each time it is asked).
_stack_files: dict[tuple[Path, str], tuple[Path, str, str, str]] = {}


def read_stack_files(config: RedisguardConfig) -> list[StackFileRead]:
    """Every stack of pulumi.stacks, in that order, with its file read (never raising for a bad one).

    The daemon's checks call this on every run, so an edit is seen at the next run. A file whose
    stat (core/files.stat_signature) or else text is what was parsed last time is not parsed again:
    a 250-cluster file takes about 30 ms to parse and validate, a stat a few microseconds (and every
    scan reads every stack's file).
    """
    files: list[StackFileRead] = []
    key = config.pulumi.config_key
    work_dir = config.pulumi.work_dir
    # The folders' names: a stack without a file (read from its state) costs no failed stat.
    folders: dict[str, frozenset[str] | None] = {}
    for name in config.pulumi.stacks:
        known = _stack_files.get((work_dir, name))
        if known is None:
            path = config.pulumi.stack_file(name)
            known = _stack_files[(work_dir, name)] = (path, str(path), str(path.parent), path.name)
        path, text_path, folder, file_name = known
        started = time.monotonic()
        # Only a stack whose source is the config must have the key (fleet/declared.py chooses).
        required = config.pulumi.source_of(name) in ("config", "both")
        names = folders[folder] if folder in folders else folders.setdefault(folder, names_in(folder))
        if names is not None and file_name not in names:
            stack, error = None, None
        else:
            stack, error = _parse(path, text_path, key, required)
        files.append(StackFileRead(name, path, stack, error, time.monotonic() - started))
    return files


def _parse(path: Path, text_path: str, key: str, required: bool) -> tuple[StackConfig | None, StackConfigError | None]:
    """The file's config or its problems; (None, None) when it does not exist (not a regular file)."""
    try:
        found = os.stat(text_path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError:
        signature = None  # read_stack_text says why it cannot be read
    else:
        if not stat.S_ISREG(found.st_mode):
            return None, None
        signature = stat_signature(found)
    with _parsed_lock:
        cached = _parsed.get((text_path, key, required))
    if cached is not None and signature is not None and cached[0] == signature:
        return cached[2], cached[3]
    try:
        text = read_stack_text(path)
    except StackConfigError as exc:
        return None, exc
    if cached is not None and cached[1] == text:
        stack, error = cached[2], cached[3]
    else:
        stack, error = None, None
        try:
            stack = parse_stack_file(text, path, key=key, required=required)
        except StackConfigError as exc:
            error = exc
    with _parsed_lock:
        _parsed[(text_path, key, required)] = (signature, text, stack, error)
    return stack, error


def choose_source(config: RedisguardConfig, file: StackFileRead) -> tuple[SourceName, str]:
    """The source of one stack and why, as check-config shows it."""
    chosen = config.pulumi.source_of(file.name)
    key = config.pulumi.config_key
    overridden = file.name in config.pulumi.stack_sources
    setting = f"pulumi.stack_sources.{file.name}" if overridden else "pulumi.source"
    if chosen != "auto":
        return chosen, f"{setting} is {chosen}"
    if file.stack is not None and file.stack.has_key:
        return "config", f"auto: {file.path.name} has {key}"
    if file.stack is None and file.error is not None:
        # The file is there but broken: whether it has the key cannot be told; its problems are
        # the answer (config), rather than silently switching this stack to another source.
        return "config", f"auto: {file.path.name} cannot be read"
    return "state", f"auto: {file.path.name} {'has no ' + key if file.stack is not None else 'does not exist'}"


def with_fallback_context(config: RedisguardConfig, file: StackFileRead, error: RedisguardError) -> RedisguardError:
    """A state read's failure for a stack whose file is missing, said as such when `auto` chose the
    state only because the file is not there (most often a stack name or work_dir to fix)."""
    if config.pulumi.source_of(file.name) != "auto" or file.stack is not None or file.error is not None:
        return error
    return type(error)(
        f"pulumi.stacks: {file.name!r} has no stack file {file.path}, so its deployed state was read "
        f"(pulumi.source auto) and that failed: {error}"
    )
