"""The check protocol: a named check over targets, run with a cancel token, each target's result published as soon as it is known.

A check (`drift_pulumi`, `drift_live`, `memory`) says what its targets are (stack names, project
ids) and turns a selection of them into one job per target; `run_check` / `run_jobs` run the jobs
on a bounded set of threads. A failing target is a result too (`Job.failed`), never an exception
that hides the other targets' results; an exception nobody expected is logged once with its
traceback and becomes that target's failure.

Cancellation is per run: the caller passes a `CancelToken` and may cancel it from any thread
(Ctrl-C in the CLI, a daemon shutting down). Queued jobs then never start, running ones stop at
their next check of the token (a pulumi CLI is killed), and the next run, with a new token, runs
normally.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from redisguard.core.errors import Cancelled, PermanentError, RedisguardError
from redisguard.core.threads import run_on_daemon_threads

log = logging.getLogger(__name__)

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# After a cancel from a signal, how long the caller's thread waits for running jobs to finish
# their clean-up (a pulumi CLI's SIGTERM, then SIGKILL after a grace) before it goes on.
CANCEL_JOIN_SECONDS = 2.0


class CancelToken:
    """Cancels one run from any thread; callbacks registered by running jobs fire once, at cancel."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._next_id = 0

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel the run; every registered callback runs now, on this thread. Idempotent."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one failing clean-up must not skip the others
                log.error("a cancel callback failed", exc_info=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for a cancel; True when cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the run was cancelled")

    @contextlib.contextmanager
    def on_cancel(self, callback: Callable[[], object]) -> Iterator[None]:
        """Run `callback` (its result is ignored) if the run is cancelled while the block runs (at once if it already is)."""
        with self._lock:
            already = self._event.is_set()
            key = self._next_id
            self._next_id += 1
            if not already:
                self._callbacks[key] = callback
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.pop(key, None)


@dataclass(frozen=True)
class Job(Generic[R_co]):
    """One target of one check: `run` gives its result (or raises a RedisguardError), `failed`
    turns an error and the seconds spent into the target's failure result."""

    check: str
    target: str
    run: Callable[[], R_co]
    failed: Callable[[RedisguardError, float], R_co]
    inline: bool = False
    """The job does no I/O of its own (what it reads is at hand; it may wait for what the run
    shares, such as a listing on another thread): it runs on the calling thread, without a worker
    thread's start and hand-overs. `parallelism` bounds the worker threads, which run the others."""


class Check(Protocol[R_co]):
    """A check the CLI and the daemon run: `name` is its schedule key, `targets` what it checks by default."""

    @property
    def name(self) -> str: ...

    @property
    def targets(self) -> tuple[str, ...]: ...

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> Sequence[Job[R_co]]:
        """One job per target; whatever the targets share in one run (a listing, the stack files) is set up here."""
        ...


def run_check(
    check: Check[R],
    cancel: CancelToken,
    *,
    targets: Sequence[str] | None = None,
    parallelism: int = 1,
    publish: Callable[[R], None] | None = None,
) -> list[R]:
    """Run a check over `targets` (default: all of its targets); see run_jobs."""
    return run_jobs(check.jobs(check.targets if targets is None else targets, cancel), cancel, parallelism=parallelism, publish=publish)


def run_jobs(
    jobs: Sequence[Job[R]],
    cancel: CancelToken,
    *,
    parallelism: int = 1,
    publish: Callable[[R], None] | None = None,
) -> list[R]:
    """Run the jobs on at most `parallelism` threads (the inline ones on the calling thread); results
    in job order, each passed to `publish` (on the job's thread) as soon as it is known.

    After a cancel the jobs that did not finish have no result. The workers are daemon threads
    (core/threads.py says why): a signal that interrupts the wait here cancels the run, gives
    running jobs a moment to clean up (kill their CLIs) and goes on.
    """
    if not jobs:
        return []
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    inline = [index for index, job in enumerate(jobs) if job.inline]
    for index, job in enumerate(jobs):
        if not job.inline:
            pending.put(index)
    results: list[tuple[R] | None] = [None] * len(jobs)

    def finish(index: int) -> None:
        result = _run_one(jobs[index], cancel)
        if result is None:
            return
        results[index] = result
        if publish is not None:
            try:
                publish(result[0])
            except Exception:  # noqa: BLE001 - a failing subscriber must not lose the other results
                log.error("publishing a result failed check=%s target=%s", jobs[index].check, jobs[index].target, exc_info=True)

    def worker() -> None:
        while not cancel.cancelled:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            finish(index)

    def here() -> None:
        for index in inline:
            if cancel.cancelled:
                return
            finish(index)

    pooled = len(jobs) - len(inline)
    workers = max(1, min(parallelism, pooled)) if pooled else 0
    run_on_daemon_threads(
        [worker] * workers,
        names=[f"check-{jobs[0].check}-{n}" for n in range(workers)],
        on_interrupt=cancel.cancel,
        interrupt_grace_seconds=CANCEL_JOIN_SECONDS,
        on_this_thread=here if inline else None,
    )
    return [r[0] for r in results if r is not None]


def _run_one(job: Job[R], cancel: CancelToken) -> tuple[R] | None:
    """The job's result (a 1-tuple, so a None result stays a result), or None when it was cancelled."""
    started = time.monotonic()
    try:
        cancel.raise_if_cancelled()
        return (job.run(),)
    except Cancelled:
        if cancel.cancelled:
            return None
        return (job.failed(Cancelled("cancelled"), time.monotonic() - started),)
    except RedisguardError as exc:
        return (job.failed(exc, time.monotonic() - started),)
    except Exception as exc:  # noqa: BLE001 - one broken target must not hide the others' results
        log.error("check failed unexpectedly check=%s target=%s", job.check, job.target, exc_info=True)
        error = PermanentError(f"unexpected {type(exc).__name__}: {exc}")
        return (job.failed(error, time.monotonic() - started),)
