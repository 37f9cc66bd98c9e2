"""Calls run on daemon threads, and a wait for them that a signal can interrupt: how the checks, the scheduler and `daemon --once` run work side by side.

Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C, SIGTERM or a shutdown, an executor
(and the interpreter's exit, which joins its workers) waits for every running call, and an API
call can hang for its whole timeout. A daemon thread still running then is left behind.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


def start_daemon_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """`target` started on a daemon thread called `name` (the name logs and tracebacks show)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def run_on_daemon_threads(
    calls: Sequence[Callable[[], T]],
    *,
    names: str | Sequence[str],
    on_interrupt: Callable[[], object] | None = None,
    interrupt_grace_seconds: float = 0.0,
    on_this_thread: Callable[[], object] | None = None,
) -> list[T]:
    """Each call on its own daemon thread (`names`: one name for all, or one per call); once every
    call has ended, their results in call order, or the first failure in call order raised.

    Waiting for every call, not just the first failure: a failed call's siblings would otherwise go
    on after the caller has moved on, and overlap its next round of calls.

    The wait can be interrupted: a signal handler may raise here (KeyboardInterrupt, the SystemExit
    of core/signals.py) when this runs on the main thread. Then `on_interrupt` runs (a cancel, so
    the calls stop early), the calls get up to `interrupt_grace_seconds` to end (to kill their
    child processes), and the exception goes on; calls still running are left behind.

    `on_this_thread` runs on the calling thread once the calls have started, before the wait
    (whatever it raises is handled as an interruption of the wait).
    """
    outcomes: list[tuple[T] | BaseException | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            outcomes[index] = (call(),)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            outcomes[index] = exc

    per_call = [names] * len(calls) if isinstance(names, str) else list(names)
    threads = [
        start_daemon_thread(functools.partial(run, index, call), name)
        for index, (call, name) in enumerate(zip(calls, per_call, strict=True))
    ]
    try:
        if on_this_thread is not None:
            on_this_thread()
        for thread in threads:
            thread.join()  # interruptible: a signal handler runs and may raise here
    except BaseException:
        if on_interrupt is not None:
            on_interrupt()
        deadline = time.monotonic() + interrupt_grace_seconds
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise
    results = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None  # every thread has ended, so each wrote its outcome
        results.append(outcome[0])
    return results


K = TypeVar("K")


class ComputedOnce(Generic[K, T]):
    """Values computed at most once per key, by whichever thread asks first; the others wait for
    it (and get its exception, too). What the checks of one run share: a project's listing, a
    stack's declared side, read once however many stacks need them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[T]] = {}
        # The values computed so far: what most asks find, read without the lock and the future.
        self._values: dict[K, T] = {}

    def known(self, key: K, value: T) -> T:
        """`value` as the key's, unless a thread has asked for the key already (then the value it computes)."""
        with self._lock:
            if key not in self._futures:
                return self._values.setdefault(key, value)
        return self.get(key, lambda: value)

    def started(self, key: K) -> bool:
        """Whether some thread has asked for `key` (its value may still be being computed)."""
        # No lock: keys are never removed, so a True is final, and a False the caller acts on is
        # settled by get(), which computes each key once whoever else asked meanwhile.
        return key in self._values or key in self._futures

    def get(self, key: K, compute: Callable[[], T]) -> T:
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key in self._values:  # made known meanwhile
                return self._values[key]
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = self._futures[key] = Future()
        assert future is not None
        if owner:
            try:
                value = compute()
            except BaseException as exc:  # noqa: BLE001 - every waiter gets it from result()
                future.set_exception(exc)
            else:
                self._values[key] = value
                future.set_result(value)
        return future.result()
