"""The latest published result of every (check, target): the one place /metrics, /healthz and /report read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from redisguard.core.errors import ErrorKind


class TargetResult(Protocol):
    """What every check's per-target result model has (StackReport, ProjectMemoryReport)."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    @property
    def duration_seconds(self) -> float: ...

    def log_fields(self) -> Mapping[str, Any]:
        """Fields the `check finished` log line adds to the status (what drifted, what crossed a threshold)."""
        ...


@dataclass(frozen=True)
class TargetState:
    """One target of one check as last published.

    `result` is the latest run's model; when that run failed it is the failed report (its error
    says why) and the figures of the last good run are gone: a failing check never shows stale
    values as current (check_up 0 says the target is unknown right now).
    """

    check: str
    target: str
    result: Any
    finished_at: float
    """Wall-clock time the latest run of this target finished (time.time())."""
    last_success_at: float | None
    failures_total: int

    @property
    def ok(self) -> bool:
        return self.result.status != "error"

    @property
    def error(self) -> str | None:
        return None if self.ok else (self.result.error or "failed without a message")


Key = tuple[str, str]


@dataclass(frozen=True)
class CheckFailure:
    """A target's failure when its check could not even make a result model for it (the check's
    set-up raised, or it ended without this target's result)."""

    error: str
    duration_seconds: float
    error_kind: ErrorKind = "permanent"
    """What the failure was (core.errors.error_kind): a report built from it says the same."""
    status: str = "error"

    def log_fields(self) -> Mapping[str, Any]:
        return {}


class Results:
    """Snapshots of the latest results, replaced whole on every publish (copy on write).

    A reader (a scrape, /healthz) takes `snapshot()` — one attribute read, no lock, never
    waiting for a check — and sees one consistent mapping. Publishing is rare (once per target
    per run), so copying a few thousand entries is cheap next to the check itself.
    """

    def __init__(self, listeners: Iterable[Callable[[TargetState], None]] = ()) -> None:
        self._lock = threading.Lock()
        self._states: Mapping[Key, TargetState] = {}
        # Called with every published state, after it is visible (the status page's usage history).
        self._listeners = tuple(listeners)

    def snapshot(self) -> Mapping[Key, TargetState]:
        return self._states

    def publish(self, check: str, target: str, result: TargetResult, *, now: float | None = None) -> TargetState:
        """Record a target's result as soon as it is known; counts a failure, remembers the last success."""
        finished = time.time() if now is None else now
        with self._lock:
            previous = self._states.get((check, target))
            failed = result.status == "error"
            state = TargetState(
                check=check,
                target=target,
                result=result,
                finished_at=finished,
                last_success_at=(previous.last_success_at if previous else None) if failed else finished,
                failures_total=(previous.failures_total if previous else 0) + (1 if failed else 0),
            )
            states = dict(self._states)
            states[(check, target)] = state
            self._states = states
        for listener in self._listeners:
            listener(state)
        return state

    def retain(self, check: str, targets: Iterable[str] | None) -> None:
        """Forget the targets of `check` not in `targets` (None: forget the check): a stack or
        project removed from the config (or a check turned off) disappears at the next scrape."""
        keep = None if targets is None else set(targets)
        with self._lock:
            self._states = {
                key: state for key, state in self._states.items() if key[0] != check or (keep is not None and key[1] in keep)
            }
