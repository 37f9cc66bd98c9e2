"""core/signals.py: a signal as an exit status, and the daemon's wait for signals outside any handler."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from redisguard.core.signals import Signalled, catch_signals, exit_on, exit_status


def test_sigterm_unwinds_the_block_with_its_exit_status_then_the_old_handler_is_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    cleaned: list[str] = []
    with pytest.raises(Signalled) as caught, exit_on(signal.SIGTERM, before_exit=lambda: cleaned.append("before")):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)  # the handler raises here, in the wait
        finally:
            cleaned.append("finally")
    assert caught.value.code == exit_status(signal.SIGTERM) == 143 and caught.value.signal == signal.SIGTERM
    assert cleaned == ["before", "finally"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_caught_signals_come_back_in_arrival_order() -> None:
    with catch_signals(signal.SIGHUP, signal.SIGUSR1) as next_signal:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert [next_signal(), next_signal()] == [signal.SIGHUP, signal.SIGUSR1]
