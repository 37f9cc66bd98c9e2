"""core/threads.py: calls on daemon threads, every one waited for, results in call order, the first failure raised last."""

from __future__ import annotations

import threading
import time

import pytest

from redisguard.core.threads import run_on_daemon_threads


def test_results_come_in_call_order_each_from_its_own_daemon_thread() -> None:
    seen: list[tuple[str, bool]] = []

    def call(value: int) -> int:
        thread = threading.current_thread()
        seen.append((thread.name, thread.daemon))
        return value * 10

    results = run_on_daemon_threads([lambda: call(1), lambda: call(2), lambda: call(3)], names=["a", "b", "c"])
    assert results == [10, 20, 30]
    assert sorted(seen) == [("a", True), ("b", True), ("c", True)]


def test_the_first_failure_in_call_order_is_raised_after_every_call_has_ended() -> None:
    release = threading.Event()
    ended: list[str] = []

    def slow() -> None:
        release.wait(5)
        ended.append("slow")

    def fails(message: str) -> None:
        release.set()
        raise ValueError(message)

    with pytest.raises(ValueError, match="first"):
        run_on_daemon_threads([slow, lambda: fails("first"), lambda: fails("second")], names="t")
    # The failure waited for its sibling: nothing of this round runs on after it was reported.
    assert ended == ["slow"]


def test_computed_once_runs_each_key_once_for_every_thread_that_asks_and_shares_its_failure() -> None:
    from redisguard.core.threads import ComputedOnce

    calls: list[str] = []

    def slow(key: str) -> str:
        calls.append(key)
        time.sleep(0.2)  # the other askers arrive while it runs
        return key.upper()

    shared: ComputedOnce[str, str] = ComputedOnce()
    results = run_on_daemon_threads([lambda: shared.get("a", lambda: slow("a")) for _ in range(4)], names="asker")
    assert results == ["A"] * 4 and calls == ["a"]

    def broken() -> str:
        raise ValueError("listing failed")

    for _ in range(2):  # the failure is kept: a second asker gets it too, nothing runs again
        with pytest.raises(ValueError, match="listing failed"):
            shared.get("b", broken)
