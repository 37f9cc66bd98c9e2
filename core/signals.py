"""Signals that stop a process: the exit status one gives, SIGTERM unwinding a command as Ctrl-C does, and a server's main thread waiting for signals outside any handler."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator


def exit_status(signum: int) -> int:
    """The exit status of a command a signal stopped: 128 + the signal's number (130 for SIGINT,
    143 for SIGTERM), as a shell reports a process the signal killed."""
    return 128 + signum


class Signalled(SystemExit):
    """A signal `exit_on` handles, raised on the main thread; the process exits with its exit status."""

    def __init__(self, signum: int) -> None:
        super().__init__(exit_status(signum))
        self.signal = signal.Signals(signum)


@contextlib.contextmanager
def exit_on(*signals: signal.Signals, before_exit: Callable[[], object] | None = None) -> Iterator[None]:
    """While the block runs, each of `signals` raises Signalled on the main thread, wherever it
    waits: `finally` blocks run (a scan kills its pulumi CLIs, the demo stops its emulator; the
    default action of SIGTERM would end the process on the spot), and the status says which signal
    stopped the command, never 0, which a CI job would read as "all fine".

    The handler first ignores that signal from then on (a second SIGTERM must not cut the clean-up
    short), then runs `before_exit`. Off the main thread, where no handler can be set, the block
    runs with the signals' handling unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum: int, _frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)
        if before_exit is not None:
            before_exit()
        raise Signalled(signum)

    previous = {sig: signal.signal(sig, unwind) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def catch_signals(*signals: signal.Signals) -> Iterator[Callable[[], signal.Signals]]:
    """While the block runs, `signals` only wake the main thread: yields `next_signal()`, which
    blocks until one of them arrives and returns it (in arrival order), for the caller to act on.

    The handlers do nothing: the C-level handler writes the signal's number to a wakeup fd and the
    caller acts on it outside any handler, so a stop or a reload never runs inside a handler that
    may have interrupted a thread holding the lock it needs. Main thread only (signal handlers).
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in signals}
    arrived: list[int] = []

    def next_signal() -> signal.Signals:
        while not arrived:
            arrived.extend(signum for signum in os.read(read_fd, 16) if signum in signals)
        return signal.Signals(arrived.pop(0))

    try:
        yield next_signal
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(read_fd)
        os.close(write_fd)
