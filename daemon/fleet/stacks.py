"""What is declared: the configured stack files (each text parsed once), and which stack declares or watches an instance."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.errors import ConfigError
from redisguard.daemon.config import RedisguardConfig
from redisguard.program.config import StackConfig, StackConfigError, parse_stack_file, read_stack_text

if TYPE_CHECKING:
    from redisguard.daemon.fleet.inventory import LiveKey


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


# path -> the text last parsed, and what parsing gave.
_parsed: dict[Path, tuple[str, StackConfig | None, StackConfigError | None]] = {}
_parsed_lock = threading.Lock()


def read_stack_files(config: RedisguardConfig) -> list[StackFileRead]:
    """Every stack of pulumi.stacks, in that order, with its file read (never raising for a bad one).

    The daemon's checks call this on every run, so an edit is seen at the next run. A file whose
    text is what was parsed last time is not parsed again: a 250-cluster file takes about 30 ms
    to parse and validate, reading and comparing its text a fraction of a millisecond.
    """
    files: list[StackFileRead] = []
    for name in config.pulumi.stacks:
        path = config.pulumi.stack_file(name)
        started = time.monotonic()
        stack, error = _parse(path) if path.is_file() else (None, None)
        files.append(StackFileRead(name, path, stack, error, time.monotonic() - started))
    return files


def _parse(path: Path) -> tuple[StackConfig | None, StackConfigError | None]:
    try:
        text = read_stack_text(path)
    except StackConfigError as exc:
        return None, exc
    with _parsed_lock:
        cached = _parsed.get(path)
    if cached is not None and cached[0] == text:
        return cached[1], cached[2]
    stack: StackConfig | None = None
    error: StackConfigError | None = None
    try:
        stack = parse_stack_file(text, path)
    except StackConfigError as exc:
        error = exc
    with _parsed_lock:
        _parsed[path] = (text, stack, error)
    return stack, error


def load_stacks(config: RedisguardConfig, purpose: str) -> dict[str, StackConfig]:
    """Every configured stack's file; ConfigError listing each one that cannot be read (which instances
    are unmanaged would be guesswork). `purpose` names the command in the message."""
    files = read_stack_files(config)
    problems = [f.problem for f in files if f.problem is not None]
    if problems:
        raise ConfigError(f"{purpose} needs every stack file to tell managed from unmanaged instances:\n" + "\n".join(problems))
    return {f.name: f.stack for f in files if f.stack is not None}


# --- which stack declares or watches an instance -------------------------------------------------


def watches(stack: StackConfig, key: LiveKey) -> bool:
    """Whether the instance is where the stack's clusters are: its project, and its region when it sets one."""
    return stack.project == key.project and (stack.region is None or stack.region == key.region)


def declares(stack: StackConfig, key: LiveKey) -> bool:
    """Whether the stack declares the instance: it watches where the instance is, and has a cluster of its id."""
    return watches(stack, key) and any(c.name == key.instance_id for c in stack.clusters)


def owner_of(stacks: Mapping[str, StackConfig], key: LiveKey) -> str:
    """The name of the stack that declares the instance, "" when none does."""
    for name, stack in stacks.items():
        if declares(stack, key):
            return name
    return ""


def watching(stacks: Mapping[str, StackConfig], key: LiveKey) -> list[str]:
    """The names of the stacks that watch where the instance is (whether or not one declares it)."""
    return [name for name, stack in stacks.items() if watches(stack, key)]


def unmanaged_owners(stacks: Iterable[tuple[str, StackConfig]]) -> dict[str, str]:
    """For each project, the name of the first stack that watches it: that stack alone reports the
    project's unmanaged instances, so two stacks in one project do not report them twice."""
    owners: dict[str, str] = {}
    for name, stack in stacks:
        if stack.project and stack.project not in owners:
            owners[stack.project] = name
    return owners
